"""Plots from real hg38 sequence and GENCODE annotation: made without error, not blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.data.annotation import find_gene, read_gtf
from enformer.data.sequence import one_hot
from enformer.interpret import (
    Target,
    capture_attention,
    contribution_scores,
    gene_target,
    saturation_mutagenesis,
)

from .conftest import randomize_batch_norm

pytest.importorskip("matplotlib")
pytest.importorskip("logomaker")
pytestmark = pytest.mark.shared

from enformer.interpret import plots  # noqa: E402

DESCRIPTION = "mini model (random weights; plots test)"


@pytest.fixture(scope="module")
def gtf(shared_data) -> Path:
    return shared_data / "annotations" / "gencode_hg38_subset.gtf"


@pytest.fixture(scope="module")
def genome(shared_data):
    from enformer.data.genome import Genome

    with Genome(shared_data / "genome" / "hg38_subset.fa.gz") as g:
        yield g


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = Enformer(EnformerConfig.tiny(description=DESCRIPTION)).eval()
    randomize_batch_norm(m, seed=1)
    return m


def assert_image(path: Path, min_bytes: int = 15_000) -> np.ndarray:
    """A real picture: big enough, with ink on a good part of it and varied pixels."""
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > min_bytes, path
    img = imread(path)[..., :3]
    ink = (img.mean(-1) < 0.9).mean()
    assert 0.02 < ink < 0.9, f"{path.name}: {ink:.3f} of the pixels are drawn"
    assert img.std() > 0.05
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # more than a few flat colours
    return img


def _title(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def test_tracks_with_gene_annotation(tmp_path, genome, gtf):
    # A 16-kb window over DDX11L2/DDX11L1 (+) and WASH7P/MIR6859-1 (-); all bins kept.
    cfg = EnformerConfig.tiny(target_length=None, description=DESCRIPTION)
    torch.manual_seed(1)
    wide = Enformer(cfg).eval()
    randomize_batch_norm(wide, seed=2)
    start, length = 11_808, 16_384
    x = torch.from_numpy(one_hot(genome.fetch("chr1", start, start + length), ambiguous="n"))
    with torch.no_grad():
        y = wide(x[None])["human"][0, :, :3].numpy()
    genes = read_gtf(gtf, chrom="chr1", start=start, end=start + length)
    assert {"DDX11L2", "WASH7P"} <= {g.name for g in genes}
    fig = plots.plot_tracks(
        y, chrom="chr1", start=start, bin_size=16, genes=genes,
        labels=["CNhs10752+ CAGE:Adipocyte - breast", "ENCFF833POA DNASE:K562", "track 2"],
        title="chr1:11,809-28,192", description=cfg.description, highlight=[(14_000, 14_400)],
        path=tmp_path / "tracks.png",
    )  # fmt: skip
    assert_image(tmp_path / "tracks.png")
    assert DESCRIPTION in _title(fig)
    axes = fig.get_axes()
    assert len(axes) == 4  # three tracks and the genes
    names = {t.get_text() for t in axes[-1].texts}
    assert "WASH7P (-)" in names and "DDX11L2 (+)" in names
    assert axes[-1].get_xlim() == (start, start + length)
    # SVG too, and the GTF path instead of a gene list.
    plots.plot_tracks(
        y[:, 0], chrom="chr1", start=start, bin_size=16, gtf=gtf, path=tmp_path / "t.svg"
    )
    assert (tmp_path / "t.svg").read_text().lstrip().startswith("<?xml")


def test_variant_ref_alt_difference(tmp_path, model, genome, gtf):
    gene = find_gene(read_gtf(gtf), "OR4F5")
    start = gene.tss - 1024
    seq = genome.fetch("chr1", start, start + 2048)
    pos = 1100  # input index of the variant
    alt_base = "A" if seq[pos] != "A" else "C"
    alt = seq[:pos] + alt_base + seq[pos + 1 :]
    x = torch.from_numpy(one_hot([seq, alt], ambiguous="n"))
    with torch.no_grad():
        y = model(x)["human"][..., :2].numpy()
    assert np.abs(y[1] - y[0]).max() > 0
    fig = plots.plot_variant(
        y[0], y[1], chrom="chr1", start=start + 512, bin_size=16, position=start + pos,
        variant=f"chr1:{start + pos + 1}:{seq[pos]}>{alt_base}", labels=["track 0", "track 1"],
        gtf=gtf, description=model.config.description, path=tmp_path / "variant.png",
    )  # fmt: skip
    assert_image(tmp_path / "variant.png")
    assert "variant chr1:" in _title(fig) and DESCRIPTION in _title(fig)
    assert len(fig.get_axes()) == 5  # (ref/alt, difference) x 2 tracks + genes


def test_contribution_logo_and_overview(tmp_path, model, genome, gtf):
    gene = find_gene(read_gtf(gtf), "OR4F5")
    start = gene.tss - 1024
    x = one_hot(genome.fetch("chr1", start, start + 2048))
    target = gene_target(model, gene, window_start=start, tracks=[0, 1])
    attr = contribution_scores(model, x, target, rc=True)
    attr.chrom, attr.start = "chr1", start
    fig = plots.plot_attribution(attr, gtf=gtf, path=tmp_path / "attribution.png")
    assert_image(tmp_path / "attribution.png")
    assert DESCRIPTION in _title(fig) and "grad_x_input" in _title(fig)
    lo, hi = plots.peak_window(attr.per_position, 80)
    assert 0 <= lo < hi <= 2048 and hi - lo == 80
    # The zoomed logo alone, around the TSS.
    fig = plots.plot_logo(
        attr.scores, start=start, window=(gene.tss - 30, gene.tss + 30), chrom="chr1",
        title="OR4F5 TSS", description=DESCRIPTION, path=tmp_path / "logo.png",
    )  # fmt: skip
    assert_image(tmp_path / "logo.png", min_bytes=10_000)
    ax = fig.get_axes()[0]
    assert ax.get_xlim() == (gene.tss - 29 - 0.5, gene.tss + 30 + 0.5)  # 1-based centres
    assert "chr1" in ax.get_xlabel()
    with pytest.raises(ValueError, match="unreadable"):
        plots.plot_logo(np.zeros((3000, 4)))


def test_ism_heatmap(tmp_path, model, genome):
    start = 65_418 - 1024
    x = one_hot(genome.fetch("chr1", start, start + 2048))
    ism = saturation_mutagenesis(
        model, x, start=1000, end=1048, tracks=[0, 3], bins=[31, 32, 33], chrom="chr1",
        input_start=start, track_ids=["ENCFF0", "CNhs3"], track_labels=["DNASE:x", "CAGE:y"],
    )  # fmt: skip
    fig = plots.plot_ism(ism, path=tmp_path / "ism.png")
    assert_image(tmp_path / "ism.png")
    assert "ISM" in _title(fig) and DESCRIPTION in _title(fig)
    heat = [ax for ax in fig.get_axes() if ax.images]
    assert heat and [t.get_text() for t in heat[0].get_yticklabels()] == list("ACGT")
    lo, hi = heat[0].images[0].get_clim()
    assert lo == pytest.approx(-hi) and hi > 0  # symmetric around 0
    plots.plot_ism(ism, track=1, logo=False, path=tmp_path / "ism.svg")
    assert (tmp_path / "ism.svg").stat().st_size > 10_000


def test_attention_map_and_tss_profile(tmp_path, model, genome, gtf):
    start = 65_418 - 1024
    x = one_hot(genome.fetch("chr1", start, start + 2048))
    maps = capture_attention(model, x)
    tss = maps.bin_of(1024)
    fig = plots.plot_attention(maps, query=tss, path=tmp_path / "attention.png")
    assert_image(tmp_path / "attention.png")
    norm = fig.get_axes()[0].images[0].norm
    assert type(norm).__name__ == "LogNorm"
    plots.plot_attention(maps, layer=1, head=0, log=False, bins=(40, 90), path=tmp_path / "a.png")
    assert_image(tmp_path / "a.png", min_bytes=5_000)
    fig = plots.plot_attention_profile(
        maps, tss, chrom="chr1", input_start=start, gtf=gtf, query_label="OR4F5 TSS",
        path=tmp_path / "profile.png",
    )  # fmt: skip
    assert_image(tmp_path / "profile.png", min_bytes=10_000)
    assert "OR4F5 TSS" in _title(fig) and DESCRIPTION in _title(fig)
    assert fig.get_axes()[0].get_yscale() == "log"


def test_empty_gene_row_and_bad_format(tmp_path):
    fig = plots.plot_tracks(
        np.linspace(0, 1, 50), chrom="chr1", start=5_000_000, bin_size=128, genes=[]
    )
    assert "no annotated genes" in fig.get_axes()[-1].texts[0].get_text()
    with pytest.raises(ValueError, match="format"):
        plots.save_figure(fig, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="labels"):
        plots.plot_tracks(np.zeros((5, 2)), labels=["one"])


def test_target_helpers_are_plot_free():
    """The core interpret API imports without matplotlib being touched."""
    import subprocess
    import sys

    code = (
        "import sys, enformer.interpret as i; "
        "assert 'matplotlib' not in sys.modules and 'logomaker' not in sys.modules; "
        "print(i.Target('human', tracks=[1]).describe())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "human tracks [1]" in out.stdout
    assert Target("human").describe() == "sum of human tracks [all] at bins [all]"
