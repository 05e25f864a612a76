"""The bundled mini model and ``enformer demo`` (issue 7)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, predict
from enformer.cli.main import main
from enformer.data.genome import Genome
from enformer.data.tracks import TrackSheet
from enformer.demo import (
    DEMO_VARIANTS,
    MOTIFS,
    build_construct,
    construct_length,
    demo_variants,
    model_window,
)
from enformer.weights import BUNDLED_MODELS, bundled_path, load_pretrained, model_card, weights_dir

MINI = bundled_path("mini")


@pytest.fixture(scope="module")
def mini() -> Enformer:
    return Enformer.from_pretrained("mini")


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((MINI / "golden.json").read_text())


# ---------------------------------------------------------------------------- the model


def test_mini_is_bundled_small_and_says_what_it_is(mini):
    assert "mini" in BUNDLED_MODELS
    size = (MINI / "model.safetensors").stat().st_size
    assert 1e6 < size < 20e6  # well under 20 MB
    cfg = mini.config
    assert cfg.sequence_length == 131_072 and cfg.bin_size == 128 and cfg.target_length == 512
    assert cfg.heads == {"human": 74}
    assert "mini" in cfg.description and "official weights" in cfg.description
    n = sum(p.numel() for p in mini.parameters())
    assert 1_500_000 < n < 5_000_000
    assert not mini.training


def test_mini_weights_are_the_ones_the_golden_outputs_came_from(golden):
    digest = hashlib.sha256((MINI / "model.safetensors").read_bytes()).hexdigest()
    assert digest == golden["weights_sha256"]
    assert digest in model_card("mini")


def test_mini_reproduces_its_golden_outputs(mini, golden):
    length = mini.config.sequence_length
    _, window = model_window(build_construct(construct_length(length), seed=0), length)
    values = predict(mini, window, progress=False).values["human"][0]
    tol = golden["tolerance"]
    np.testing.assert_allclose(values.sum(axis=0), golden["track_sums"], **tol)
    np.testing.assert_allclose(values[golden["bins"]], golden["values_at_bins"], **tol)
    # batch of two (with the reverse complement) gives the same forward-strand values
    both = predict(mini, [window, window], batch_size=2, progress=False).values["human"]
    np.testing.assert_allclose(both[1], values, rtol=1e-4, atol=1e-5)


def test_mini_track_sheet_is_its_own_and_complete():
    path = MINI / "targets_human.txt"
    header = path.read_text().splitlines()[0].split("\t")
    for column in ("index", "identifier", "assay", "strand", "description"):
        assert column in header
    sheet = TrackSheet.read(path, head="human")
    assert len(sheet) == 74
    assert sheet.assay_counts() == {"CAGE": 24, "DNASE": 10, "RNA": 30, "RNA3": 10}
    pairs = sheet.strand_pair_permutation()
    assert sorted(pairs.tolist()) == list(range(74))
    for track in sheet:
        assert track.strand in ("+", "-", ".")
        if track.strand == ".":
            assert pairs[track.index] == track.index
        else:  # the pair has the other strand
            assert sheet[int(pairs[track.index])].strand == ("-" if track.strand == "+" else "+")


def test_model_card_reports_test_r_per_assay():
    card = model_card()
    metrics = json.loads((MINI / "metrics.json").read_text())
    for assay, value in metrics["test"]["per_assay_r"].items():
        row = re.search(rf"^\| {assay} \| \d+ \| (-?\d\.\d{{3}}) \|", card, re.M)
        assert row, assay
        assert float(row.group(1)) == pytest.approx(value, abs=5e-4)
    assert "configs/mini.yaml" in card and "enformer train" in card
    assert (Path(__file__).resolve().parents[1] / "configs" / "mini.yaml").is_file()


@pytest.mark.shared
def test_mini_test_split_accuracy_matches_its_card(shared_data):
    from enformer.train.config import DataConfig
    from enformer.train.data import build_dataset, make_eval_loader
    from enformer.train.evaluation import evaluate

    data = DataConfig(
        kind="tfrecord",
        path=str(shared_data / "basenji_tiny_hg38"),
        pool=4,
        max_shift=0,
        reverse_complement=False,
    )
    model = load_pretrained("mini")
    loader = make_eval_loader(build_dataset(data, "test"), batch_size=2)
    sheet = TrackSheet.read(MINI / "targets_human.txt", head="human")
    result = evaluate(model, loader, head="human", device=torch.device("cpu"), track_sheet=sheet)
    metrics = json.loads((MINI / "metrics.json").read_text())["test"]
    assert result.mean_r == pytest.approx(metrics["mean_r"], abs=1e-4)
    for assay, value in metrics["per_assay_r"].items():
        if assay != "all":
            assert result.by_assay[assay] == pytest.approx(value, abs=1e-4)


def test_a_local_folder_named_like_a_bundled_model_wins(tmp_path, monkeypatch, tiny_model):
    monkeypatch.chdir(tmp_path)
    assert weights_dir("mini") == MINI
    tiny_model.save_pretrained("mini")
    loaded = load_pretrained("mini")
    assert loaded.config == tiny_model.config
    assert weights_dir("mini").resolve() == (tmp_path / "mini").resolve()


def test_unknown_bundled_name_lists_the_bundled_ones():
    with pytest.raises(KeyError, match="mini"):
        bundled_path("maxi")


# ------------------------------------------------------------------------ the construct


def test_construct_is_seeded_and_carries_its_motifs():
    a = build_construct(196_608, seed=0)
    b = build_construct(196_608, seed=0)
    c = build_construct(196_608, seed=1)
    assert a.sequence == b.sequence and a.sequence != c.sequence
    assert len(a.sequence) == 196_608 and set(a.sequence) <= set("ACGT")
    comp = str.maketrans("ACGT", "TGCA")
    for e in a.elements:
        if e.kind != "motif":
            continue
        name = next(m for m in MOTIFS if e.name == m or f"_{m}" in e.name or e.name.startswith(m))
        site = a.sequence[e.start : e.end]
        expected = MOTIFS[name] if e.strand == "+" else MOTIFS[name].translate(comp)[::-1]
        assert site == expected, e
    # genes: DEMO1 on +, DEMO2 on -, TSS inside the first exon in transcript order
    strand1, tss1, exons1 = a.genes["DEMO1"]
    strand2, tss2, exons2 = a.genes["DEMO2"]
    assert (strand1, strand2) == ("+", "-")
    assert exons1[0][0] == tss1 and exons2[-1][1] - 1 == tss2
    # the TSS base is the A of the initiator's CAGT on its strand
    assert a.sequence[tss1] == "A" and a.sequence[tss2] == "T"
    # every element sits within 30 kb of the centre (inside every model's output span)
    centre = len(a.sequence) // 2
    assert all(abs(e.start - centre) < 30_000 and abs(e.end - centre) < 30_000 for e in a.elements)


def test_demo_variants_hit_their_elements():
    construct = build_construct(196_608, seed=0)
    variants = demo_variants(construct)
    assert len(variants) == len(DEMO_VARIANTS)
    for v, spec in zip(variants, DEMO_VARIANTS, strict=True):
        assert construct.sequence[v.pos - 1] == v.ref != v.alt
        if spec.element:
            e = construct.find(spec.element)
            assert e.start < v.pos <= e.end
        else:
            assert all(abs(v.pos - 1 - e.start) > 2_000 for e in construct.elements)


# ----------------------------------------------------------------------------- the demo


@pytest.fixture(scope="module")
def demo_passes(tmp_path_factory):
    """The demo through the CLI, counting the windows its model runs on.

    ``full``: inputs of full forward passes; ``outputs``: windows through the final pointwise
    layer, which every prediction reaches, full pass or the variant scorer's exact reuse.
    """
    import enformer.weights

    out = tmp_path_factory.mktemp("demo") / "out"
    counts = {"full": 0, "outputs": 0}
    load = enformer.weights.load_pretrained

    def counting_load(*args, **kwargs):
        model = load(*args, **kwargs)

        def count(key):
            return lambda _module, inputs, _output: counts.__setitem__(
                key, counts[key] + inputs[0].shape[0]
            )

        model.register_forward_hook(count("full"))
        model.trunk.final_pointwise.register_forward_hook(count("outputs"))
        return model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(enformer.weights, "load_pretrained", counting_load)
        code = main(["demo", "--out", str(out), "--json", "-q"])
    return code, out, counts


@pytest.fixture(scope="module")
def demo_run(demo_passes):
    code, out, _ = demo_passes
    return code, out


def test_demo_predicts_each_window_once(demo_passes):
    code, _, counts = demo_passes
    assert code == 0
    # one full pass: the model window (its BigWigs and tracks.png); the 5 variants' windows
    # (ref + alt each) once, in scoring (variant.png reuses the strongest one's)
    assert counts == {"full": 1, "outputs": 1 + 2 * len(DEMO_VARIANTS)}


def test_demo_scores_table_is_score_variants_frame(demo_run, mini):
    import pandas as pd

    from enformer.variants import score_variants

    _, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    indices = [t["index"] for t in summary["tracks"]]
    sheet = TrackSheet.read(MINI / "targets_human.txt", head="human")
    frame = score_variants(
        mini, out / "variants.vcf", out / "construct.fa", stats=("SAD", "logSED"),
        tracks=indices, track_sheet=sheet, progress=False,
    )  # fmt: skip
    table = pd.read_csv(out / "scores.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == list(frame.columns) and len(table) == len(frame) == 25
    for column in frame.columns:
        if frame[column].dtype == np.float32:  # %.9g round-trips float32 exactly
            assert np.array_equal(table[column].to_numpy(np.float32), frame[column].to_numpy())
        else:
            assert table[column].astype(str).tolist() == frame[column].astype(str).tolist()
    # summary.json carries the same numbers, per variant in input order
    for v in summary["variants"]:
        rows = frame[frame["id"] == v["id"]]
        np.testing.assert_array_equal(np.float32(v["SAD"]), rows["SAD"].to_numpy())
        assert v["max_abs_SAD"] == pytest.approx(float(np.abs(rows["SAD"]).max()), rel=1e-7)


def test_demo_runs_and_reports(demo_run, capsys):
    code, out = demo_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"] == "mini"
    assert "mini" in summary["model_description"]
    assert len(summary["variants"]) == 5
    assert (
        summary["strongest_variant"]
        == max(summary["variants"], key=lambda v: v["max_abs_SAD"])["id"]
    )
    assert any("enformer-official" in step for step in summary["next_steps"])
    for key in ("fasta", "gtf", "bed", "vcf", "scores", "tracks_png", "variant_png"):
        assert Path(summary["files"][key]).is_file(), key


def test_demo_text_output_says_where_files_are_and_what_next(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "d"), "-q"])
    assert code == 0
    text = capsys.readouterr().out
    assert str(tmp_path / "d") in text and "tracks.png" in text and "scores.tsv" in text
    assert "enformer predict --weights EleutherAI/enformer-official-rough" in text
    assert "model: enformer mini model" in text


def test_demo_construct_files_are_consistent(demo_run):
    _, out = demo_run
    construct = build_construct(construct_length(131_072), seed=0)
    with Genome(out / "construct.fa") as genome:
        assert genome.fetch("demo", 0, len(construct.sequence)) == construct.sequence
    vcf = [line.split("\t") for line in (out / "variants.vcf").read_text().splitlines()]
    records = [r for r in vcf if not r[0].startswith("#")]
    assert [(int(r[1]), r[3], r[4]) for r in records] == [
        (v.pos, v.ref, v.alt) for v in demo_variants(construct)
    ]
    from enformer.data.annotation import read_gtf

    genes = {g.name: g for g in read_gtf(out / "construct.gtf")}
    assert set(genes) == {"DEMO1", "DEMO2"}
    assert genes["DEMO1"].tss == construct.genes["DEMO1"][1]
    assert genes["DEMO2"].tss == construct.genes["DEMO2"][1]
    assert len((out / "construct.bed").read_text().splitlines()) == len(construct.elements)


def test_demo_bigwigs_hold_the_models_predictions(demo_run, mini):
    pyBigWig = pytest.importorskip("pyBigWig")
    _, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    span = summary["output_span"]
    construct = build_construct(construct_length(131_072), seed=0)
    _, window = model_window(construct, 131_072)
    indices = [t["index"] for t in summary["tracks"]]
    expected = predict(mini, window, tracks=indices, progress=False).values["human"][0]
    assert len(summary["files"]["bigwigs"]) == len(indices)
    for k, index in enumerate(indices):
        bigwigs = summary["files"]["bigwigs"]
        (path,) = [p for p in bigwigs if Path(p).name.startswith(f"human_track{index}_")]
        with pyBigWig.open(path) as bw:
            assert bw.chroms() == {"demo": len(construct.sequence)}
            got = np.array(bw.values("demo", span["start"], span["end"]))[::128]
        np.testing.assert_allclose(got, expected[:, k], rtol=1e-4, atol=1e-5)


def test_demo_scores_match_an_independent_computation(demo_run, mini):
    _, out = demo_run
    lines = [line for line in (out / "scores.tsv").read_text().splitlines() if line[0] != "#"]
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert len(rows) == 5 * 5  # variants x tracks
    summary = json.loads((out / "summary.json").read_text())
    indices = [t["index"] for t in summary["tracks"]]
    construct = build_construct(construct_length(131_072), seed=0)
    # SAD = sum over bins of alt - ref, on the window centred on the variant
    v = demo_variants(construct)[0]
    start = (v.pos - 1) - 131_072 // 2
    ref = construct.sequence[start : start + 131_072]
    k = v.pos - 1 - start
    alt = ref[:k] + v.alt + ref[k + 1 :]
    both = predict(mini, [ref, alt], tracks=indices, progress=False).values["human"]
    sad = (both[1] - both[0]).sum(axis=0)
    got = [float(r["SAD"]) for r in rows if r["id"] == v.id]
    np.testing.assert_allclose(got, sad, rtol=1e-3, atol=1e-5)
    settings = json.loads((out / "scores.settings.json").read_text())
    assert "mini" in json.dumps(settings)


def test_demo_pictures_are_pngs_titled_with_the_model(demo_run):
    _, out = demo_run
    from PIL import Image

    for name in ("tracks.png", "variant.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out / name) as img:
            width, height = img.size
        assert width >= 800 and height >= 500


def test_demo_bad_weights_exit_2_with_one_line(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "x"), "--weights", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or directory" in err[0] and "mini" in err[0]


def test_demo_bad_track_selection_exits_2(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "x"), "--tracks", "no_such_track"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no_such_track" in err[-1]


def test_other_commands_take_weights_mini_with_its_track_sheet(demo_run, tmp_path, capsys):
    _, out = demo_run
    capsys.readouterr()
    assert main(["info", "--weights", "mini", "--tracks", "assay:DNASE", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "mini" in info["description"]
    assert (
        main(
            [
                "predict",
                "--weights",
                "mini",
                "--fasta",
                str(out / "construct.fa"),
                "--region",
                "demo:80,001-90,000",
                "--tracks",
                "CNhs10752+,ENCFF890OGQ",
                "--out",
                str(tmp_path / "p"),
                "--json",
                "-q",
            ]  # fmt: skip
        )
        == 0
    )
    pred = json.loads(capsys.readouterr().out)
    assert "mini" in pred["model_description"]
    names = sorted(Path(f["path"]).name for f in pred["files"])
    assert names == ["human_track0_CNhs10752+.bw", "human_track24_ENCFF890OGQ.bw"]
    assert (
        main(
            [
                "score",
                "--weights",
                "mini",
                "--fasta",
                str(out / "construct.fa"),
                "--vcf",
                str(out / "variants.vcf"),
                "--tracks",
                "assay:DNASE",
                "--out",
                str(tmp_path / "s.tsv"),
                "--json",
                "-q",
            ]  # fmt: skip
        )
        == 0
    )
    score = json.loads(capsys.readouterr().out)
    assert "mini" in score["model_description"] and score["rows"] == 5 * 10


def test_mini_has_learned_promoter_signal(mini):
    """Real weights, not random ones: CAGE and DNase peak at the construct's two promoters."""
    from enformer.model.geometry import output_geometry

    construct = build_construct(construct_length(131_072), seed=0)
    start, window = model_window(construct, 131_072)
    values = predict(mini, window, progress=False).values["human"][0]  # (512, 74)
    geom = output_geometry(mini.config)
    sheet = TrackSheet.read(MINI / "targets_human.txt", head="human")
    tss_bins = [
        (construct.genes[g][1] - start - geom.offset) // geom.bin_size for g in ("DEMO1", "DEMO2")
    ]
    for assay in ("CAGE", "DNASE"):
        profile = values[:, [t.index for t in sheet if t.assay == assay]].mean(axis=1)
        # the assay's highest bin is at one of the promoters (+-1 kb) ...
        assert min(abs(int(np.argmax(profile)) - b) for b in tss_bins) <= 8, assay
        for b in tss_bins:
            near = profile[b - 8 : b + 9].max()
            others = np.r_[profile[: b - 8], profile[b + 9 :]]
            # ... and each promoter rises above 99% of the other bins, at 1.5x the median
            assert near > np.quantile(others, 0.99), (assay, b)
            assert near > 1.5 * np.median(profile), (assay, b)


@pytest.mark.shared
@pytest.mark.filterwarnings("ignore::enformer.data.genome.GenomeWarning")  # eQTLs near chr1 start
def test_demo_on_a_users_genome_region(shared_data, tmp_path, capsys):
    genome = shared_data / "genome" / "hg38_subset.fa.gz"
    out = tmp_path / "g"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    argv = ["demo", "--out", str(out), "--fasta", str(genome), "--region", "chr1:60,001-80,000",
            "--gtf", str(gtf), "--json", "-q"]  # fmt: skip
    assert main([*argv, "--vcf", str(shared_data / "variants" / "gtex_eqtl_chr1.vcf")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input"] == {
        "kind": "genome region",
        "fasta": str(genome),
        "region": "chr1:60,001-80,000",
    }
    assert len(summary["variants"]) == 8 and summary["files"]["variant_png"]
    span = summary["output_span"]
    assert span["chrom"] == "chr1" and span["end"] - span["start"] == 512 * 128
    assert (span["start"] + span["end"]) // 2 == 70_000  # centred on the region
    # without a VCF: three example SNVs whose REF is the genome's base
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    with Genome(genome) as g:
        for v in summary["variants"]:
            assert g.fetch("chr1", v["pos"] - 1, v["pos"]) == v["ref"] != v["alt"]
    assert [v["pos"] - 1 for v in summary["variants"]] == [70_000, 69_000, 71_000]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fasta", "x.fa"], "--fasta and --region together"),
        (["--vcf", "x.vcf"], "--vcf and --gtf go with --fasta/--region"),
    ],
)
def test_demo_input_options_are_checked_first(tmp_path, capsys, args, message):
    assert main(["demo", "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.shared
def test_demo_genome_mode_bad_input(shared_data, tmp_path, capsys):
    genome = str(shared_data / "genome" / "hg38_subset.fa.gz")
    base = ["demo", "--out", str(tmp_path / "o"), "--fasta", genome]
    # chromosome naming mismatch: a clear error, or mapped with --chrom-alias
    assert main([*base, "--region", "1:60,001-80,000"]) == 2
    assert "--chrom-alias" in capsys.readouterr().err
    assert main([*base, "--region", "1:60,001-80,000", "--chrom-alias", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["output_span"]["chrom"] == "chr1"
    # REF mismatch: stops with one line naming the variant, or skipped on request
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "chr1\t70001\tbad\tG\tA\t.\t.\t.\n"  # the genome has A here
    )
    region = ["--region", "chr1:60,001-80,000", "--vcf", str(vcf)]
    assert main([*base, *region]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "REF mismatch" in err[-1] and "chr1:70,001" in err[-1]
    assert main([*base, *region, "--on-ref-mismatch", "skip", "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["variants"] == [] and summary["files"]["variant_png"] is None
    # a missing file is reported before the model is loaded
    assert main([*base[:-1], str(tmp_path / "none.fa"), "--region", "chr1:1-10"]) == 2
    assert "genome FASTA not found" in capsys.readouterr().err


def test_demo_summarises_a_score_frame_per_variant():
    import pandas as pd

    from enformer.demo import ExampleVariant
    from enformer.demo.report import summarise_scores

    frame = pd.DataFrame(
        {
            "id": ["b", "b", "a", "a"],
            "chrom": ["c1"] * 4,
            "pos": [20, 20, 10, 10],
            "ref": ["A", "A", "C", "C"],
            "alt": ["G", "G", "T", "T"],
            "SAD": np.float32([0.1, -0.7, 0.3, 0.2]),
            "logSED": np.float32([0.01, -0.02, 0.03, 0.04]),
        }
    )
    # a user's file: the frame's variants in their order, values as scores.tsv writes them
    got = summarise_scores(frame, None)
    assert [(v["id"], v["pos"], v["note"]) for v in got] == [("b", 20, ""), ("a", 10, "")]
    assert got[0]["SAD"] == [float(f"{np.float32(x):.9g}") for x in (0.1, -0.7)]
    assert [v["max_abs_SAD"] for v in got] == pytest.approx([0.7, 0.3])
    # the demo's own variants keep their order and notes; an unscored one gets NaN and no values
    mine = [
        ExampleVariant("c1", 10, "C", "T", "a", "hits X"),
        ExampleVariant("c1", 30, "A", "C", "gone", "skipped"),
    ]
    got = summarise_scores(frame, mine)
    assert got[0] == {"chrom": "c1", "pos": 10, "ref": "C", "alt": "T", "id": "a", "note": "hits X",
                      "max_abs_SAD": pytest.approx(0.3), "SAD": got[0]["SAD"],
                      "logSED": got[0]["logSED"]}  # fmt: skip
    assert np.isnan(got[1]["max_abs_SAD"]) and got[1]["SAD"] == got[1]["logSED"] == []
