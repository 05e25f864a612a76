"""Borzoi: parity with Calico's own code (vectors/borzoi), the official layout, geometry, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from enformer.model.borzoi import Borzoi, BorzoiConfig, central_mask_features
from enformer.model.geometry import output_geometry
from enformer.weights.borzoi import (
    _kind_and_variable,
    keras_layout,
    load_borzoi,
    load_borzoi_folder,
    read_keras_npz,
)

# The vectors' README: max |ours - ref| / (|ref| + 1e-3) <= 1e-3 (float32 on a CPU).
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def reference(borzoi_dir) -> dict[str, np.ndarray]:
    with np.load(borzoi_dir / "io.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def tiny_config(borzoi_dir) -> BorzoiConfig:
    meta = json.loads((borzoi_dir / "meta.json").read_text())
    return BorzoiConfig.from_params(meta["params_model"])


def _relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3)))


def _check_parity(model: Borzoi, reference) -> None:
    with torch.no_grad():
        out = model(torch.from_numpy(reference["x"]))
    for head in ("human", "mouse"):
        assert out[head].shape == reference[head].shape
        assert _relative_error(out[head].numpy(), reference[head]) <= TOLERANCE


def test_tiny_config_is_the_vectors_and_the_preset(tiny_config):
    assert tiny_config == BorzoiConfig.preset("tiny")
    assert tiny_config.tower_widths == [56, 64, 72, 80, 88, 96]


def test_parity_through_keras_h5_files(borzoi_dir, reference, tiny_config):
    model = load_borzoi(
        tiny_config,
        h5={"human": borzoi_dir / "weights_human.h5", "mouse": borzoi_dir / "weights_mouse.h5"},
    )
    _check_parity(model, reference)


def test_parity_through_variables_npz(borzoi_dir, reference, tiny_config):
    _check_parity(load_borzoi(tiny_config, npz=borzoi_dir / "variables.npz"), reference)


def test_calico_release_folder_loads(tmp_path, borzoi_dir, reference):
    meta = json.loads((borzoi_dir / "meta.json").read_text())
    (tmp_path / "params.json").write_text(json.dumps({"model": meta["params_model"]}))
    shutil.copy(borzoi_dir / "weights_human.h5", tmp_path / "model0_best.h5")
    shutil.copy(borzoi_dir / "weights_mouse.h5", tmp_path / "model1_best.h5")
    _check_parity(load_borzoi_folder(tmp_path), reference)
    from enformer.weights import load_pretrained

    _check_parity(load_pretrained(tmp_path), reference)  # the one loader finds the family
    # One head only: the folder's model has that head.
    (tmp_path / "model1_best.h5").unlink()
    assert list(load_borzoi_folder(tmp_path).heads) == ["human"]


def test_official_layout_maps_one_to_one(borzoi_dir):
    official = json.loads((borzoi_dir / "official_meta.json").read_text())
    config = BorzoiConfig.from_params(official["params_model"])
    assert config == BorzoiConfig.preset("official")
    with torch.device("meta"):
        model = Borzoi(config)
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    tensors = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    layout = keras_layout(config)
    assert len(layout) == len(official["variables"])
    for (name, shape), (kind, variable, target, perm) in zip(
        official["variables"], layout, strict=True
    ):
        assert _kind_and_variable(name) == (kind, variable), name
        want = tuple(shape[i] for i in perm) if perm else tuple(shape)
        assert tuple(tensors[target].shape) == want, (name, target)
    assert sorted(target for _, _, target, _ in layout) == sorted(tensors)  # every one, once
    assert sum(v.numel() for v in tensors.values()) == official["num_parameters"] == 190_927_691
    geometry = output_geometry(config)
    out_bins = official["outputs"]["human"][1]
    assert (geometry.bin_size, geometry.n_bins, geometry.offset) == (32, out_bins, 16 * 32)


def test_batch_size_independence(borzoi_dir, reference, tiny_config):
    model = load_borzoi(tiny_config, npz=borzoi_dir / "variables.npz")
    x = torch.from_numpy(reference["x"])
    with torch.no_grad():
        both = model(x)["human"]
        one = torch.cat([model(x[i : i + 1])["human"] for i in range(2)])
    torch.testing.assert_close(both, one, rtol=1e-5, atol=1e-6)


def test_positional_features_follow_the_actual_length():
    """DESIGN §7: F/2 central-mask features, widths r**k - 1 with r = exp(log(T+1)/(F/2)),
    1 where the width exceeds |d|, then the same times sign(d); T = bins at the attention."""
    for t in (8, 512, 4096):
        got = central_mask_features(t, 32).numpy()
        d = np.arange(-t + 1, t, dtype=np.float64)
        widths = np.exp(np.log(t + 1) / 16) ** np.arange(1, 17) - 1
        mask = (widths[None] > np.abs(d)[:, None]).astype(np.float32)
        want = np.concatenate([mask, np.sign(d)[:, None] * mask], axis=1)
        # float32 (as TensorFlow computes them) may move a width across an integer distance
        # only when it lies within rounding of it: allow no more than that.
        assert got.shape == (2 * t - 1, 32)
        assert np.mean(got != want) < 1e-3
        assert got[t - 1, :16].all() and not got[t - 1, 16:].any()  # d = 0: sign 0
        assert not got[0, :15].any()  # the farthest distance sits beyond all but the widest


def test_distinct_position_rows_give_the_same_attention():
    """central_mask_classes: the distinct rows rebuild the table exactly, there are few of
    them, and attention from them (gathered logits) equals attention from every distance row,
    on both paths and for a block of queries that starts inside the sequence."""
    from enformer.model.attention import blocked_relative_attention, fused_relative_attention
    from enformer.model.borzoi import central_mask_classes

    t = 300
    distinct, index = central_mask_classes(t, 32)
    assert torch.equal(distinct[index], central_mask_features(t, 32))
    assert distinct.shape[0] <= 33 and index.shape == (2 * t - 1,)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(32, 2 * 8, generator=g)
    q_w, q_r = torch.randn(2, 1, 2, 40, 8, generator=g)
    k, v = torch.randn(1, 2, t, 8, generator=g), torch.randn(1, 2, t, 12, generator=g)
    full = (central_mask_features(t, 32) @ w).view(-1, 2, 8).transpose(0, 1)
    few = (distinct @ w).view(-1, 2, 8).transpose(0, 1)
    for attend in (blocked_relative_attention, fused_relative_attention):
        want = attend(q_w, q_r, k, v, full, 100)
        got = attend(q_w, q_r, k, v, few, 100, index=index)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_parity_at_another_length(borzoi_dir, tiny_config):
    """Calico's code at 32,768 bp (tests/data/borzoi_32k, made by its make_vectors.py from the
    shared weights): the attention sees 256 bins, so its positional features differ from the
    65,536-bp vectors'; an N run is included."""
    with np.load(Path(__file__).parent / "data" / "borzoi_32k" / "io.npz") as f:
        codes, ref = f["codes"], {h: f[h] for h in ("human", "mouse")}
    x = np.zeros((*codes.shape, 4), np.float32)
    rows = codes[0] >= 0
    x[0, rows, codes[0][rows]] = 1
    model = load_borzoi(tiny_config, npz=borzoi_dir / "variables.npz")
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    for head in ("human", "mouse"):
        assert out[head].shape == ref[head].shape == (1, 32_768 // 32 - 32, tiny_config.heads[head])
        assert _relative_error(out[head].numpy(), ref[head]) <= TOLERANCE
    assert output_geometry(tiny_config, 32_768).n_bins == 992


def test_bad_inputs_are_named(tmp_path, borzoi_dir, tiny_config):
    model = Borzoi(tiny_config).eval()
    with pytest.raises(ValueError, match="multiple of 128"):
        model(torch.zeros(1, 1000, 4))
    with pytest.raises(ValueError, match=r"\(batch, length, 4\)"):
        model(torch.zeros(4, 1024))
    # Weights of another configuration: the first variable that does not fit is named.
    other = BorzoiConfig.from_params(
        {"model": {**json.loads((borzoi_dir / "meta.json").read_text())["params_model"]}},
        dna_filters=40,
    )
    with pytest.raises(ValueError, match=r"conv1d/kernel:0 \(15, 4, 48\) does not fit conv_dna"):
        load_borzoi(other, npz=borzoi_dir / "variables.npz")
    with pytest.raises(ValueError, match="no checkpoint for head"):
        load_borzoi(tiny_config, h5={"human": borzoi_dir / "weights_human.h5"})
    truncated = dict(read_keras_npz(borzoi_dir / "variables.npz")[:-2])
    np.savez(tmp_path / "truncated.npz", **truncated)
    with pytest.raises(ValueError, match="holds 108 variables; a Borzoi of this configuration has 110"):
        load_borzoi(tiny_config, npz=tmp_path / "truncated.npz")
    with pytest.raises(ValueError, match="not a Borzoi layout"):
        BorzoiConfig.from_params({"trunk": [{"name": "conv_block"}]})


def test_borzoi_pytorch_layout_round_trip(tmp_path, borzoi_dir, reference, tiny_config):
    """Our weights under borzoi-pytorch's names (a Hugging Face folder) load back unchanged."""
    from safetensors.torch import save_file

    from enformer.weights import load_pretrained
    from enformer.weights.borzoi import from_borzoi_pytorch, to_borzoi_pytorch

    model = load_borzoi(tiny_config, npz=borzoi_dir / "variables.npz")
    theirs = to_borzoi_pytorch(model)
    assert theirs["human_head.weight"].shape == (24, 80, 1)  # a 1x1 Conv1d there
    assert "unet1.1.conv_layer.weight" in theirs and "horizontal_conv0.norm.running_var" in theirs
    back = from_borzoi_pytorch(theirs, tiny_config)
    for name, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    _check_parity(back, reference)
    # As a Hugging Face folder: borzoi-pytorch's config.json names only the released sizes.
    save_file({k: v.contiguous() for k, v in theirs.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "borzoi", "dim": 96}))
    with pytest.raises(ValueError, match="not the released Borzoi architecture"):
        load_pretrained(tmp_path)
    del theirs["conv_dna.conv_layer.bias"]
    with pytest.raises(ValueError, match="missing.*conv_dna.conv_layer.bias"):
        from_borzoi_pytorch(theirs, tiny_config)


def test_official_layout_equals_borzoi_pytorch():
    """Every tensor name and shape of borzoi-pytorch's released model, one to one."""
    bp = pytest.importorskip("borzoi_pytorch", reason="borzoi-pytorch is not installed")
    from borzoi_pytorch.config_borzoi import BorzoiConfig as TheirConfig

    from enformer.weights.borzoi import config_from_borzoi_pytorch, to_borzoi_pytorch

    hf = {"enable_mouse_head": True, "return_center_bins_only": False}
    with torch.device("meta"):
        theirs = bp.Borzoi(TheirConfig(**hf)).state_dict()
        ours = to_borzoi_pytorch(Borzoi(config_from_borzoi_pytorch(hf)))
    assert set(theirs) == set(ours)
    assert all(theirs[k].shape == ours[k].shape for k in theirs)
    assert config_from_borzoi_pytorch({}).crop == (16384 - 6144) // 2  # the training crop


# ------------------------------------------------------------------------------ Flashzoi


def test_rotary_tables_follow_the_formula():
    from enformer.model.borzoi import rotary_tables

    cos, sin = rotary_tables(10, 8, 20_000.0)
    p, j = np.arange(10)[:, None], np.arange(4)[None]
    angle = p * 20_000.0 ** (-2 * j / 8)
    np.testing.assert_allclose(cos.numpy(), np.tile(np.cos(angle), 2), atol=1e-6)
    np.testing.assert_allclose(sin.numpy(), np.tile(np.sin(angle), 2), atol=1e-6)


def test_rotary_logits_depend_only_on_the_distance():
    """The same query and key at every position: after rotation q_m . k_n is a function of
    m - n alone (a Toeplitz matrix), on the rotated features and hence on all of them."""
    from enformer.model.borzoi import apply_rotary, rotary_tables

    torch.manual_seed(0)
    t, d = 24, 12
    q = torch.randn(1, 1, 1, d).expand(1, 1, t, d)
    k = torch.randn(1, 1, 1, d).expand(1, 1, t, d)
    cos, sin = rotary_tables(t, 8, 100.0)
    logits = (apply_rotary(q, cos, sin) @ apply_rotary(k, cos, sin).transpose(-1, -2))[0, 0]
    torch.testing.assert_close(logits[1:, 1:], logits[:-1, :-1], rtol=1e-5, atol=1e-5)
    assert logits.std() > 0.1  # positions matter
    torch.testing.assert_close(apply_rotary(q, cos, sin)[..., 8:], q[..., 8:])  # unrotated tail


def _tiny_flashzoi() -> Borzoi:
    from dataclasses import replace

    torch.manual_seed(1)
    config = replace(BorzoiConfig.preset("tiny"), attention="rotary", kv_heads=1, rotary_dim=16)
    model = Borzoi(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


def test_flashzoi_attention_groups_and_paths():
    model = _tiny_flashzoi()
    attention = model.transformer[0].attention
    assert attention.Wqkv.weight.shape == ((2 + 2 * 1) * 48, 96)  # 2 query heads, 1 key/value
    x = torch.randn(2, 64, 96)
    with torch.no_grad():
        attention.implementation = "blocked"
        exact = attention(x)
        attention.implementation = "fused"
        fused = attention(x)
        attention.implementation = "auto"
    torch.testing.assert_close(fused, exact, rtol=1e-5, atol=1e-6)
    # Both query heads read the one key/value head: zero its values, and every head's output
    # (before the output projection) is zero, leaving only the projection's bias.
    with torch.no_grad():
        attention.Wqkv.weight[3 * 48 :] = 0
        attention.Wqkv.bias[3 * 48 :] = 0
        out = attention(x)
    torch.testing.assert_close(out, attention.out_proj.bias.expand_as(out))


def test_flashzoi_borzoi_pytorch_layout_round_trip():
    from enformer.weights.borzoi import (
        config_from_borzoi_pytorch,
        from_borzoi_pytorch,
        to_borzoi_pytorch,
    )

    model = _tiny_flashzoi()
    theirs = to_borzoi_pytorch(model)
    assert "transformer.1.0.fn.1.mha.Wqkv.bias" in theirs
    assert not any("rel_pos_bias" in k for k in theirs)
    back = from_borzoi_pytorch(theirs, model.config)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, 4096)), 4).float()
    with torch.no_grad():
        torch.testing.assert_close(back(x)["human"], model(x)["human"], rtol=0, atol=0)
    flash = config_from_borzoi_pytorch({"flashed": True, "enable_mouse_head": True})
    assert flash.attention == "rotary" and flash.kv_heads == 4
    assert set(flash.heads) == {"human", "mouse"}
    with torch.device("meta"):
        official = to_borzoi_pytorch(Borzoi(flash))
    assert official["transformer.7.0.fn.1.mha.Wqkv.weight"].shape == (16 * 192, 1536)
    with pytest.raises(ValueError, match="not Flashzoi"):
        keras_layout(flash)


# ------------------------------------------------------------------------------ commands


def test_predict_command_writes_32bp_bigwigs(tmp_path, capsys, calico_folder, shared_data):
    """``enformer predict --weights <Calico folder>``: 32-bp bins at real coordinates, equal to
    the model's output for the window the command reads (bin 0 at the region's start)."""
    pyBigWig = pytest.importorskip("pyBigWig")
    from enformer.cli.main import main
    from enformer.data.genome import Genome
    from enformer.data.sequence import one_hot

    fasta = str(shared_data / "genome" / "hg38_subset.fa.gz")
    out = tmp_path / "pred"
    code = main(["predict", "--weights", str(calico_folder), "--fasta", fasta, "--region",
                 "chr1:100,001-110,000", "--tracks", "0,5", "--out", str(out), "--json", "-q"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and len(summary["files"]) == 2
    model = load_borzoi_folder(calico_folder)
    start = 100_000 - 16 * 32  # the crop's 16 bins of 32 bp before output bin 0
    with Genome(fasta) as genome:
        x = torch.from_numpy(one_hot(genome.fetch("chr1", start, start + 65_536)))[None]
    with torch.no_grad():
        expected = model(x)["human"][0].numpy()
    n_bins = 10_000 // 32 + 1  # bins until the region's end is covered
    for path, track in ((out / "human_track0.bw", 0), (out / "human_track5.bw", 5)):
        with pyBigWig.open(str(path)) as bw:
            intervals = bw.intervals("chr1", 100_000, 110_000)
        assert [(a, b) for a, b, _ in intervals[:2]] == [(100_000, 100_032), (100_032, 100_064)]
        values = np.array([v for _, _, v in intervals], dtype=np.float32)
        assert len(values) == n_bins
        np.testing.assert_allclose(values, expected[:n_bins, track], rtol=1e-5, atol=1e-6)


def test_borzoi_track_sheet_selection(borzoi_dir):
    """Borzoi's own sheets (7,611 human tracks, RNA-seq with strand pairs) through the one
    selection resolver: by index, identifier, assay and search."""
    from enformer.data.tracks import TrackSheet
    from enformer.inference.selection import select_tracks

    config = BorzoiConfig.preset("official")
    sheet = TrackSheet.read(borzoi_dir / "targets_human.txt")
    assert len(sheet) == config.heads["human"] == 7611
    rna = select_tracks(config, "assay:RNA", head="human", sheet=sheet)
    assert len(rna.indices) == sum(t.assay == "RNA" for t in sheet) > 1000
    assert select_tracks(config, "CNhs10608-", head="human", sheet=sheet).indices == [1]
    assert select_tracks(config, "0-3", head="human", sheet=sheet).names[:2] == [
        "CNhs10608+", "CNhs10608-"]  # fmt: skip
    pairs = sheet.strand_pair_permutation()
    assert pairs[0] == 1 and pairs[1] == 0 and (pairs[pairs] == np.arange(len(sheet))).all()


@pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")
def test_score_ism_embed_attribute_info_run_with_borzoi(tmp_path, capsys, calico_folder,
                                                         shared_data):
    """Every command takes a Borzoi folder; ``score`` with exact reuse (the default) gives the
    numbers of full forward passes (--no-reuse)."""
    from enformer.cli.main import main

    fasta = str(shared_data / "genome" / "hg38_subset.fa.gz")
    vcf = str(shared_data / "variants" / "gtex_eqtl_chr1.vcf")
    common = ["--weights", str(calico_folder), "--fasta", fasta]
    for extra, name in (([], "reuse.tsv"), (["--no-reuse"], "naive.tsv")):
        argv = ["score", *common, "--vcf", vcf, "--tracks", "0,1", "--stats", "SAD,logSED",
                "--out", str(tmp_path / name), "-q", *extra]  # fmt: skip
        assert main(argv) == 0
    reuse, naive = (pd.read_csv(tmp_path / n, sep="\t") for n in ("reuse.tsv", "naive.tsv"))
    assert len(reuse) == 8 * 2 and list(reuse.columns) == list(naive.columns)
    # SAD is a difference of sums over 2,016 bins of ~0.7: float32 rounding of the two
    # paths (a conv over a slice vs the whole sequence) leaves ~1e-5 in it.
    np.testing.assert_allclose(reuse["SAD"], naive["SAD"], rtol=0, atol=3e-5)
    np.testing.assert_allclose(reuse["logSED"], naive["logSED"], rtol=0, atol=1e-6)
    assert (naive["SAD"].abs() > 3e-4).mean() > 0.5  # the effects are well above that
    region = ["--region", "chr1:100,001-100,100"]
    assert main(["ism", *common, *region, "--window", "chr1:100,041-100,044", "--tracks", "0",
                 "--plot", "none", "--out", str(tmp_path / "ism"), "-q"]) == 0  # fmt: skip
    assert main(["attribute", *common, *region, "--tracks", "0", "--plot", "none",
                 "--out", str(tmp_path / "attr"), "-q"]) == 0  # fmt: skip
    assert main(["embed", *common, *region, "--bins", "center", "--out",
                 str(tmp_path / "emb"), "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["info", "--weights", str(calico_folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["geometry"]["bin_size_bp"] == 32 and info["geometry"]["output_bins"] == 2016
    assert info["heads"] == {"human": 24, "mouse": 12}
