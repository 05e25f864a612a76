"""Model invariants on tiny configs: geometry, positional features, crop, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from enformer import Enformer, EnformerConfig
from enformer.model import (
    crop_to_target,
    exponential_linspace_int,
    gelu,
    relative_positional_features,
    relative_shift,
)
from enformer.model.layers import SoftmaxPooling1D

from .conftest import random_onehot, randomize_batch_norm


# --------------------------------------------------------------------- config
def test_official_geometry_and_parameter_count():
    cfg = EnformerConfig.official()
    assert cfg.filters == (768, 896, 1024, 1152, 1280, 1536)
    assert cfg.bin_size == 128
    assert cfg.output_bins(196_608) == 896
    assert cfg.output_bins(393_216) == 896
    with torch.device("meta"):
        model = Enformer(cfg)
    assert model.num_parameters() == 251_221_292
    assert sum(p.numel() for p in model.trunk.parameters()) == 229_845_504
    assert sum(p.numel() for p in model.heads["human"].parameters()) == 16_326_849
    assert sum(p.numel() for p in model.heads["mouse"].parameters()) == 5_048_939


def test_exponential_linspace_rounds_half_to_even():
    # 192 -> 384 in 6 steps: 192/128 = 1.5 rounds to 2 (half-to-even), as in the vectors.
    assert exponential_linspace_int(192, 384, 6, divisible_by=128) == [256, 256, 256, 256, 384, 384]


def test_config_json_round_trip():
    cfg = EnformerConfig.tiny(description="x")
    assert EnformerConfig.from_dict(__import__("json").loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="unknown EnformerConfig field"):
        EnformerConfig.from_dict({"channelz": 3})
    with pytest.raises(ValueError, match="unknown preset"):
        EnformerConfig.preset("huge")


# -------------------------------------------------------- positional features
def _features_float64_reference(length: int, num_features: int) -> np.ndarray:
    """Independent float64 evaluation of DESIGN.md's formulas, one distance at a time."""
    n = num_features // 6
    rows = []
    max_range = math.log2(length)
    half_lives = [2 ** (3 + (max_range - 3) * i / (n - 1)) for i in range(n)]
    stddev = length / (2 * n)
    means = [length / n + (length - length / n) * i / (n - 1) for i in range(n)]
    conc = [(m / stddev) ** 2 for m in means]
    rate = [m / stddev**2 for m in means]

    def gamma_pdf(x, c, r):
        if x == 0:
            return 0.0
        return math.exp((c - 1) * math.log(x) - r * x - math.lgamma(c) + c * math.log(r))

    dists = range(-length + 1, length)
    gam = np.array([[gamma_pdf(abs(d), conc[k], rate[k]) + 1e-8 for k in range(n)] for d in dists])
    gam = gam / gam.max(axis=0, keepdims=True)
    for row, d in enumerate(dists):
        a = abs(d)
        exp = [math.exp(-math.log(2) / h * a) for h in half_lives]
        mask = [1.0 if 2 ** (k + 1) - 1 > a else 0.0 for k in range(n)]
        sym = exp + mask + list(gam[row])
        s = (d > 0) - (d < 0)
        rows.append(sym + [s * v for v in sym])
    return np.array(rows)


@pytest.mark.parametrize("length,features", [(17, 12), (96, 24), (448, 192)])
def test_positional_features_match_float64_formula(length, features):
    ours = relative_positional_features(length, features).numpy()
    ref = _features_float64_reference(length, features)
    assert ours.shape == (2 * length - 1, features)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    gamma = ours[:, 2 * features // 6 : 3 * features // 6]
    np.testing.assert_allclose(gamma.max(axis=0), 1.0)  # every basis function peaks at 1
    assert np.all(ours[length - 1, features // 2 :] == 0)  # sign(0) = 0


def test_model_uses_features_of_the_actual_length(tiny_model):
    cfg = tiny_model.config
    attn = tiny_model.trunk.transformer[0].mha.attention
    with torch.inference_mode():
        for length in (2048, 2048 + 256):
            tiny_model(random_onehot(1, length))
    bins = {key[0] for key in attn._features_cast}
    assert bins == {2048 // cfg.bin_size, (2048 + 256) // cfg.bin_size}
    for (t, _, _), table in attn._features_cast.items():
        ref = relative_positional_features(t, cfg.relative_position_features).float()
        assert torch.equal(table, ref)


def _relative_shift_transformer_xl(x: torch.Tensor) -> torch.Tensor:
    """The pad-and-reshape shift of DeepMind's attention module, for comparison."""
    b, h, t1, t2 = x.shape
    x = torch.cat([torch.zeros_like(x[..., :1]), x], dim=-1)
    x = x.reshape(b, h, t2 + 1, t1)[:, :, 1:]
    x = x.reshape(b, h, t1, t2)
    return x[..., : (t2 + 1) // 2]


@pytest.mark.parametrize("t", [1, 2, 5, 16])
def test_relative_shift(t):
    x = torch.randn(2, 3, t, 2 * t - 1, generator=torch.Generator().manual_seed(t))
    out = relative_shift(x)
    torch.testing.assert_close(out, _relative_shift_transformer_xl(x), rtol=0, atol=0)
    for i in range(t):
        for j in range(t):
            assert torch.equal(out[..., i, j], x[..., i, j - i + t - 1])


# ------------------------------------------------------------------- layers
def test_gelu_is_sigmoid_approximation():
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(gelu(x), x / (1 + torch.exp(-1.702 * x)))


def test_softmax_pooling_equals_pairwise_softmax():
    torch.manual_seed(0)
    pool = SoftmaxPooling1D(6)
    with torch.no_grad():
        pool.linear.weight.normal_()
    x = torch.randn(2, 6, 10)
    pairs = x.reshape(2, 6, 5, 2).permute(0, 2, 3, 1)  # (B, L/2, 2, C)
    logits = pairs @ pool.linear.weight.T  # TF form: x W, W = weight.T
    ref = (pairs * torch.softmax(logits, dim=-2)).sum(-2).permute(0, 2, 1)
    torch.testing.assert_close(pool(x), ref, rtol=1e-5, atol=1e-6)


def test_crop_edge_cases():
    x = torch.arange(10.0)[None, :, None]
    assert crop_to_target(x, 10) is x  # trim 0: no-op, not empty
    assert crop_to_target(x, 11 - 1).shape[1] == 10
    # odd excess (3): one bin trimmed per side, as TargetLengthCrop1D does
    assert crop_to_target(x, 7)[0, :, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert crop_to_target(x, 6)[0, :, 0].tolist() == [2, 3, 4, 5, 6, 7]
    assert crop_to_target(x, None) is x
    with pytest.raises(ValueError, match="fewer than"):
        crop_to_target(x, 12)


# -------------------------------------------------------------- whole model
def test_output_shapes_and_embedding(tiny_model):
    x = random_onehot(2, 2048)
    with torch.inference_mode():
        out = tiny_model(x)
        emb = tiny_model.embed(x)
    cfg = tiny_model.config
    assert set(out) == set(cfg.heads)
    for name, n in cfg.heads.items():
        assert out[name].shape == (2, cfg.target_length, n)
        assert torch.all(out[name] > 0)  # softplus
    assert emb.shape == (2, cfg.target_length, 2 * cfg.channels)
    torch.testing.assert_close(out["human"], F.softplus(tiny_model.heads["human"].linear(emb)))


def test_batch_size_invariance(tiny_model):
    x = random_onehot(3, 2048, seed=1)
    with torch.inference_mode():
        full = tiny_model(x)["human"]
        single = torch.cat([tiny_model(x[i : i + 1])["human"] for i in range(3)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-6)


def test_other_lengths_and_odd_excess(tiny_model):
    cfg = tiny_model.config
    with torch.inference_mode():
        # 64 target bins; 16 bp bins. 67 bins in -> excess 3 -> 65 bins out (as TF does).
        assert tiny_model(random_onehot(1, 67 * 16))["human"].shape[1] == 65
        assert tiny_model(random_onehot(1, 64 * 16))["human"].shape[1] == 64  # trim 0
        assert tiny_model(random_onehot(1, 4096 + 512))["human"].shape[1] == cfg.target_length


def test_double_length_input_is_centre_cropped(tiny_model):
    cfg = tiny_model.config
    x = random_onehot(1, 2 * cfg.sequence_length, seed=3)
    start = cfg.sequence_length // 2
    with torch.inference_mode():
        a = tiny_model(x)["human"]
        b = tiny_model(x[:, start : start + cfg.sequence_length])["human"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_n_is_all_zeros_and_gives_finite_output(tiny_model):
    x = random_onehot(1, 2048, seed=4, n_frac=0.2)
    x[:, 100:400] = 0  # a run of N
    with torch.inference_mode():
        out = tiny_model(x)["human"]
    assert torch.isfinite(out).all()


def test_integer_input_is_cast(tiny_model):
    x = random_onehot(1, 2048, seed=5)
    with torch.inference_mode():
        torch.testing.assert_close(tiny_model(x.to(torch.uint8))["human"], tiny_model(x)["human"])


@pytest.mark.parametrize(
    "shape,match",
    [
        ((2048, 4), "add a batch dimension"),
        ((1, 2048, 5), r"\(batch, length, 4\)"),
        ((1, 2008, 4), "not a multiple of the bin size"),
        ((1, 512, 4), "fewer than the 64 output bins"),
    ],
)
def test_bad_shapes_give_clear_errors(tiny_model, shape, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(torch.zeros(shape))


def test_non_tensor_input_error(tiny_model):
    with pytest.raises(TypeError, match="enformer.predict"):
        tiny_model("ACGT")


def test_attention_capture_path_equals_fused_path(tiny_model):
    x = random_onehot(2, 2048, seed=6)
    captured = []
    with torch.inference_mode():
        fused = tiny_model(x)["human"]
        for block in tiny_model.trunk.transformer:
            block.mha.attention.attention_hook = lambda mod, w: captured.append(w)
        try:
            explicit = tiny_model(x)["human"]
        finally:
            for block in tiny_model.trunk.transformer:
                block.mha.attention.attention_hook = None
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-6)
    assert len(captured) == tiny_model.config.num_transformer_layers
    torch.testing.assert_close(captured[0].sum(-1), torch.ones(captured[0].shape[:-1]))


def test_dropout_only_in_training(tiny_model):
    x = random_onehot(1, 2048, seed=7)
    with torch.no_grad():
        a, b = tiny_model(x)["human"], tiny_model(x)["human"]
        assert torch.equal(a, b)
        tiny_model.train()
        c = tiny_model(x)["human"]
        tiny_model.eval()
    assert not torch.allclose(a, c)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    cfg = EnformerConfig.tiny(
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        positional_dropout_rate=0.0,
        final_dropout_rate=0.0,
    )
    model = Enformer(cfg)
    randomize_batch_norm(model)
    x = random_onehot(2, 2048, seed=8)

    def grads(checkpointing):
        model.zero_grad()
        model.set_gradient_checkpointing(checkpointing)
        model.train()
        out = model(x)
        (out["human"].sum() + out["mouse"].sum()).backward()
        return [p.grad.clone() for p in model.parameters()]

    state = {k: v.clone() for k, v in model.state_dict().items()}
    g0 = grads(False)
    after_plain = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # undo BN running-stat updates
    g1 = grads(True)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # The recomputation in backward must not update BatchNorm statistics a second time.
    for k, v in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            torch.testing.assert_close(v, after_plain[k], rtol=1e-5, atol=1e-7, msg=k)


def test_fast_eval_path_equals_module_path(tiny_model):
    """The tiled channels-last kernels (eval, no grad) equal the nn.Conv1d path."""
    from enformer.model import fast

    x = random_onehot(2, 2048, seed=9, n_frac=0.05)
    with torch.no_grad():
        ref = tiny_model.trunk.stem(x.transpose(1, 2))
        h_ref = ref
        for block in tiny_model.trunk.conv_tower:
            h_ref = block(h_ref)
        for tile in (2048, 64, 10):  # one tile, many tiles, tiles smaller than a pool stage
            h = fast.stem_forward(tiny_model.trunk.stem, x, tile_rows=tile)
            torch.testing.assert_close(h, ref.transpose(1, 2), rtol=1e-5, atol=1e-5)
            for block in tiny_model.trunk.conv_tower:
                h = fast.tower_block_forward(block, h, tile_rows=tile)
            torch.testing.assert_close(h, h_ref.transpose(1, 2), rtol=1e-5, atol=1e-5)
    with torch.enable_grad():
        assert tiny_model.trunk.conv(x).requires_grad  # grad mode takes the module path


def test_fast_kernels_on_tile_threads_equal_module_path(tiny_model, monkeypatch):
    """Whole tiles on several threads give the nn.Conv1d path's values (no_grad and
    inference mode), run on the helper threads, and leave the thread count as it was."""
    import threading

    from enformer.model import fast

    x = random_onehot(2, 2048, seed=11, n_frac=0.05)
    trunk = tiny_model.trunk
    with torch.no_grad():
        ref = [trunk.stem(x.transpose(1, 2))]
        for block in trunk.conv_tower:
            ref.append(block(ref[-1]))
    seen = set()
    block_rows = fast.block_rows

    def recording(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return block_rows(*args, **kwargs)

    monkeypatch.setattr(fast, "block_rows", recording)
    threads = torch.get_num_threads()
    for mode in (torch.no_grad, torch.inference_mode):
        for workers, tile in ((2, 2048), (3, 64), (2, 10)):
            with mode():
                h = fast.stem_forward(trunk.stem, x, tile_rows=tile, workers=workers)
                hs = [h]
                for block in trunk.conv_tower:
                    hs.append(fast.tower_block_forward(block, hs[-1], tile, workers))
            for got, want in zip(hs, ref, strict=True):
                torch.testing.assert_close(got, want.transpose(1, 2), rtol=1e-5, atol=1e-5)
            assert torch.get_num_threads() == threads
    assert any(name.startswith("enformer-tile") for name in seen)
    assert threading.current_thread().name in seen  # the caller takes tiles too


def test_fast_kernels_tile_thread_error_reaches_caller(tiny_model):
    from enformer.model import fast

    block = tiny_model.trunk.conv_tower[0]
    c_in = block.conv_block.batch_norm.num_features
    threads = torch.get_num_threads()
    x = torch.randn(2, 1024, c_in + 1)  # wrong number of channels
    with torch.inference_mode(), pytest.raises(RuntimeError):
        fast.tower_block_forward(block, x, tile_rows=64, workers=2)
    assert torch.get_num_threads() == threads


def test_windowed_relative_logits_equal_full_shift():
    from enformer.model.attention import MultiheadAttention

    t, h, k = 12, 2, 3
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, h, t, k, generator=g)
    r_k = torch.randn(h, 2 * t - 1, k, generator=g)
    full = relative_shift(torch.matmul(q, r_k.transpose(-1, -2)))  # (B, H, T, T)
    for first, n in [(0, t), (0, 5), (4, 3), (11, 1), (7, 5)]:
        part = MultiheadAttention.relative_logits(q[:, :, first : first + n], r_k, first, t)
        torch.testing.assert_close(part, full[:, :, first : first + n], rtol=1e-6, atol=1e-6)


def test_query_blocks_and_cropped_last_layer_equal_full_computation(tiny_model, monkeypatch):
    from enformer.model import attention

    x = random_onehot(2, 2048 + 512, seed=10)
    with torch.inference_mode():
        tower = tiny_model.trunk.conv(x)
        full = tiny_model.trunk.finish(tiny_model.trunk.attend(tower))  # every row, then crop
        cropped = tiny_model.trunk.finish(tiny_model.trunk.attend(tower, crop=True))
        monkeypatch.setattr(attention, "query_block", lambda t: 7)  # many ragged query blocks
        blocked = tiny_model.trunk.finish(tiny_model.trunk.attend(tower, crop=True))
        via_forward = tiny_model.embed(x)
    assert cropped.shape == full.shape == (2, 64, 96)
    torch.testing.assert_close(cropped, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(blocked, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_forward, full, rtol=1e-5, atol=1e-6)


def test_config_rejects_unusable_defaults_for_small_models():
    with pytest.raises(ValueError, match="set tower_filters explicitly"):
        EnformerConfig(channels=96, num_heads=4, num_relative_position_features=24)
    with pytest.raises(ValueError, match="set num_relative_position_features explicitly"):
        EnformerConfig(channels=64, num_heads=4, tower_filters=(32, 40, 48, 56, 60, 64))
    cfg = EnformerConfig(
        channels=96,
        num_heads=4,
        num_relative_position_features=24,
        tower_filters=(48, 56, 64, 72, 84, 96),
    )
    assert cfg.filters[-1] == 96
