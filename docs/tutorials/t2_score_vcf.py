# %% [markdown]
# # Score a VCF and read the scores
#
# We score eight GTEx eQTL SNPs on chromosome 1 (from Calico's test data) against the genes
# around them: for every variant and every gene whose TSS falls in the model's output window,
# the predicted change of CAGE signal at the gene's TSS, as `SAD` (difference of sums) and
# `logSED` (log2 fold change). [Variant scores](../variant-scores.md) explains each
# statistic.
#
# It runs on the **bundled mini model**, whose variant effects are illustrations only (it was
# trained on 45 windows). **With the official weights** pass `--weights
# EleutherAI/enformer-official-rough --targets targets_human.txt` and select tracks by name
# (`--tracks 'CAGE:K562'` or `'assay:CAGE'`); windows are then 196,608 bp and each score
# costs about one forward pass of the transformer (the convolutional stages are reused
# between REF and ALT).

# %%
import os
import shlex
import tempfile
from pathlib import Path

import pandas as pd

from enformer.cli.main import main

DATA = Path(os.environ.get("ENFORMER_SHARED", "../shared")) / "data"  # your files here
FASTA = DATA / "genome" / "hg38_subset.fa.gz"
GTF = DATA / "annotations" / "gencode_hg38_subset.gtf"
VCF = DATA / "variants" / "gtex_eqtl_chr1.vcf"
OUT = Path(tempfile.mkdtemp())


def enformer(command: str) -> None:
    """Run an `enformer` command line, exactly as in a terminal."""
    code = main(shlex.split(command))
    assert code == 0, f"enformer exited with status {code}"


print(VCF.read_text().splitlines()[-3:])

# %% [markdown]
# ## Score
#
# `--genes` turns on gene mode: one row per variant, gene and track. The mini model's CAGE
# tracks are 0-23 (12 samples, + and - strand each).

# %%
enformer(f"score --weights mini --fasta {FASTA} --vcf {VCF} --genes {GTF} "
         f"--tracks 0-3 --stats SAD,logSED --out {OUT}/scores.tsv -q")

# %% [markdown]
# ## Read the table
#
# The output is tidy: one row per variant x gene x track, with the gene's id, name, strand and
# the distance from the variant to the TSS (positive: downstream of the TSS, in the gene's
# direction of transcription).

# %%
scores = pd.read_csv(OUT / "scores.tsv", sep="\t", comment="#")
print(scores.columns.tolist())
scores.head()

# %% [markdown]
# Rank variant-gene pairs by the size of the predicted effect, averaged over the tracks:

# %%
per_pair = (scores.groupby(["id", "gene_name", "tss_distance"])["logSED"].mean()
            .sort_values(key=abs, ascending=False))
per_pair.head(10)

# %% [markdown]
# Variants with no TSS in their output window are not dropped silently: they are listed, with
# the reason, in the `.skipped.tsv` file beside the output.

# %%
skipped = OUT / "scores.skipped.tsv"
print(skipped.read_text() if skipped.exists() else "nothing skipped")

# %% [markdown]
# ## A picture of the effects
#
# Each bar is one variant-gene pair (mean `logSED` over the four tracks); bars left of zero
# are predicted to lower the gene's CAGE signal at its TSS. Swapping REF and ALT would flip
# every bar: the signed statistics change sign, which the test suite checks.

# %%
import matplotlib.pyplot as plt

top = per_pair.head(12)[::-1]
fig, ax = plt.subplots(figsize=(7, 4))
ax.barh([f"{v} / {g}" for v, g, _ in top.index], top.values,
        color=["#c44e52" if x < 0 else "#4c72b0" for x in top.values])
ax.axvline(0, color="black", lw=0.8)
ax.set_xlabel("logSED (log2 fold change of CAGE at the TSS), mini model")
fig.tight_layout()

# %% [markdown]
# Next: [explain a prediction](t3_explain.py).
