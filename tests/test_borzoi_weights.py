"""Borzoi checkpoints in this package's format: save/load, convert from every layout, the hub."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from enformer import Enformer
from enformer.model.borzoi import Borzoi, BorzoiConfig
from enformer.weights import WeightsError, load_pretrained, save_pretrained
from enformer.weights.borzoi import borzoi_folder_kind, load_borzoi_folder, to_borzoi_pytorch

from .test_weights import _Server, hub_env  # noqa: F401  (the local hub server and its env)


def _tiny(attention: str = "relative") -> Borzoi:
    torch.manual_seed(7)
    config = replace(BorzoiConfig.preset("tiny"), sequence_length=4096, attention=attention,
                     kv_heads=1, rotary_dim=8, description="tiny test Borzoi")  # fmt: skip
    model = Borzoi(config).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _x(length: int = 4096) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.nn.functional.one_hot(torch.randint(0, 4, (2, length), generator=g), 4).float()


def _same_outputs(a: Borzoi, b: Borzoi) -> None:
    with torch.no_grad():
        ya, yb = a(_x()), b(_x())
    assert ya.keys() == yb.keys()
    for h in ya:
        torch.testing.assert_close(ya[h], yb[h], rtol=0, atol=0)


@pytest.mark.parametrize("attention", ["relative", "rotary"])
def test_save_load_round_trip(tmp_path, attention):
    model = _tiny(attention)
    model.save_pretrained(str(tmp_path / "ckpt"))
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["family"] == "borzoi" and meta["attention"] == attention
    assert meta["format"] == "enformer" and meta["description"] == "tiny test Borzoi"
    assert borzoi_folder_kind(tmp_path / "ckpt") == "enformer"
    back = Borzoi.from_pretrained(str(tmp_path / "ckpt"))
    assert back.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    _same_outputs(back, model)


def test_broken_checkpoints_are_named(tmp_path):
    model = _tiny()
    save_pretrained(model, tmp_path / "ckpt")
    state = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    del state["conv_dna.bias"]
    save_file(state, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(WeightsError, match="conv_dna.bias"):
        load_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps({**meta, "wings": 2}))
    with pytest.raises(WeightsError, match="not a Borzoi configuration.*upgrade"):
        load_pretrained(tmp_path / "ckpt")
    Enformer.from_pretrained("mini").save_pretrained(str(tmp_path / "enf"))
    assert borzoi_folder_kind(tmp_path / "enf") is None
    with pytest.raises(TypeError, match="holds a Enformer, not a Borzoi"):
        Borzoi.from_pretrained(str(tmp_path / "enf"))


def test_convert_a_calico_folder(tmp_path, capsys, calico_folder):
    from enformer.cli.main import main

    out = tmp_path / "ours"
    assert main(["convert", str(calico_folder), str(out), "--set", "description=vectors",
                 "--json", "-q"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    original = load_borzoi_folder(calico_folder)
    assert summary["family"] == "borzoi" and summary["source_kind"] == "calico"
    assert summary["parameters"] == original.num_parameters()
    assert summary["heads"] == {"human": 24, "mouse": 12}
    converted = load_pretrained(out)
    assert isinstance(converted, Borzoi) and converted.config.description == "vectors"
    for k, v in original.state_dict().items():
        assert torch.equal(converted.state_dict()[k], v), k
    # An override that would change a tensor's shape is refused, naming the problem.
    code = main(["convert", str(calico_folder), str(tmp_path / "bad"), "--set",
                 "final_filters=8", "-q"])  # fmt: skip
    assert code != 0 and "shapes of the weights" in capsys.readouterr().err


def test_convert_a_borzoi_pytorch_folder(tmp_path, capsys, monkeypatch):
    """A borzoi-pytorch folder (config.json model_type borzoi) converts to ours, the same
    tensors; its config reader knows only the released sizes, so it is patched to the tiny."""
    import enformer.weights.borzoi as bz
    from enformer.cli.main import main

    model = _tiny()
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in to_borzoi_pytorch(model).items()},
              str(folder / "model.safetensors"))  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"model_type": "borzoi"}))
    monkeypatch.setattr(bz, "config_from_borzoi_pytorch", lambda hf: model.config)
    assert main(["convert", str(folder), str(tmp_path / "ours"), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["source_kind"] == "borzoi-pytorch"
    _same_outputs(load_pretrained(tmp_path / "ours"), model)


def test_borzoi_from_the_hub(hub_env, tmp_path, monkeypatch):  # noqa: F811
    model = _tiny("rotary")
    save_pretrained(model, tmp_path / "hub" / "acme" / "tiny-flashzoi" / "resolve" / "main")
    server = _Server(tmp_path / "hub")
    monkeypatch.setenv("ENFORMER_HUB_ENDPOINT", server.url)
    try:
        got = Borzoi.from_pretrained("acme/tiny-flashzoi", cache_dir=tmp_path / "cache")
    finally:
        server.stop()
    assert server.requests == ["/acme/tiny-flashzoi/resolve/main/config.json",
                               "/acme/tiny-flashzoi/resolve/main/model.safetensors"]  # fmt: skip
    assert isinstance(got, Borzoi) and got.config.attention == "rotary"
    _same_outputs(got, model)
    assert Path(tmp_path / "cache").is_dir()
