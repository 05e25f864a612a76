"""Parity with DeepMind's TensorFlow Enformer on the shared reference vectors.

The vectors were computed by DeepMind's own code (newest commit) with random,
non-trivial weights; the same weights are given in TF-name and enformer-pytorch
layouts. Tolerances are the ones the vectors' README gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enformer import Enformer
from enformer.weights import (
    config_from_hf,
    config_from_tf_variables,
    state_dict_from_hf,
    state_dict_from_tf,
)

T_FORMULA = 2e-3  # gamma features from our float64 formula
T_TF_TABLE = 2e-4  # TF's own float32 gamma table substituted (diagnostic)


@pytest.fixture(scope="module")
def io(vectors):
    return dict(np.load(vectors / "io.npz"))


@pytest.fixture(scope="module")
def intermediates(vectors):
    return dict(np.load(vectors / "intermediates.npz"))


@pytest.fixture(scope="module")
def tf_model(vectors):
    variables = dict(np.load(vectors / "tf_variables.npz"))
    config = config_from_tf_variables(variables)
    model = Enformer(config).eval()
    model.load_state_dict(state_dict_from_tf(variables, config))
    return model


@pytest.fixture(scope="module")
def hf_model(vectors):
    import json

    hf_config = json.loads((vectors / "hf" / "config.json").read_text())
    config = config_from_hf(hf_config)
    sd = torch.load(vectors / "hf" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    model = Enformer(config).eval()
    model.load_state_dict(state_dict_from_hf(sd, config))
    return model


def _run(model, io):
    x = torch.from_numpy(io["inputs_onehot"].astype(np.float32))
    with torch.inference_mode():
        xc = model._prepare(x)
        conv = model.trunk.conv(xc)  # (B, T, C)
        trans = model.trunk.attend(conv)  # (B, T, C)
        emb = model.trunk.finish(trans)
        out = model.heads_forward(emb)
    return {
        "conv_tower_out": conv[0].numpy(),
        "transformer_out": trans[0].numpy(),
        "trunk": emb.numpy(),
        "human": out["human"][:, io["head_bins"]].numpy(),
        "mouse": out["mouse"][:, io["head_bins"]].numpy(),
        "human_full": out["human"][0].numpy(),
    }


def _assert_close(ours, ref, t, name):
    ok = np.allclose(ours, ref, atol=t, rtol=t)
    err = np.max(np.abs(ours - ref) - t * np.abs(ref))
    assert ok, (
        f"{name}: exceeds atol=rtol={t} by {err:.3e} (max abs diff {np.abs(ours - ref).max():.3e})"
    )


def _check_all(outputs, io, intermediates, t, t_transformer):
    _assert_close(
        outputs["conv_tower_out"], intermediates["conv_tower_out"], 2e-4, "conv_tower_out"
    )
    _assert_close(
        outputs["transformer_out"],
        intermediates["transformer_out"],
        t_transformer,
        "transformer_out",
    )
    for name in ("trunk", "human", "mouse", "human_full"):
        _assert_close(outputs[name], io[name], t, name)


def test_tf_layout_parity(tf_model, io, intermediates):
    _check_all(_run(tf_model, io), io, intermediates, T_FORMULA, 1e-2)


def test_hf_layout_parity_through_public_forward(hf_model, io):
    """The public path (embed + heads: fast kernels, cropped last layer) matches DeepMind."""
    x = torch.from_numpy(io["inputs_onehot"].astype(np.float32))
    with torch.inference_mode():
        emb = hf_model.embed(x)
        out = hf_model.heads_forward(emb)
    _assert_close(emb.numpy(), io["trunk"], T_FORMULA, "trunk")
    _assert_close(out["human"][:, io["head_bins"]].numpy(), io["human"], T_FORMULA, "human")
    _assert_close(out["mouse"][:, io["head_bins"]].numpy(), io["mouse"], T_FORMULA, "mouse")
    _assert_close(out["human"][0].numpy(), io["human_full"], T_FORMULA, "human_full")


def test_both_layouts_give_identical_weights(tf_model, hf_model):
    a, b = tf_model.state_dict(), hf_model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].float(), b[k].float()), k


def test_tf_gamma_table_diagnostic(tf_model, io, intermediates):
    """With TF's own float32 gamma block substituted, the tighter 2e-4 budget holds."""
    from enformer.model.attention import relative_positional_features

    table = relative_positional_features(1536, 192).to(torch.float32)
    tf_table = torch.from_numpy(intermediates["positional_features"])
    # Exponential and central-mask features agree with TF's to float32 rounding.
    keep = torch.cat([table[:, 0:64], table[:, 96:160]], dim=1)
    ref = torch.cat([tf_table[:, 0:64], tf_table[:, 96:160]], dim=1)
    assert torch.allclose(keep, ref, atol=1e-6)
    table[:, 64:96] = tf_table[:, 64:96]
    table[:, 160:192] = tf_table[:, 160:192]
    attentions = [b.mha.attention for b in tf_model.trunk.transformer]
    saved = [dict(a._features_cast) for a in attentions]
    try:
        for a in attentions:
            a._features_cast[(1536, torch.device("cpu"), torch.float32)] = table
        outputs = _run(tf_model, io)
    finally:
        for a, s in zip(attentions, saved, strict=True):
            a._features_cast.clear()
            a._features_cast.update(s)
    _check_all(outputs, io, intermediates, T_TF_TABLE, 1e-3)
