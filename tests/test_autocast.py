"""predict under bf16 autocast on the CPU, and the command line's --dtype and --attention.

Tolerance. bf16 keeps 8 significant bits, a unit roundoff of u = 2**-8 = 3.9e-3. The tiny
model rounds about 20 times on the way to an output (stem and 3 tower blocks: 2 convs
each; 2 transformer layers: q/k/v, two attention matmuls, output and two MLP linears, each
with a bf16 residual add; final pointwise; head). Independent rounding errors grow like
sqrt(20) * u = 1.7e-2 relative, the worst case like 20 * u = 7.8e-2: each output must lie
within rtol 5e-2 of float32 (measured: at most 1.5e-2). Summed over the 64 bins of a track
the random part averages out and about one u of systematic error is left: rtol 2e-2
(measured: 4e-3).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli import options
from enformer.cli.main import main
from enformer.data.sequence import random_sequence
from enformer.inference import predict
from enformer.model import attention
from enformer.weights import save_pretrained

from .conftest import random_onehot, randomize_batch_norm

RTOL_VALUES = 5e-2
RTOL_SUMS = 2e-2


def _assert_bf16_close(low: np.ndarray, full: np.ndarray) -> None:
    assert low.dtype == np.float32 and low.shape == full.shape
    np.testing.assert_allclose(low, full, rtol=RTOL_VALUES, atol=1e-3)
    np.testing.assert_allclose(low.sum(axis=1), full.sum(axis=1), rtol=RTOL_SUMS)
    # bf16 really ran: float32 would agree to ~1e-6.
    assert np.abs(low - full).max() > 1e-4


@pytest.mark.parametrize("implementation", ["blocked", "fused"])
def test_predict_bf16_autocast_close_to_float32(tiny_model, implementation):
    x = random_onehot(3, 2048 + 384, seed=31).numpy()  # cropped last layer: query_rows
    tiny_model.set_attention_implementation(implementation)
    full = predict(tiny_model, x, progress=False)
    low = predict(tiny_model, x, dtype=torch.bfloat16, progress=False)
    for head in ("human", "mouse"):
        _assert_bf16_close(low.values[head], full.values[head])
    # The model is left as it was: float32 parameters, eval mode, and a float32 run after
    # the bf16 one gives the float32 numbers again (no bf16 tensor left in a cache).
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())
    again = predict(tiny_model, x, progress=False)
    np.testing.assert_array_equal(again.values["human"], full.values["human"])


def test_autocast_bypasses_the_fast_conv_kernels(tiny_model, monkeypatch):
    """The tiled float32 kernels must not run under autocast (they would ignore it)."""
    from enformer.model import fast

    def refuse(*args, **kwargs):
        raise AssertionError("fast kernel entered under autocast")

    monkeypatch.setattr(fast, "stem_forward", refuse)
    monkeypatch.setattr(fast, "tower_block_forward", refuse)
    x = random_onehot(1, 2048, seed=32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny_model(x)
    assert out["human"].dtype == torch.bfloat16  # the model itself returns autocast's dtype


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny()).eval()
    randomize_batch_norm(model, seed=0)
    path = tmp_path_factory.mktemp("weights") / "tiny"
    save_pretrained(model, path)
    return path


def _sequences_fasta(tmp_path: Path) -> tuple[Path, list[str]]:
    seqs = [random_sequence(2048, seed=40 + i) for i in range(2)]
    fa = tmp_path / "seqs.fa"
    fa.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    return fa, seqs


def _cli_values(weights: Path, fa: Path, out: Path, extra: list[str], capsys):
    """Run ``enformer predict --sequences``; return the human values and the settings."""
    args = ["--json", "predict", "--weights", str(weights), "--sequences", str(fa)]
    code = main([*args, "--out", str(out), *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    (entry,) = summary["files"]
    with h5py.File(entry["path"]) as f:
        values = f["human/values"][:]
    return values, json.loads(Path(summary["settings"]).read_text())


def test_cli_predict_bfloat16_and_attention(weights, tmp_path, capsys, caplog, monkeypatch):
    fa, _ = _sequences_fasta(tmp_path)
    full, _ = _cli_values(weights, fa, tmp_path / "fp32", [], capsys)
    monkeypatch.setattr(attention, "_LOGGED", set())
    caplog.set_level(logging.INFO, logger="enformer.model.attention")
    extra = ["--dtype", "bfloat16", "--attention", "fused"]
    low, settings = _cli_values(weights, fa, tmp_path / "bf16", extra, capsys)
    _assert_bf16_close(low, full)
    assert "attention: fused (scaled_dot_product_attention) on cpu; implementation 'fused'" in [
        r.getMessage() for r in caplog.records
    ]
    assert '"attention": "fused"' in json.dumps(settings)
    assert "bfloat16" in json.dumps(settings)
    blocked, _ = _cli_values(weights, fa, tmp_path / "blocked", ["--attention", "blocked"], capsys)
    np.testing.assert_allclose(blocked, full, rtol=0, atol=1e-5)


def test_cli_attention_option_is_checked(weights, tmp_path, capsys):
    fa, _ = _sequences_fasta(tmp_path)
    args = ["predict", "--weights", str(weights), "--sequences", str(fa)]
    with pytest.raises(SystemExit) as err:
        main([*args, "--out", str(tmp_path / "o"), "--attention", "flash"])
    assert err.value.code == 2
    assert "invalid choice: 'flash'" in capsys.readouterr().err
    # The parser's choices are the model's (kept apart so the parser needs no torch model).
    assert options.ATTENTION_CHOICES == attention.ATTENTION_IMPLEMENTATIONS
