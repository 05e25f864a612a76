"""enformer benchmark eqtl: AUROC / AUPRC against brute force, and the command end to end."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd
import pytest

from enformer.variants.benchmark import auroc, average_precision, roc_curve

pytestmark = pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")


def _auroc_pairs(s, y):
    pos, neg = s[y == 1], s[y == 0]
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in product(pos, neg)])


def _ap_thresholds(s, y):
    ap, last_recall = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        chosen = s >= t
        tp = (chosen & (y == 1)).sum()
        recall, precision = tp / y.sum(), tp / chosen.sum()
        ap += (recall - last_recall) * precision
        last_recall = recall
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 6, 40).astype(float)  # many ties
    y = (rng.random(40) < 0.3).astype(int)
    assert auroc(s, y) == pytest.approx(_auroc_pairs(s, y))
    assert average_precision(s, y) == pytest.approx(_ap_thresholds(s, y))
    fpr, tpr = roc_curve(s, y)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(s, y))
    assert auroc(s, 1 - y) == pytest.approx(1 - auroc(s, y))
    assert np.isnan(auroc(s, np.ones(40)))


def test_command_end_to_end(tmp_path, capsys, shared_data):
    from enformer.cli.main import main

    fasta = str(shared_data / "genome" / "hg38_subset.fa.gz")
    # The shared GTEx eQTLs with an effect sign: alternate signs, to check the agreement.
    lines = (shared_data / "variants" / "gtex_eqtl_chr1.vcf").read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    records = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    info = '##INFO=<ID=SLOPE,Number=1,Type=Float,Description="eQTL effect">'
    body = []
    for i, f in enumerate(records):
        f[7] = f"SLOPE={(-1) ** i * 0.5}"
        body.append("\t".join(f))
    vcf = tmp_path / "eqtl.vcf"
    vcf.write_text("\n".join([*header[:-1], info, header[-1], *body]) + "\n")
    out = tmp_path / "bench"
    assert main(["benchmark", "eqtl", "--weights", "mini", "--fasta", fasta, "--vcf", str(vcf),
                 "--tracks", "0-3", "--draw-negatives", "2", "--sign-field", "SLOPE",
                 "--out", str(out), "--json", "-q"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    table = pd.read_csv(out / "scores.tsv", sep="\t")
    assert result["n_positive"] == 8 and result["n_negative"] == len(table) - 8 >= 14
    s, y = table["score"].to_numpy(), table["label"].to_numpy()
    assert result["auroc"] == pytest.approx(_auroc_pairs(s, y))
    assert result["auprc"] == pytest.approx(_ap_thresholds(s, y))
    assert json.loads((out / "metrics.json").read_text())["auroc"] == result["auroc"]
    pos = table[table["label"] == 1]
    agree = (np.sign(pos["signed"]) == np.sign(pos["eqtl_sign"])).mean()
    assert result["sign_agreement"] == pytest.approx(agree) and result["n_with_sign"] == 8
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Negatives are real SNVs near their positive, never a positive itself.
    neg = table[table["label"] == 0]
    assert not set(zip(neg["chrom"], neg["pos"])) & set(zip(pos["chrom"], pos["pos"]))
    assert main(["benchmark", "eqtl", "--weights", "mini", "--fasta", fasta, "--vcf", str(vcf),
                 "--draw-negatives", "0", "--out", str(out)]) == 2  # fmt: skip
    assert "--draw-negatives must be >= 1" in capsys.readouterr().err
