"""Bundle a trained mini model into the package (src/enformer/pretrained/mini/).

The mini model is trained with the package's own pipeline::

    OMP_NUM_THREADS=1 enformer train configs/mini.yaml run_dir=runs/mini

and then bundled from its best-on-validation export::

    python scripts/bundle_mini.py runs/mini --data ../shared/data/basenji_tiny_hg38

This script

1. copies ``best/config.json`` and ``best/model.safetensors`` into the package folder;
2. writes the model's own track sheet ``targets_human.txt`` (index, identifier, assay, strand,
   strand pair, Basenji pooling columns and a short description) from the data's
   ``targets.txt``;
3. evaluates the bundled weights on the valid and test splits with ``enformer evaluate``
   (per-track Pearson r over all 128-bp bins of a split pooled) into ``metrics.json``;
4. records golden outputs on the demo construct (``golden.json``: per-track sums and the
   values of a few bins, with the weights' SHA-256) that ``tests/test_mini.py`` checks;
5. writes ``MODEL_CARD.md`` from the numbers above and the run's logs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "enformer" / "pretrained" / "mini"
GOLDEN_BINS = (0, 64, 128, 200, 256, 300, 384, 448, 511)
ASSAY_NOTES = {
    "CAGE": "FANTOM5 CAGE (5' ends of capped RNAs; stranded pairs)",
    "DNASE": "ENCODE DNase-seq (chromatin accessibility; unstranded)",
    "RNA": "ENCODE/GTEx RNA-seq coverage (stranded pairs where the library is stranded)",
    "RNA3": "Tabula Sapiens single-cell RNA-seq, pseudo-bulk coverage (stranded pairs)",
}


def write_int8(source: Path, dest: Path) -> float:
    """Store the weights as int8 (4x smaller); return r of its predictions vs float32's."""
    import torch
    from safetensors.torch import load_file, save_file

    from enformer import Enformer, predict
    from enformer.demo import build_construct, construct_length, model_window
    from enformer.weights.quantize import QUANTIZATION, quantize_int8

    state = load_file(source)
    save_file(quantize_int8(state), dest, metadata={"quantization": QUANTIZATION})
    torch.manual_seed(0)
    full = Enformer.from_pretrained(str(source.parent))
    small = Enformer.from_pretrained(str(dest.parent))
    length = full.config.sequence_length
    _, window = model_window(build_construct(construct_length(length), seed=0), length)
    a = predict(full, window, progress=False).values["human"][0]
    b = predict(small, window, progress=False).values["human"][0]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sheet(source: Path, dest: Path) -> list[dict[str, str]]:
    """Our own track list from Basenji's targets.txt."""
    with open(source, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for i, row in enumerate(rows):
        desc = row["description"].strip().rstrip(",").strip()
        assay = desc.split(":", 1)[0].upper()
        pair = int(row["strand_pair"])
        ident = row["identifier"]
        strand = "." if pair == i else ("+" if ident.endswith("+") else "-")
        out.append(
            {
                "index": str(i),
                "identifier": ident,
                "assay": assay,
                "strand": strand,
                "strand_pair": str(pair),
                "sum_stat": row["sum_stat"],
                "clip": row["clip"],
                "clip_soft": row["clip_soft"],
                "scale": row["scale"],
                "description": desc,
            }
        )
    with open(dest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(out[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(out)
    return out


def evaluate(split: str, data: Path, out: Path) -> dict:
    cmd = [
        sys.executable, "-m", "enformer", "evaluate", "--weights", str(PACKAGE_DIR),
        "--data", str(data), "--split", split, "--pool", "4", "--device", "cpu",
        "--batch-size", "2", "--out", str(out), "--quiet",
    ]  # fmt: skip
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def golden(weights: Path) -> dict:
    import torch

    from enformer import Enformer
    from enformer.demo import build_construct, construct_length, model_window
    from enformer.inference import predict

    torch.manual_seed(0)
    model = Enformer.from_pretrained(str(PACKAGE_DIR))
    length = model.config.sequence_length
    _, window = model_window(build_construct(construct_length(length), seed=0), length)
    values = predict(model, window, progress=False).values["human"][0]
    return {
        "weights_sha256": sha256(weights),
        "input": "the demo's model window: enformer.demo.model_window(enformer.demo."
        "build_construct(construct_length(131072), seed=0), 131072)[1]",
        "track_sums": [float(x) for x in values.sum(axis=0)],
        "bins": list(GOLDEN_BINS),
        "values_at_bins": [[float(x) for x in values[b]] for b in GOLDEN_BINS],
        "tolerance": {"rtol": 1e-4, "atol": 1e-5},
    }


def assay_table(report: dict, sheet: list[dict[str, str]]) -> list[tuple[str, int, float]]:
    r = np.array([row["pearson_r"] for row in report["per_track"]], dtype=float)
    rows = []
    for assay in ("CAGE", "DNASE", "RNA", "RNA3"):
        idx = [i for i, t in enumerate(sheet) if t["assay"] == assay]
        rows.append((assay, len(idx), float(np.nanmean(r[idx]))))
    rows.append(("all", len(sheet), float(np.nanmean(r))))
    return rows


def torch_version() -> str:
    import torch

    return torch.__version__


def read_logs(run: Path) -> dict:
    evals = list(csv.DictReader(open(run / "eval_log.csv")))
    train = list(csv.DictReader(open(run / "train_log.csv")))
    best = max(evals, key=lambda e: float(e["mean_r"]))
    return {
        "updates": int(train[-1]["step"]),
        "epochs": int(train[-1]["epoch"]) + 1,
        "seconds": float(train[-1][list(train[-1])[-1]]),
        "first_loss": float(train[0]["loss"]),
        "last_loss": float(train[-1]["loss"]),
        "best_step": int(best["step"]),
        "best_valid_r": float(best["mean_r"]),
    }


CARD = """\
# enformer "mini" model card

**What it is.** A 2.0 M-parameter Enformer ({params:,} parameters) trained with this package's
own pipeline on 45 real hg38 windows. It exists so that `enformer demo` and first experiments
run offline on a laptop, with real (not random) weights. It is **not** the published Enformer
(251 M parameters, trained on ~34,000 human and mouse windows): its accuracy is far lower (see
below) and it knows only 74 tracks. For science, use the official weights
(`EleutherAI/enformer-official-rough`, or DeepMind's TF-Hub model converted with
`enformer convert`). Every output it touches says so: its `config.description` is written into
prediction and score metadata and into plot titles.

Load it with `Enformer.from_pretrained("mini")` or `--weights mini` on the command line.

## Architecture
| | |
|---|---|
| input | {seq_len:,} bp one-hot DNA (A, C, G, T) |
| output | {bins} bins x 128 bp = the central {out_bp:,} bp; 74 tracks (head `human`), softplus |
| width C | {channels} (stem {stem}, conv tower {filters}) |
| transformer | {layers} blocks, {heads} heads, key size {key}, {feat} relative-position features |
| dropout | {dropout} (residual / MLP), 0.05 attention |
| parameters | {params:,} |
| weights file | `model.safetensors`, int8 with per-channel scales, {mb:.1f} MB, SHA-256 `{sha}` |

The weights are stored as int8 with one float32 scale per output channel
(`enformer.weights.quantize`), 4x smaller than float32, and load as a float32 model. On the demo
input the predictions of this int8 copy correlate with the trained float32 model's at
r = {fidelity:.5f}; every number below is measured on the int8 copy, the model that ships.

## Data
`basenji_tiny_hg38`: the 65 windows of Basenji/Baskerville's small hg38 test set
(calico/baskerville, `tests/data/tiny/hg38`, Apache-2.0), 45 train / 10 valid / 10 test.
Each record is 131,072 bp of real hg38 sequence with 74 targets over its central 65,536 bp at
32-bp resolution, pooled here 4:1 to the model's 128-bp bins (each track's Basenji `sum_stat`).

| assay | tracks | source |
|---|---|---|
{assay_sources}

The track list, with index, identifier, assay, strand, strand pair and description, is
`targets_human.txt` beside the weights (`enformer info --weights mini --tracks all`).

## Training
Exact command (`configs/mini.yaml` holds every setting):

```
OMP_NUM_THREADS=1 enformer train configs/mini.yaml data.path=../shared/data/basenji_tiny_hg38
python scripts/bundle_mini.py runs/mini --data ../shared/data/basenji_tiny_hg38
```

Poisson loss, Adam (lr {lr:g}, {warmup}-update warm-up, cosine decay to {min_lr:g}), global-norm
clip {clip:g}, batch {batch}, random shifts of up to 3 bp and reverse complements (strand
pairs swapped).
The code was this repository at commit `{commit}` (torch {torch_version}, CPU).
{updates} updates ({epochs} epochs) took {minutes:.0f} min on one CPU thread; the training loss
went from {first_loss:.3f} to {last_loss:.3f}. The bundled weights are the best on the validation
split (mean r {best_valid_r:.3f} at update {best_step}).

## Accuracy
Pearson r per track over all 128-bp bins of a split pooled (10 sequences x {bins} bins), then
averaged over the tracks of each assay (`enformer evaluate --weights mini --data
../shared/data/basenji_tiny_hg38 --split test --pool 4`). Per-track values are in
`metrics.json`.

| assay | tracks | test r | valid r |
|---|---|---|---|
{accuracy}

For scale: the published Enformer learned from about 34,000 human and 29,000 mouse training
windows; this model saw 45. It cannot learn much of the regulatory code; expect it to find
strong, common signal (accessible CpG-rich promoters, highly covered regions), not cell-type
specificity or subtle variant effects. On the demo's synthetic construct its CAGE and DNase
predictions peak at both CpG-island promoters (about twice its median there, above 99% of the
other bins) over a noisy background; `tests/test_mini.py` checks that.

## Limits
- Trained on 45 windows of one (hg38) genome: it will be wrong in ways that matter for science.
- Its windows were taken from the authors' genome build, which carries the ALT allele at ~3%
  of common SNPs.
- Variant effect sizes from it are illustrations only.
- 131,072-bp input (the records' length), not Enformer's 196,608 bp.

## Golden outputs
`golden.json` holds its predictions on the demo's input (the central 131,072 bp of
`enformer.demo.build_construct(196608, seed=0)`): per-track sums and 9 bins of every track.
`tests/test_mini.py` checks that the package reproduces them.
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="training run folder (with best/ and the logs)")
    p.add_argument("--data", type=Path, required=True, help="basenji_tiny_hg38 folder")
    p.add_argument(
        "--code-commit",
        default=None,
        help="git commit of the code that trained the model (default: the current HEAD)",
    )
    args = p.parse_args()
    commit = (
        args.code_commit
        or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )

    best = args.run / "best"
    PACKAGE_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best / "config.json", PACKAGE_DIR / "config.json")
    fidelity = write_int8(best / "model.safetensors", PACKAGE_DIR / "model.safetensors")
    (PACKAGE_DIR / "targets_human.txt").unlink(missing_ok=True)
    sheet = write_sheet(args.data / "targets.txt", PACKAGE_DIR / "targets_human.txt")

    tmp = args.run / "bundle"
    tmp.mkdir(exist_ok=True)
    reports = {s: evaluate(s, args.data, tmp / f"{s}.json") for s in ("test", "valid")}
    metrics = {
        split: {
            "mean_r": rep["mean_r"],
            "per_assay_r": {a: r for a, _, r in assay_table(rep, sheet)},
            "per_track_r": [row["pearson_r"] for row in rep["per_track"]],
            "loss": rep.get("loss"),
        }
        for split, rep in reports.items()
    }
    metrics["definition"] = (
        "per track, Pearson r over all 128-bp bins of all sequences of the split pooled; "
        "targets pooled 4:1 from the records' 32-bp bins"
    )
    (PACKAGE_DIR / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")

    gold = golden(PACKAGE_DIR / "model.safetensors")
    (PACKAGE_DIR / "golden.json").write_text(json.dumps(gold, indent=1) + "\n")

    cfg = json.loads((PACKAGE_DIR / "config.json").read_text())
    from safetensors.numpy import load_file

    params = sum(v.size for k, v in load_file(PACKAGE_DIR / "model.safetensors").items()
                 if "running_" not in k and "num_batches" not in k)  # fmt: skip
    logs = read_logs(args.run)
    test_rows = assay_table(reports["test"], sheet)
    valid_rows = {a: r for a, _, r in assay_table(reports["valid"], sheet)}
    accuracy = "\n".join(f"| {a} | {n} | {r:.3f} | {valid_rows[a]:.3f} |" for a, n, r in test_rows)
    counts = {a: sum(t["assay"] == a for t in sheet) for a in ASSAY_NOTES}
    assay_sources = "\n".join(f"| {a} | {counts[a]} | {note} |" for a, note in ASSAY_NOTES.items())
    import yaml

    train_cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    optim = train_cfg["optim"]
    card = CARD.format(
        params=params,
        seq_len=cfg["sequence_length"],
        bins=cfg["target_length"],
        out_bp=cfg["target_length"] * 128,
        channels=cfg["channels"],
        stem=cfg["channels"] // 2,
        filters=", ".join(map(str, cfg["tower_filters"])),
        layers=cfg["num_transformer_layers"],
        heads=cfg["num_heads"],
        key=cfg["key_size"],
        feat=cfg["num_relative_position_features"],
        dropout=cfg["dropout_rate"],
        mb=(PACKAGE_DIR / "model.safetensors").stat().st_size / 1e6,
        sha=gold["weights_sha256"],
        assay_sources=assay_sources,
        warmup=optim["warmup_steps"],
        lr=optim["lr"],
        min_lr=optim["lr"] * optim["min_lr_ratio"],
        clip=optim["clip_norm"],
        batch=train_cfg["batch_size"],
        minutes=logs["seconds"] / 60,
        accuracy=accuracy,
        commit=commit,
        fidelity=fidelity,
        torch_version=torch_version(),
        **{k: v for k, v in logs.items() if k != "seconds"},
    )
    (PACKAGE_DIR / "MODEL_CARD.md").write_text(card)
    print(f"bundled into {PACKAGE_DIR}")
    for a, n, r in test_rows:
        print(f"  test r {a:6s} ({n:2d} tracks): {r:.3f}")


if __name__ == "__main__":
    main()
