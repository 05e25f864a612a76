"""Exact reuse for Borzoi and Flashzoi: equal to full forward passes, and truly local."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from enformer.interpret.ism import saturation_mutagenesis
from enformer.model import reuse
from enformer.model.borzoi import Borzoi, BorzoiConfig
from enformer.variants.predictors import predict_alleles, predict_alleles_reuse

LENGTH = 8192
SMALL = BorzoiConfig(
    sequence_length=LENGTH, dna_filters=16, tower_filters_init=16, tower_filters_end=32,
    tower_divisible_by=8, tower_repeat=4, key_size=8, attention_heads=2, transformer_repeat=1,
    final_filters=24, crop=4, heads={"human": 5, "mouse": 3}, kv_heads=1, rotary_dim=8,
)  # fmt: skip


def _model(attention: str) -> Borzoi:
    torch.manual_seed(3)
    model = Borzoi(replace(SMALL, attention=attention)).eval()
    with torch.no_grad():  # weights that make single bases matter; BatchNorm off the identity
        for name, w in model.named_parameters():
            if w.dim() > 1:
                w.normal_(0, 1.0 / w[0].numel() ** 0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _onehot(seed: int, length: int = LENGTH) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, length)])


def _snv(x: torch.Tensor, p: int) -> torch.Tensor:
    alt = x.clone()
    alt[p] = torch.roll(alt[p], 1)
    return alt


@pytest.mark.parametrize("attention", ["relative", "rotary"])
def test_reuse_equals_a_full_forward(attention):
    model = _model(attention)
    x = _onehot(0)
    acts = reuse.conv_activations(model, x)
    with torch.no_grad():
        full_ref = model(x[None])
    got = reuse.forward_from_tower(model, acts.tower[None])
    for h in full_ref:
        torch.testing.assert_close(got[h], full_ref[h], rtol=1e-5, atol=1e-6)
    indel = torch.cat([x[:3000], x[3003:], x[:3]])  # a 3-bp deletion, the end refilled
    cols = torch.tensor([0, 3])
    for alt in [_snv(x, p) for p in (0, 1, 6, 2047, 4096, 5001, LENGTH - 1)] + [indel]:
        state = reuse.conv_tower_for(model, acts, alt)
        got = reuse.forward_from_tower(model, state[None], heads=["human"], tracks={"human": cols})
        with torch.no_grad():
            want = model(alt[None])["human"][..., cols]
        torch.testing.assert_close(got["human"], want, rtol=1e-5, atol=1e-6)
        assert (want - full_ref["human"][..., cols]).abs().max() > 1e-4  # the change is seen


def test_reuse_recomputes_only_the_rows_a_change_reaches():
    model = _model("relative")
    x = _onehot(1)
    acts = reuse.conv_activations(model, x)
    p = 5000
    packed_ref = acts.tower
    packed_alt = reuse.conv_tower_for(model, acts, _snv(x, p))
    t = LENGTH // 2 ** (1 + SMALL.tower_repeat)
    changed = (packed_alt != packed_ref).any(dim=1).nonzero()[:, 0]
    assert len(changed) > 0
    # Rows are the tower output (T at 2**5 bp), then the skips at 2**4 and 2**3 bp per row.
    offsets, sizes = [0, t, 3 * t], [t, 2 * t, 4 * t]
    for off, size in zip(offsets, sizes, strict=True):
        rows = changed[(changed >= off) & (changed < off + size)] - off
        bp = LENGTH // size
        assert len(rows) > 0 and (rows.max() - rows.min() + 1) * bp < 1200
        assert rows.min() * bp <= p < (rows.max() + 1) * bp  # around the variant


@pytest.mark.parametrize("attention", ["relative", "rotary"])
def test_variant_predictor_reuse_equals_naive(attention):
    model = _model(attention)
    refs = torch.stack([_onehot(4, LENGTH + 2), _onehot(5, LENGTH + 2)])
    alts = torch.stack([_snv(refs[0], 4100), _snv(refs[0], 10), _snv(refs[1], 4097)])
    kw = dict(ref_index=np.array([0, 0, 1]), head="mouse", tracks=[0, 2], rc=True,
              shifts=(-1, 0, 1), batch_size=2)  # fmt: skip
    fast = predict_alleles_reuse(model, refs, alts, **kw)
    naive = predict_alleles(model, refs, alts, **kw)
    np.testing.assert_allclose(fast.ref, naive.ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.alt, naive.alt, rtol=1e-5, atol=1e-6)
    assert np.abs(naive.alt[0] - naive.ref[0]).max() > 1e-4


def test_ism_reuse_equals_naive_for_flashzoi():
    model = _model("rotary")
    x = _onehot(6)
    # Read out the bins over the mutated bases ((4090 - 128) / 32 = bin 123).
    kw = dict(start=4090, end=4096, head="human", tracks=[1, 4], bins=[122, 123, 124],
              batch_size=4, progress=False)  # fmt: skip
    fast = saturation_mutagenesis(model, x, exact_reuse=True, **kw)
    naive = saturation_mutagenesis(model, x, exact_reuse=False, **kw)
    np.testing.assert_allclose(fast.reference, naive.reference, rtol=1e-5)
    effects = naive.scores - naive.reference
    np.testing.assert_allclose(fast.scores - fast.reference, effects, rtol=0, atol=3e-6)
    assert np.abs(effects).max() > 10 * 3e-6  # the effects are well above the tolerance


@pytest.mark.parametrize("attention", ["relative", "rotary"])
def test_cpu_kernels_equal_the_module_path(attention):
    """Inference on the CPU runs the local stages, the final conv and the heads through the
    tiled kernels (fast.borzoi_stage_forward, fast.borzoi_output); with autograd on, through
    the modules. Same numbers, and the fused attention path agrees with the explicit one."""
    model = _model(attention)
    x = _onehot(8)[None]
    with torch.no_grad():
        tiled = model(x)
    graph = model(x)  # autograd on: the module path
    for h in tiled:
        torch.testing.assert_close(tiled[h], graph[h].detach(), rtol=1e-5, atol=1e-6)
    model.set_attention_implementation("fused")
    with torch.no_grad():
        fused = model(x)
    for h in tiled:
        torch.testing.assert_close(fused[h], tiled[h], rtol=1e-5, atol=1e-6)


def test_chosen_heads_and_tracks():
    """forward(heads=...) computes only the named heads; outputs(tracks=...) only the chosen
    tracks, equal to the same columns of the whole output, on the tiled and module paths."""
    model = _model("relative")
    x = _onehot(8)[None]
    idx = torch.tensor([4, 0, 3])
    with torch.no_grad():
        every = model(x)
        assert list(model(x, heads="human")) == ["human"]
        torch.testing.assert_close(model(x, heads=["mouse"])["mouse"], every["mouse"])
        y, skips = model.convolve(model._prepare(x))
        projected = [b.project_skip(skips[-1 - i]) for i, b in enumerate(model.unet)]
        some = model.outputs(y, projected, ["human"], {"human": idx})["human"]
    torch.testing.assert_close(some, every["human"][..., idx], rtol=1e-5, atol=1e-6)
    graph = model.outputs(y, projected, ["human"], {"human": idx})["human"]  # autograd on
    torch.testing.assert_close(graph.detach(), some, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown head"):
        model(x, heads="rat")
