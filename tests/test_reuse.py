"""Exact reuse of conv activations: patched tower equals a full forward of the alternative."""

from __future__ import annotations

import pytest
import torch

from enformer.model.reuse import (
    changed_span,
    conv_activations,
    conv_tower_for,
    forward_from_tower,
)

from .conftest import random_onehot


def _mutate(x: torch.Tensor, pos: int, base: int) -> torch.Tensor:
    y = x.clone()
    y[pos] = 0
    y[pos, base] = 1
    return y


@pytest.fixture
def ref_x():
    return random_onehot(1, 2048, seed=11)[0]


@pytest.mark.parametrize("pos", [0, 1, 7, 500, 1023, 1024, 2040, 2047])
def test_snv_tower_equals_full_forward(tiny_model, ref_x, pos):
    acts = conv_activations(tiny_model, ref_x)
    base = (int(ref_x[pos].argmax()) + 1) % 4
    alt = _mutate(ref_x, pos, base)
    with torch.inference_mode():
        full = tiny_model.trunk.conv(alt[None])[0]
    patched = conv_tower_for(tiny_model, acts, alt)
    torch.testing.assert_close(patched, full, rtol=1e-5, atol=1e-5)
    assert not torch.equal(patched, acts.tower)  # the variant changed something


def test_multi_base_n_and_indel_like_changes(tiny_model, ref_x):
    acts = conv_activations(tiny_model, ref_x)
    cases = []
    alt = ref_x.clone()
    alt[300:310] = 0  # an N run
    cases.append(alt)
    # Deletion of 3 bp at 1000 with the window anchored upstream: downstream shifts left.
    alt = ref_x.clone()
    alt[1000:-3] = ref_x[1003:]
    alt[-3:] = torch.eye(4)[[0, 1, 2]]
    cases.append(alt)
    for alt in cases:
        with torch.inference_mode():
            full = tiny_model.trunk.conv(alt[None])[0]
        torch.testing.assert_close(
            conv_tower_for(tiny_model, acts, alt), full, rtol=1e-5, atol=1e-5
        )


def test_identical_alt_returns_reference(tiny_model, ref_x):
    acts = conv_activations(tiny_model, ref_x)
    assert changed_span(ref_x, ref_x) is None
    assert torch.equal(conv_tower_for(tiny_model, acts, ref_x.clone()), acts.tower)


def test_forward_from_tower_equals_model(tiny_model, ref_x):
    alt = _mutate(ref_x, 1030, (int(ref_x[1030].argmax()) + 2) % 4)
    acts = conv_activations(tiny_model, ref_x)
    towers = torch.stack([acts.tower, conv_tower_for(tiny_model, acts, alt)])
    with torch.inference_mode():
        out = forward_from_tower(tiny_model, towers)
        full = tiny_model(torch.stack([ref_x, alt]))
        sub = forward_from_tower(
            tiny_model, towers, heads=["human"], tracks={"human": torch.tensor([3, 1])}
        )
    torch.testing.assert_close(out["human"], full["human"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["mouse"], full["mouse"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sub["human"], full["human"][..., [3, 1]], rtol=1e-5, atol=1e-6)


def test_reuse_requires_eval(tiny_model, ref_x):
    tiny_model.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        conv_activations(tiny_model, ref_x)


def test_reuse_predictor_equals_naive_scorer(tiny_model):
    """predict_alleles_reuse == predict_alleles (full forwards) for SNVs, an indel and RC/shifts."""
    import numpy as np

    from enformer.variants.predictors import predict_alleles, predict_alleles_reuse

    m = 2
    ref = random_onehot(2, 2048 + 2 * m, seed=21)
    alts = []
    for g, pos in [(0, m + 1024), (0, m + 3), (1, m + 2046), (1, m + 600)]:
        alts.append(_mutate(ref[g], pos, (int(ref[g, pos].argmax()) + 1) % 4))
    indel = ref[1].clone()
    indel[m + 900 : -2] = ref[1][m + 902 :]  # a 2-bp deletion anchored upstream
    alts.append(indel)
    alt = torch.stack(alts)
    ref_index = np.array([0, 0, 1, 1, 1])
    pairs = np.array([1, 0, 2, 3, 4, 5, 6, 7, 9, 8])
    kwargs = dict(
        ref_index=ref_index,
        head="human",
        tracks=[0, 1, 8, 5],
        strand_pairs=pairs,
        rc=True,
        shifts=(-1, 0, 2),
        batch_size=3,
    )
    naive = predict_alleles(tiny_model, ref, alt, **kwargs)
    fast = predict_alleles_reuse(tiny_model, ref, alt, **kwargs)
    np.testing.assert_allclose(fast.ref, naive.ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.alt, naive.alt, rtol=1e-5, atol=1e-6)
    assert not tiny_model.training
