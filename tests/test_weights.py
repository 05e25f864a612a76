"""Weights in, weights out: save/load, the enformer-pytorch and TF loaders, convert, the hub.

Fast tests use tiny models; the shared reference vectors (an 11M-parameter model in TF
and enformer-pytorch layouts) are loaded but never run here (test_parity.py does that).
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import enformer.cli.main as cli_main
from enformer import Enformer, EnformerConfig
from enformer.weights import (
    WeightsError,
    WeightsNotFound,
    config_from_hf,
    convert_weights,
    load_pretrained,
    read_tf_savedmodel,
    save_pretrained,
)
from enformer.weights.formats import NPZ_EXPORT_SNIPPET
from enformer.weights.mapping import parameter_table

from .conftest import random_onehot, randomize_batch_norm

# enformer-pytorch's _trunk Sequential index of each of its top-level modules.
HF_TRUNK_INDEX = {"stem": 1, "conv_tower": 2, "transformer": 4, "final_pointwise": 6}

# A tiny model expressible in an enformer-pytorch config.json.
HF_TINY_CONFIG = {
    "dim": 48,
    "depth": 1,
    "heads": 2,
    "attn_dim_key": 8,
    "num_downsamples": 4,
    "dim_divisible_by": 8,
    "target_length": 16,
    "output_heads": {"human": 5, "mouse": 3},
    "use_tf_gamma": True,
}


# ------------------------------------------------------------------- helpers
def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


def hf_state_dict(model: Enformer, aliases: bool = True) -> dict[str, torch.Tensor]:
    """``model``'s weights in enformer-pytorch's layout (what its save_pretrained writes)."""
    ours = model.state_dict()
    sd: dict[str, torch.Tensor] = {}
    for entry in parameter_table(model.config):
        t = ours[entry.ours].clone()
        if entry.hf.endswith("to_attn_logits.weight"):
            t = t[:, :, None, None]  # a 1x1 Conv2d there
        sd[entry.hf] = t
        if entry.hf.endswith(".0.running_mean"):
            counter = entry.ours.replace("running_mean", "num_batches_tracked")
            sd[entry.hf.replace("running_mean", "num_batches_tracked")] = ours[counter].clone()
    if aliases:
        for key in list(sd):
            top, _, rest = key.partition(".")
            if top in HF_TRUNK_INDEX:
                sd[f"_trunk.{HF_TRUNK_INDEX[top]}.{rest}"] = sd[key]
    return sd


def make_hf_tiny() -> Enformer:
    torch.manual_seed(1)
    model = Enformer(config_from_hf(HF_TINY_CONFIG)).eval()
    randomize_batch_norm(model, seed=1)
    return model


def write_hf_dir(model: Enformer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(HF_TINY_CONFIG))
    torch.save(hf_state_dict(model), directory / "pytorch_model.bin")
    return directory


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    # Build the parser with only `convert`, so that other commands still being written
    # elsewhere in the tree cannot break these tests.
    assert "convert" in cli_main.COMMANDS
    saved = cli_main.COMMANDS
    cli_main.COMMANDS = ("convert",)
    try:
        code = cli_main.main(list(argv))
    finally:
        cli_main.COMMANDS = saved
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def outputs(model: Enformer, length: int) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(random_onehot(2, length, seed=3))


# ------------------------------------------------------------ shared vectors
@pytest.fixture(scope="module")
def npz_variables(vectors) -> dict[str, np.ndarray]:
    with np.load(vectors / "tf_variables.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def reference_state(vectors) -> dict[str, torch.Tensor]:
    """State dict of the vectors' model read from the TF npz."""
    return load_pretrained(vectors / "tf_variables.npz").state_dict()


def save_npz(path: Path, variables: dict[str, np.ndarray]) -> Path:
    np.savez(path, **variables)
    return path


# ================================================================ round trip
def test_save_load_round_trip(tiny_model, tmp_path):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == "enformer" and meta["format_version"] == 1
    fields = {k: v for k, v in meta.items() if k not in ("format", "format_version")}
    assert EnformerConfig.from_dict(fields) == tiny_model.config

    loaded = load_pretrained(out)
    assert not loaded.training
    assert loaded.config == tiny_model.config
    assert_same_state(loaded.state_dict(), tiny_model.state_dict())
    ref, got = outputs(tiny_model, 2048), outputs(loaded, 2048)
    for head in ref:
        assert torch.equal(ref[head], got[head])


def test_model_methods_delegate(tiny_model, tmp_path):
    tiny_model.save_pretrained(str(tmp_path / "m"))
    loaded = Enformer.from_pretrained(str(tmp_path / "m"))
    assert_same_state(loaded.state_dict(), tiny_model.state_dict())


def test_save_into_existing_directory_replaces_files_only(tiny_model, tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "README.md").write_text("mine")
    save_pretrained(Enformer(EnformerConfig.tiny(heads={"human": 3})), out)
    save_pretrained(tiny_model, out)
    assert (out / "README.md").read_text() == "mine"
    assert_same_state(load_pretrained(out).state_dict(), tiny_model.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_load_options(tiny_model, tmp_path):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    half = load_pretrained(out, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    wide = load_pretrained(out, config={"target_length": 32})
    assert wide.config.target_length == 32
    assert outputs(wide, 2048)["human"].shape == (2, 32, 10)
    with pytest.raises(ValueError, match="bogus_field"):
        load_pretrained(out, config={"bogus_field": 1})
    with pytest.raises(ValueError, match="floating"):
        load_pretrained(out, dtype="int64")


def test_single_files(tiny_model, tmp_path):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    # The .safetensors itself, config.json beside it.
    a = load_pretrained(out / "model.safetensors")
    assert_same_state(a.state_dict(), tiny_model.state_dict())
    # Alone: the config stored in the safetensors metadata rebuilds it.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "model.safetensors", alone / "weights.safetensors")
    b = load_pretrained(alone / "weights.safetensors")
    assert_same_state(b.state_dict(), tiny_model.state_dict())
    # A bare state_dict file without any config: config= is required.
    torch.save(tiny_model.state_dict(), alone / "bare.pt")
    with pytest.raises(WeightsNotFound, match="config.json"):
        load_pretrained(alone / "bare.pt")
    c = load_pretrained(alone / "bare.pt", config=EnformerConfig.tiny())
    assert_same_state(c.state_dict(), tiny_model.state_dict())


def test_strict_and_non_strict_heads(tiny_model, tmp_path):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    new = EnformerConfig.tiny(heads={"human": 10, "rat": 4})
    with pytest.raises(WeightsError) as err:
        load_pretrained(out, config=new)
    assert "heads.rat.linear.weight" in str(err.value)
    assert "heads.mouse.linear.weight" in str(err.value)
    model = load_pretrained(out, config=new, strict=False)
    ref = tiny_model.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("heads.rat"):
            assert torch.equal(v, ref[k]), k
    assert model.heads["rat"].linear.weight.shape == (4, 96)


# ============================================================ enformer-pytorch
def test_hf_directory_tiny(tmp_path):
    model = make_hf_tiny()
    d = write_hf_dir(model, tmp_path / "hf")
    loaded = load_pretrained(d)  # use_tf_gamma in the config is ignored
    assert loaded.config == model.config
    assert_same_state(loaded.state_dict(), model.state_dict())
    ref, got = outputs(model, 512), outputs(loaded, 512)
    assert torch.equal(ref["human"], got["human"])


def test_hf_directory_matches_tf_npz(vectors, reference_state, tmp_path):
    hf = load_pretrained(vectors / "hf")
    assert_same_state(hf.state_dict(), reference_state)
    # Re-saved as model.safetensors without the _trunk.* aliases, same config.json.
    sd = torch.load(vectors / "hf" / "pytorch_model.bin", map_location="cpu", weights_only=True)
    assert any(k.startswith("_trunk.") for k in sd)
    plain = {k: v.contiguous() for k, v in sd.items() if not k.startswith("_trunk.")}
    d = tmp_path / "hf_safe"
    d.mkdir()
    save_file(plain, str(d / "model.safetensors"))
    shutil.copy(vectors / "hf" / "config.json", d / "config.json")
    assert_same_state(load_pretrained(d).state_dict(), reference_state)


# ====================================================================== TF
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("missing", "enformer/trunk/transformer/transformer_block_1/mlp/layer_norm/scale:0"),
        ("extra", "enformer/trunk/bogus:0"),
        ("shape", "enformer/trunk/transformer/transformer_block_1/mlp/layer_norm/scale:0"),
    ],
)
def test_tf_mismatches_are_named(npz_variables, tmp_path, change, named):
    v = dict(npz_variables)
    if change == "missing":
        del v[named]
    elif change == "extra":
        v[named] = np.zeros(3, np.float32)
    else:
        v[named] = v[named].reshape(1, -1)
    path = save_npz(tmp_path / "bad.npz", v)
    with pytest.raises(WeightsError) as err:
        load_pretrained(path)
    message = str(err.value)
    assert named in message
    assert str(path) in message


def test_tf_naming_variants(npz_variables, reference_state, tmp_path):
    renamed = {}
    for name, value in npz_variables.items():
        new = name
        if "/exponential_moving_average/" in name:
            stat = "moving_variance" if name.endswith("#1") else "moving_mean"
            new = name.replace("exponential_moving_average", stat).removesuffix("#1")
        elif "/mlp/linear/" in name and name.endswith("#1"):
            new = name.replace("/mlp/linear/", "/mlp/linear_1/").removesuffix("#1")
        assert new not in renamed
        renamed[new] = value
    assert not any("#" in k for k in renamed)
    model = load_pretrained(save_npz(tmp_path / "renamed.npz", renamed))
    assert_same_state(model.state_dict(), reference_state)


def _fake_tensorflow(variables: dict[str, np.ndarray]) -> types.ModuleType:
    """A stand-in for TensorFlow whose SavedModel exposes ``variables`` with TF's names."""

    class Variable:
        def __init__(self, name: str, value: np.ndarray) -> None:
            self.name = name.split("#")[0]  # TF repeats names; the npz marks repeats '#k'
            self._value = value

        def numpy(self) -> np.ndarray:
            return self._value

    model = types.SimpleNamespace(variables=[Variable(k, v) for k, v in variables.items()])
    tf = types.ModuleType("tensorflow")
    tf.saved_model = types.SimpleNamespace(load=lambda path: types.SimpleNamespace(model=model))
    return tf


def test_savedmodel_with_and_without_tensorflow(
    npz_variables, reference_state, tmp_path, monkeypatch
):
    saved = tmp_path / "enformer_1"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    with pytest.raises(ImportError) as err:
        convert_weights(saved, tmp_path / "out")
    assert "np.savez" in str(err.value) and str(saved) in str(err.value)
    assert not (tmp_path / "out").exists()

    monkeypatch.setitem(sys.modules, "tensorflow", _fake_tensorflow(npz_variables))
    assert list(read_tf_savedmodel(saved)) == list(npz_variables)  # '#1' marks reproduced
    summary = convert_weights(saved, tmp_path / "out")
    assert summary["source_kind"] == "tf-savedmodel"
    assert_same_state(load_pretrained(tmp_path / "out").state_dict(), reference_state)
    # The export snippet the error message gives writes the same npz.
    monkeypatch.chdir(tmp_path)
    exec(NPZ_EXPORT_SNIPPET.replace("SAVED_MODEL_DIR", str(saved)), {})
    with np.load(tmp_path / "enformer_tf.npz") as f:
        assert f.files == list(npz_variables)


# ===================================================================== CLI
def test_cli_convert_npz_and_hf(vectors, reference_state, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "convert", str(vectors / "tf_variables.npz"), str(tmp_path / "a")
    )
    assert code == 0, err
    assert "parameters: 11335596" in out
    code, out, err = run_cli(capsys, "convert", str(vectors / "hf"), str(tmp_path / "b"), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] and summary["source_kind"] == "enformer-pytorch"
    assert summary["heads"] == {"human": 5313, "mouse": 1643}
    assert summary["output"] == str(tmp_path / "b")
    a = load_pretrained(tmp_path / "a").state_dict()
    b = load_pretrained(tmp_path / "b").state_dict()
    assert_same_state(a, b)
    assert_same_state(a, reference_state)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["format"] == "enformer"


def test_cli_convert_refuses_non_empty_out(tiny_model, tmp_path, capsys):
    src = save_pretrained(tiny_model, tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    code, stdout, err = run_cli(capsys, "convert", str(src), str(out))
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and "--overwrite" in err
    code, _, err = run_cli(
        capsys, "convert", str(src), str(out), "--overwrite", "--set", "description=copy"
    )
    assert code == 0, err
    copy = load_pretrained(out)
    assert copy.config.description == "copy"
    assert_same_state(copy.state_dict(), tiny_model.state_dict())


# ========================================================== corrupt / missing
def test_truncated_safetensors(tiny_model, tmp_path):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="model.safetensors.*truncated or corrupt"):
        load_pretrained(out)


def test_garbage_pytorch_bin_and_cli_error_line(tmp_path, capsys):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(HF_TINY_CONFIG))
    (d / "pytorch_model.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsError, match="pytorch_model.bin.*not a readable PyTorch"):
        load_pretrained(d)
    code, out, err = run_cli(capsys, "convert", str(d), str(tmp_path / "out"))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "pytorch_model.bin" in lines[0]
    assert not (tmp_path / "out").exists()


_PICKLE_RAN = []


def _record_pickle_ran() -> None:
    _PICKLE_RAN.append(True)


class _Payload:
    def __reduce__(self):
        return (_record_pickle_ran, ())


def test_pickled_code_is_never_run(tmp_path):
    d = write_hf_dir(make_hf_tiny(), tmp_path / "hf")
    sd = torch.load(d / "pytorch_model.bin", weights_only=True)
    sd["payload"] = _Payload()
    torch.save(sd, d / "pytorch_model.bin")
    with pytest.raises(WeightsError, match="contains pickled code .*refuses to run"):
        load_pretrained(d)
    assert _PICKLE_RAN == []


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"dim": 48, ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"hello": 1}', "not an Enformer config"),
        ('{"channels": 48, "wings": 2}', "wings"),
        ('{"format": "enformer", "format_version": 99, "channels": 48}', "newer enformer"),
    ],
)
def test_bad_config_json(tiny_model, tmp_path, text, match):
    out = save_pretrained(tiny_model, tmp_path / "ckpt")
    (out / "config.json").write_text(text)
    with pytest.raises(WeightsError, match=match) as err:
        load_pretrained(out)
    assert "config.json" in str(err.value)


def test_truncated_npz(npz_variables, tmp_path):
    path = save_npz(tmp_path / "tf.npz", npz_variables)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="tf.npz"):
        load_pretrained(path)


def test_missing_paths(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(WeightsNotFound, match="nowhere"):
        load_pretrained(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsNotFound, match="model.safetensors or pytorch_model.bin"):
        load_pretrained(empty)
    code, out, err = run_cli(capsys, "convert", str(missing), str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "nowhere" in err


def test_convert_library_refuses_non_empty(tiny_model, tmp_path):
    src = save_pretrained(tiny_model, tmp_path / "src")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_weights(src, src)
    with pytest.raises(FileExistsError, match="is a file"):
        convert_weights(src, src / "config.json")


# ====================================================================== hub
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


class _Server:
    """A static file server on 127.0.0.1; ``truncate`` cuts weight files in half."""

    def __init__(self, root: Path, truncate: bool = False) -> None:
        requests: list[str] = []
        self.requests = requests

        class Handler(_QuietHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                target = root / self.path.lstrip("/")
                if truncate and target.is_file() and target.name != "config.json":
                    data = target.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def hub_env(monkeypatch) -> Iterator[None]:
    for var in ("ENFORMER_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "ENFORMER_CACHE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")
    yield


@pytest.fixture
def hub_root(tmp_path) -> tuple[Path, Enformer]:
    """``{owner}/{name}/resolve/main/`` holding a tiny enformer-pytorch checkpoint."""
    model = make_hf_tiny()
    write_hf_dir(model, tmp_path / "hub" / "acme" / "tiny-enformer" / "resolve" / "main")
    return tmp_path / "hub", model


def _cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_hub_download_then_cache(hub_env, hub_root, tmp_path, monkeypatch):
    root, model = hub_root
    server = _Server(root)
    monkeypatch.setenv("ENFORMER_HUB_ENDPOINT", server.url + "/")
    cache = tmp_path / "cache"
    try:
        first = load_pretrained("acme/tiny-enformer", cache_dir=cache, progress=False)
    finally:
        server.stop()
    assert server.requests == [
        "/acme/tiny-enformer/resolve/main/config.json",
        "/acme/tiny-enformer/resolve/main/model.safetensors",  # 404: falls back
        "/acme/tiny-enformer/resolve/main/pytorch_model.bin",
    ]
    assert _cache_files(cache) == [
        "hub/acme--tiny-enformer/main/config.json",
        "hub/acme--tiny-enformer/main/pytorch_model.bin",
    ]
    assert_same_state(first.state_dict(), model.state_dict())
    # The server is gone: the cache answers, also through ENFORMER_CACHE and the class method.
    monkeypatch.setenv("ENFORMER_CACHE", str(cache))
    second = Enformer.from_pretrained("acme/tiny-enformer")
    assert_same_state(second.state_dict(), model.state_dict())


def test_hub_offline_and_unreachable(hub_env, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ENFORMER_HUB_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsNotFound) as err:
        load_pretrained("acme/tiny-enformer", cache_dir=tmp_path / "c", progress=False)
    message = str(err.value)
    assert "acme/tiny-enformer is not an existing file or directory" in message
    assert "network unavailable" in message
    assert "pass its path" in message and f"127.0.0.1:{port}" in message

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFound, match="offline mode is on .HF_HUB_OFFLINE=1."):
        load_pretrained("acme/tiny-enformer", cache_dir=tmp_path / "c", progress=False)
    assert _cache_files(tmp_path / "c") == []


def test_hub_unknown_model(hub_env, hub_root, tmp_path, monkeypatch):
    root, _ = hub_root
    server = _Server(root)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    try:
        with pytest.raises(WeightsNotFound, match="HTTP 404"):
            load_pretrained("acme/other", cache_dir=tmp_path / "c", progress=False)
    finally:
        server.stop()


def test_hub_download_cut_short(hub_env, hub_root, tmp_path, monkeypatch):
    root, model = hub_root
    cache = tmp_path / "cache"
    server = _Server(root, truncate=True)
    monkeypatch.setenv("ENFORMER_HUB_ENDPOINT", server.url)
    try:
        with pytest.raises(WeightsError, match="cut short"):
            load_pretrained("acme/tiny-enformer", cache_dir=cache, progress=False)
    finally:
        server.stop()
    # Only the complete config.json is there: no weights under a final name, no .part file.
    assert _cache_files(cache) == ["hub/acme--tiny-enformer/main/config.json"]
    # A later, complete download repairs the cache.
    server = _Server(root)
    monkeypatch.setenv("ENFORMER_HUB_ENDPOINT", server.url)
    try:
        again = load_pretrained("acme/tiny-enformer", cache_dir=cache)  # with a progress bar
    finally:
        server.stop()
    assert_same_state(again.state_dict(), model.state_dict())
