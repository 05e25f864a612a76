# %% [markdown]
# # Fine-tune on your own BigWigs
#
# You have coverage tracks (BigWig) of your own assays and want a model that predicts them.
# Training from scratch needs thousands of windows and days on a GPU; fine-tuning puts a new
# **head** on a pretrained trunk and trains it (and optionally the last layers, or LoRA
# adapters) on your data, which works with far less.
#
# Here the "own data" are six real tracks (CAGE +/-, two DNase, RNA +/-) over 65 windows of
# hg38 from Calico's test data, with the windows' train / valid / test split. The trunk is the
# **bundled mini model** and the run is 20 updates on a CPU — enough to show every step, not
# to learn much. **With the official weights** use `--weights
# EleutherAI/enformer-official-rough`, your own BED of regions (a few thousand windows), a GPU,
# and thousands of updates; `torchrun` spreads a run over several GPUs.

# %%
import csv
import json
import os
import shlex
import tempfile
from pathlib import Path

import numpy as np
import yaml

from enformer.cli.main import main

DATA = Path(os.environ.get("ENFORMER_SHARED", "../shared")) / "data"  # your files here
FASTA = DATA / "genome" / "hg38_subset.fa.gz"
OUT = Path(tempfile.mkdtemp())


def enformer(command: str) -> None:
    """Run an `enformer` command line, exactly as in a terminal."""
    code = main(shlex.split(command))
    assert code == 0, f"enformer exited with status {code}"


# %% [markdown]
# ## 1. A track sheet for your BigWigs
#
# Training reads a Basenji-style track sheet: one row per track with its BigWig `file`, how
# coverage is summarised per bin (`sum_stat`), scaling and clipping, the opposite-strand track
# (`strand_pair`) and a description whose first word is the assay. These BigWigs already hold
# processed values, so we pass them through (`mean`, scale 1, no clipping).

# %%
rows = list(csv.DictReader(open(DATA / "tracks" / "tracks.tsv"), delimiter="\t"))
index = {int(r["target_index"]): i for i, r in enumerate(rows)}
sheet = OUT / "my_tracks.txt"
with open(sheet, "w") as f:
    f.write("\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n")
    for i, r in enumerate(rows):
        pair = index.get(int(r["strand_pair_index"]), i)
        path = DATA / "tracks" / r["file"]
        f.write(f"{i}\t{r['identifier']}\t{path}\t\t\t1.0\tmean\t{pair}\t"
                f"{r['assay']}:{r['description']}\n")
print(open(sheet).read()[:400])

# %% [markdown]
# ## 2. The run description
#
# A YAML file says where the data are and how to train. `data.path` is a BED of target
# regions whose fourth column names the split; each example is the model's input window
# centred on one region.

# %%
regions = DATA / "basenji_tiny_hg38" / "sequences.bed"
run = {
    "run_dir": str(OUT / "run"),
    "steps": 20,
    "batch_size": 2,
    "eval_every": 10,
    "tensorboard": False,
    "data": {"kind": "bigwig", "path": str(regions), "genome": str(FASTA),
             "targets": str(sheet), "max_shift": 3, "reverse_complement": True},
    "optim": {"lr": 1e-3, "warmup_steps": 0},
}
(OUT / "finetune.yaml").write_text(yaml.safe_dump(run))

# %% [markdown]
# ## 3. Fine-tune
#
# A new head `mine` with 6 tracks on the frozen trunk (the pretrained weights stay as they
# are; `--train-last-layers 1` or `--lora-rank 8` would adapt the trunk too), BatchNorm
# statistics frozen.

# %%
enformer(f"finetune {OUT}/finetune.yaml --weights mini --heads mine:6 --freeze-trunk "
         f"--freeze-batchnorm -q")
log = [json.loads(line) for line in open(OUT / "run" / "log.jsonl")]
losses = [e["loss"] for e in log if "loss" in e]
print(f"losses logged: {len(losses)}, first {losses[0]:.3f}, last {losses[-1]:.3f}")

# %% [markdown]
# ## 4. Evaluate on the held-out windows
#
# Per-track Pearson r over all bins of the test windows, pooled (DeepMind's and Basenji's
# definition). After 20 updates of a head on a tiny trunk, expect little; the numbers are
# here to show the workflow.

# %%
enformer(f"evaluate --weights {OUT}/run/final --data {regions} --kind bigwig --genome {FASTA} "
         f"--targets {sheet} --split test --out {OUT}/test.json -q")
report = json.load(open(OUT / "test.json"))
print("mean r over tracks:", round(report["mean_r"], 3))
print({t["index"]: round(t["pearson_r"], 3) for t in report["per_track"]})

# %% [markdown]
# The fine-tuned model is an ordinary checkpoint (`run/final`): `--weights run/final` works in
# every command, with the new head's track sheet beside it.

# %%
print(sorted(p.name for p in (OUT / "run" / "final").iterdir()))
