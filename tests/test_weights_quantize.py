"""Int8 checkpoints (enformer.weights.quantize): round trip, loading, corruption."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from enformer import Enformer
from enformer.weights import WeightsError, load_pretrained
from enformer.weights.quantize import QUANTIZATION, dequantize_int8, quantize_int8


def test_round_trip_error_is_at_most_half_a_step_per_channel(tiny_model):
    state = tiny_model.state_dict()
    packed = quantize_int8(state)
    back = dequantize_int8(packed)
    assert set(back) == set(state)
    quantised = [k for k, v in packed.items() if v.dtype == torch.int8]
    assert quantised  # the conv kernels and big linears
    for name, t in state.items():
        if name in quantised:
            scale = packed[name + ".__scale__"]
            err = (back[name] - t).abs().reshape(t.shape[0], -1).amax(dim=1)
            assert torch.all(err <= scale / 2 + 1e-7)
        else:
            assert torch.equal(back[name], t)


def test_int8_checkpoint_loads_as_a_float_model_close_to_the_original(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "fp32")
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "config.json").write_text((tmp_path / "fp32" / "config.json").read_text())
    save_file(
        quantize_int8(tiny_model.state_dict()),
        tmp_path / "int8" / "model.safetensors",
        metadata={"quantization": QUANTIZATION},
    )
    model = load_pretrained(tmp_path / "int8")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    idx = torch.randint(0, 4, (1, 2048), generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.one_hot(idx, 4).float()
    with torch.no_grad():
        a, b = tiny_model(x)["human"], model(x)["human"]
    assert torch.corrcoef(torch.stack([a.ravel(), b.ravel()]))[0, 1] > 0.999
    assert (a - b).abs().max() < 0.05 * a.abs().max()


def test_unknown_or_broken_quantization_is_a_clear_error(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    state = quantize_int8(tiny_model.state_dict())
    save_file(state, tmp_path / "model.safetensors", metadata={"quantization": "nf4"})
    with pytest.raises(WeightsError, match="unknown quantization 'nf4'"):
        load_pretrained(tmp_path)
    name = next(k for k in state if k.endswith(".__scale__"))
    state[name] = state[name][:-1].clone()
    save_file(state, tmp_path / "model.safetensors", metadata={"quantization": QUANTIZATION})
    with pytest.raises(WeightsError, match="does not match its scale"):
        load_pretrained(tmp_path)


def test_bundled_mini_is_stored_as_int8():
    from safetensors import safe_open

    from enformer.weights import bundled_path

    with safe_open(str(bundled_path("mini") / "model.safetensors"), "pt") as f:
        assert f.metadata()["quantization"] == QUANTIZATION
    assert isinstance(Enformer.from_pretrained("mini"), Enformer)
