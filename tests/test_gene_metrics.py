"""The paper's across-gene metric: the formula by hand, and the evaluate command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from enformer.data.annotation import TSSIndex
from enformer.data.genome.regions import Interval
from enformer.train.gene_metrics import GeneExpression, across_gene_pearson


def test_across_gene_pearson_by_hand():
    pred = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 1.0], [7.0, 1.0]])  # track 1 is constant
    target = np.array([[1.0, 2.0], [3.0, 0.0], [3.0, 5.0], [15.0, 1.0]])
    x = np.log2(pred[:, 0] + 1)  # 0, 1, 2, 3
    y = np.log2(target[:, 0] + 1)  # 1, 2, 2, 4
    xc, yc = x - x.mean(), y - y.mean()
    want = (xc * yc).sum() / np.sqrt((xc**2).sum() * (yc**2).sum())
    r = across_gene_pearson(pred, target)
    assert r[0] == pytest.approx(want) and r[0] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert np.isnan(r[1])  # no variation across genes: undefined, not 0


def test_sums_over_tss_bins_and_windows(tmp_path):
    """Two windows on one chromosome; gene A has a TSS in both, B in one: the sums add up."""
    gtf = tmp_path / "g.gtf"
    gtf.write_text(
        'chr1\tt\tgene\t121\t500\t.\t+\t.\tgene_id "A"; gene_name "A";\n'
        'chr1\tt\tgene\t1000\t1050\t.\t-\t.\tgene_id "B"; gene_name "B";\n'
        'chr1\tt\tgene\t5001\t5100\t.\t+\t.\tgene_id "C"; gene_name "C";\n'
    )
    tss = TSSIndex.from_gtf(gtf)
    windows = [Interval("chr1", 0, 1280, "test"), Interval("chr1", 0, 1280, "test")]
    metric = GeneExpression(tss, windows, tracks=[1], width=1)
    pred = torch.arange(2 * 10 * 2, dtype=torch.float32).reshape(2, 10, 2)
    metric.update(pred, pred * 2, torch.tensor([0, 1]))
    # A's TSS at 120 -> bin 0; B's TSS (5' end of a - gene) at 1049 -> bin 8; C outside.
    assert set(metric.sums) == {"A", "B"}
    np.testing.assert_allclose(metric.sums["A"][0], [pred[0, 0, 1] + pred[1, 0, 1]])
    np.testing.assert_allclose(metric.sums["B"][1], [2 * (pred[0, 8, 1] + pred[1, 8, 1])])


def test_evaluate_command_reports_the_gene_metric(tmp_path, capsys, shared_data):
    from enformer.cli.main import main

    data = shared_data / "basenji_tiny_hg38"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    assert main(["evaluate", "--weights", "mini", "--data", str(data), "--split", "test",
                 "--pool", "4", "--genes", str(gtf), "--json"]) == 0  # fmt: skip
    genes = json.loads(capsys.readouterr().out)["genes"]
    assert genes["tracks"] == list(range(24))  # the mini sheet's CAGE tracks
    # Independently: genes whose 5' end lies in a test target interval of sequences.bed.
    tests = [line.split("\t") for line in (data / "sequences.bed").read_text().splitlines()]
    tests = [(c, int(s), int(e)) for c, s, e, split in tests if split.strip() == "test"]
    expected = set()
    for line in gtf.read_text().splitlines():
        f = line.split("\t")
        if len(f) > 8 and f[2] == "gene":
            five = int(f[3]) - 1 if f[6] == "+" else int(f[4]) - 1
            if any(c == f[0] and s <= five < e for c, s, e in tests):
                expected.add(f[8].split('gene_id "')[1].split('"')[0])
    assert genes["genes"] == len(expected) > 3
    r = np.array(genes["per_track_r"], dtype=float)
    assert np.all((np.abs(r) <= 1) | np.isnan(r))
    assert genes["mean_r"] == pytest.approx(np.nanmean(r))
    # Without coordinates (an .npz) the metric is refused with the reason.
    np.savez(tmp_path / "d.npz", test_sequences=np.zeros((1, 131072), np.uint8),
             test_targets=np.zeros((1, 512, 74), np.float32))  # fmt: skip
    assert main(["evaluate", "--weights", "mini", "--data", str(tmp_path / "d.npz"),
                 "--genes", str(gtf)]) == 2  # fmt: skip
    assert "genome coordinates" in capsys.readouterr().err
