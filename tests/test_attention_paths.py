"""The two attention paths (fused scaled_dot_product_attention, blocked softmax) on the CPU.

CUDA picks the fused path by default and nothing else exercises it without a GPU, so these
tests force each path explicitly and check that they compute the same function.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F

from enformer import Enformer, EnformerConfig
from enformer.model import attention
from enformer.model.attention import MultiheadAttention, relative_shift
from enformer.weights import load_pretrained, save_pretrained

from .conftest import random_onehot


def _mha(dropout: float = 0.0) -> MultiheadAttention:
    """A small MHA with every parameter random, r_w_bias and r_r_bias included."""
    torch.manual_seed(0)
    mha = MultiheadAttention(
        channels=24,
        num_heads=2,
        key_size=8,
        value_size=12,
        num_relative_position_features=12,
        attention_dropout_rate=dropout,
    )
    with torch.no_grad():
        mha.r_w_bias.normal_()
        mha.r_r_bias.normal_()
    return mha


@pytest.fixture
def sdpa_calls(monkeypatch):
    """Count calls of F.scaled_dot_product_attention (to prove which path ran)."""
    calls = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("attn_mask"))
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return calls


def _forward_and_grads(mha, x, rows, implementation):
    mha.implementation = implementation
    x = x.detach().requires_grad_(True)
    y = mha(x, query_rows=rows)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    params = [p for _, p in sorted(mha.named_parameters())]
    grads = torch.autograd.grad((y * weight).sum(), [x, *params])
    return y.detach(), grads


# T = 37: odd, not a multiple of the query block (7 here: six ragged blocks) nor of the mask
# alignment (16); rows (11, 26) are a middle slice, so the relative-logit window starts
# mid-table. T = 300 with the default block of 256: two blocks, the second of 44 rows.
@pytest.mark.parametrize(
    ("length", "rows", "block"),
    [(37, None, 7), (37, (11, 26), 7), (129, (3, 100), 7), (300, (17, 290), 256)],
)
def test_fused_equals_blocked_forward_and_gradients(length, rows, block, monkeypatch, sdpa_calls):
    monkeypatch.setattr(attention, "_QUERY_BLOCK", block)  # the fused path's mask blocks
    monkeypatch.setattr(attention, "query_block", lambda t: block)  # the blocked path's
    mha = _mha()
    x = torch.randn(2, length, 24, generator=torch.Generator().manual_seed(2))
    y_blocked, g_blocked = _forward_and_grads(mha, x, rows, "blocked")
    assert not sdpa_calls
    y_fused, g_fused = _forward_and_grads(mha, x, rows, "fused")
    assert len(sdpa_calls) == 1
    n = length if rows is None else rows[1] - rows[0]
    assert y_fused.shape == (2, n, 24)
    torch.testing.assert_close(y_fused, y_blocked, rtol=0, atol=1e-5)
    names = ["input", *sorted(name for name, _ in mha.named_parameters())]
    for name, a, b in zip(names, g_fused, g_blocked, strict=True):
        # Parameter gradients sum over every query, key and batch row: up to ~20 in size,
        # so the 1e-5 bound is relative to each gradient's largest entry.
        scale = max(1.0, float(b.abs().max()))
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * scale, msg=name)
        assert float(b.abs().max()) > 0, name  # every parameter takes part


@pytest.mark.parametrize(("length", "rows"), [(37, (11, 26)), (300, (17, 290))])
def test_cpu_flash_kernel_takes_the_strided_mask(length, rows):
    """A real fused kernel on the CPU, not the math fallback, with the padded mask view.

    PyTorch's CPU flash kernel needs equal key and value sizes and no gradient for the
    mask, so this runs without autograd with value_size = key_size; restricting SDPA to
    that backend makes it fail rather than fall back.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    mha = MultiheadAttention(24, 2, 8, 8, 12).eval()
    with torch.no_grad():
        mha.r_w_bias.normal_()
        mha.r_r_bias.normal_()
    x = torch.randn(2, length, 24, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        mha.implementation = "blocked"
        blocked = mha(x, query_rows=rows)
        mha.implementation = "fused"
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            fused = mha(x, query_rows=rows)
    torch.testing.assert_close(fused, blocked, rtol=0, atol=1e-5)


def test_relative_bias_is_aligned_and_equals_the_shifted_logits(monkeypatch):
    monkeypatch.setattr(attention, "_QUERY_BLOCK", 5)
    t, first, n = 37, 9, 23
    q = torch.randn(2, 3, t, 4)
    r_k = torch.randn(3, 2 * t - 1, 4)
    full = relative_shift(torch.matmul(q, r_k.transpose(-1, -2)))  # (B, H, T, T)
    mask = _mha().relative_bias(q[:, :, first : first + n], r_k, first, t)
    assert mask.shape == (2, 3, n, t)
    assert mask.stride(-1) == 1
    assert all(s % attention._MASK_ALIGN == 0 for s in mask.stride()[:-1]), mask.stride()
    torch.testing.assert_close(mask, full[:, :, first : first + n], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("implementation", ["fused", "blocked"])
def test_attention_dropout_is_active_and_unbiased(implementation):
    """Dropout on the attention weights: outputs vary between draws, their mean does not.

    The output is linear in the weights, so the mean over draws estimates the dropout-free
    output; each entry must lie within 6 standard errors (from the draws' own spread).
    """
    mha = _mha(dropout=0.3)
    mha.implementation = implementation
    x = torch.randn(1, 37, 24, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(4)
    with torch.no_grad():
        exact = mha.eval()(x, query_rows=(5, 30))
        mha.train()
        draws = torch.stack([mha(x, query_rows=(5, 30)) for _ in range(400)])
    assert float((draws[0] - draws[1]).abs().max()) > 1e-3  # dropout is applied
    mean, stderr = draws.mean(0), draws.std(0) / 400**0.5
    assert bool(((mean - exact).abs() <= 6 * stderr + 1e-6).all())
    assert float((mean - exact).abs().max()) < 0.1 * float(exact.abs().max())


@pytest.mark.parametrize("length", [2048, 2048 + 384])
def test_tiny_enformer_fused_equals_blocked(tiny_model, length, sdpa_calls):
    """Whole model, the last layer's query_rows included (152 bins cropped to 64 at 2,432 bp)."""
    x = random_onehot(2, length, seed=11)
    with torch.inference_mode():
        blocked = tiny_model.set_attention_implementation("blocked")(x)
        assert not sdpa_calls
        fused = tiny_model.set_attention_implementation("fused")(x)
    assert len(sdpa_calls) == tiny_model.config.num_transformer_layers
    assert sdpa_calls[-1].shape[-2] == 64  # the cropped last layer's queries
    for head in ("human", "mouse"):
        torch.testing.assert_close(fused[head], blocked[head], rtol=0, atol=1e-5)
    # Gradients with respect to the input (the attribution use), eval mode.
    grads = {}
    for implementation in ("blocked", "fused"):
        tiny_model.set_attention_implementation(implementation)
        xg = x.clone().requires_grad_(True)
        tiny_model(xg)["human"].sum().backward()
        grads[implementation] = xg.grad
    scale = float(grads["blocked"].abs().max())
    torch.testing.assert_close(grads["fused"], grads["blocked"], rtol=0, atol=1e-5 * scale)


def test_attention_hook_forces_the_blocked_path(tiny_model, sdpa_calls, caplog, monkeypatch):
    monkeypatch.setattr(attention, "_LOGGED", set())
    caplog.set_level(logging.INFO, logger="enformer.model.attention")
    tiny_model.set_attention_implementation("fused")
    modules = [b.mha.attention for b in tiny_model.trunk.transformer]
    captured = []
    x = random_onehot(1, 2048, seed=12)
    with torch.inference_mode():
        fused = tiny_model(x)["human"]
        calls_without_hook = len(sdpa_calls)
        for m in modules:
            m.attention_hook = lambda mod, w: captured.append(w)
        try:
            assert {m.attention_path("cuda") for m in modules} == {"blocked"}
            hooked = tiny_model(x)["human"]
        finally:
            for m in modules:
                m.attention_hook = None
    assert calls_without_hook == len(modules) and len(sdpa_calls) == calls_without_hook
    assert len(captured) == len(modules)
    torch.testing.assert_close(captured[0].sum(-1), torch.ones(captured[0].shape[:-1]))
    torch.testing.assert_close(hooked, fused, rtol=0, atol=1e-5)
    messages = [r.getMessage() for r in caplog.records]
    assert any("blocked" in m and "attention hook" in m and "'fused'" in m for m in messages)


def test_path_choice_and_validation(tiny_model):
    mha = tiny_model.trunk.transformer[0].mha.attention
    assert tiny_model.attention_implementation == "auto"
    assert mha.attention_path("cuda") == "fused"
    assert mha.attention_path(torch.device("cuda", 1)) == "fused"
    assert mha.attention_path("cpu") == "blocked"
    assert tiny_model.set_attention_implementation("fused") is tiny_model
    assert mha.attention_path("cpu") == "fused" and mha.attention_path("cuda") == "fused"
    tiny_model.set_attention_implementation("blocked")
    assert tiny_model.attention_implementation == "blocked"
    assert mha.attention_path("cuda") == "blocked"
    with pytest.raises(ValueError, match="one of 'auto', 'fused', 'blocked'; got 'flash'"):
        tiny_model.set_attention_implementation("flash")
    assert tiny_model.attention_implementation == "blocked"  # unchanged by the bad value


def test_choice_is_not_saved_with_the_weights(tiny_model, tmp_path):
    """A run-time setting: config.json is unchanged, old and new checkpoints load as 'auto'."""
    save_pretrained(tiny_model, tmp_path / "auto")
    tiny_model.set_attention_implementation("fused")
    save_pretrained(tiny_model, tmp_path / "fused")
    text = (tmp_path / "fused" / "config.json").read_text()
    assert text == (tmp_path / "auto" / "config.json").read_text()
    assert not any("implementation" in key for key in json.loads(text))
    assert load_pretrained(tmp_path / "fused").attention_implementation == "auto"


def test_path_is_logged_once(tiny_model, caplog, monkeypatch):
    monkeypatch.setattr(attention, "_LOGGED", set())
    caplog.set_level(logging.INFO, logger="enformer.model.attention")
    x = random_onehot(1, 2048, seed=13)
    with torch.inference_mode():
        tiny_model(x)
        tiny_model.set_attention_implementation("fused")
        tiny_model(x)
        tiny_model(x)
    messages = [r.getMessage() for r in caplog.records if r.name == "enformer.model.attention"]
    assert messages == [
        "attention: blocked (explicit softmax, query blocks of 256 x 1,536 / bins) on cpu; "
        "implementation 'auto'",
        "attention: fused (scaled_dot_product_attention) on cpu; implementation 'fused'",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_relative_keys_cache_is_keyed_by_autocast():
    """An r_k projected under autocast (bf16) must not be served to a float32 run, and back.

    Under CUDA autocast the attention input stays float32 (LayerNorm runs in float32) while
    the projection comes out in bf16; the CPU reproduces this by calling the module directly.
    """
    mha = _mha().eval()
    x = torch.randn(1, 21, 24, generator=torch.Generator().manual_seed(5))
    for implementation in ("blocked", "fused"):
        mha.implementation = implementation
        with torch.inference_mode():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = mha(x)
            full = mha(x)  # float32 again: failed with a dtype mismatch before
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low_again = mha(x)
        assert full.dtype == torch.float32 and low.dtype == torch.bfloat16
        torch.testing.assert_close(low_again, low, rtol=0, atol=0)
        torch.testing.assert_close(low.float(), full, rtol=0.05, atol=0.05)


def test_fused_path_trains_like_the_blocked_path():
    """One optimiser step of the tiny model without dropout lands on the same weights."""
    cfg = EnformerConfig.tiny(
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        positional_dropout_rate=0.0,
        final_dropout_rate=0.0,
    )
    x = random_onehot(2, 2048, seed=14)
    weights = {}
    for implementation in ("blocked", "fused"):
        torch.manual_seed(0)
        model = Enformer(cfg).train().set_attention_implementation(implementation)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out = model(x)
        (out["human"].sum() + out["mouse"].sum()).backward()
        opt.step()
        weights[implementation] = [p.detach() for p in model.parameters()]
    for a, b in zip(weights["fused"], weights["blocked"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_features_cached_in_inference_mode_serve_later_autograd():
    """predict() (inference mode) then gradients (attribution, training) in one process."""
    mha = _mha().eval()
    x = torch.randn(1, 21, 24, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        mha(x)  # caches the float32 positional features
    xg = x.clone().requires_grad_(True)
    mha(xg).sum().backward()  # failed: "Inference tensors cannot be saved for backward"
    assert xg.grad is not None and float(xg.grad.abs().max()) > 0


def test_query_blocks_shrink_as_the_input_grows():
    """256 queries per block at Enformer's 1,536 bins; about 256 x 1,536 / T beyond."""
    assert attention.query_block(1536) == 256
    assert attention.query_block(4096) == 128  # Borzoi's 4,096 bins
    assert attention.query_block(896) == 512 and attention.query_block(10**6) == 32
