# %% [markdown]
# # Predict a region and open it in IGV
#
# This tutorial predicts CAGE, DNase and RNA tracks over 100 kb of real human chromosome 1,
# writes them as BigWig files at genome coordinates, and draws them with the genes underneath
# — the picture you would otherwise make by loading the files into IGV.
#
# It runs on the **bundled mini model** (`--weights mini`: 2 M parameters, 131,072 bp in,
# 74 tracks, trained on 45 windows; a demonstration, not a scientific tool) and on a subset of
# hg38 shipped with the package's test data. **With the official weights** you change only
# `--weights` (to `EleutherAI/enformer-official-rough`), use your own genome FASTA, and choose
# tracks of the official 5,313-track sheet (e.g. `--tracks 'CAGE:K562' --targets
# targets_human.txt`); each window is then 196,608 bp and predicts 896 bins of 128 bp.

# %%
# %matplotlib inline
import os
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pyBigWig

from enformer.cli.main import main
from enformer.interpret.plots import plot_tracks

DATA = Path(os.environ.get("ENFORMER_SHARED", "../shared")) / "data"  # your files here
FASTA = DATA / "genome" / "hg38_subset.fa.gz"
GTF = DATA / "annotations" / "gencode_hg38_subset.gtf"
OUT = Path(tempfile.mkdtemp())


def enformer(command: str) -> None:
    """Run an `enformer` command line, exactly as in a terminal."""
    code = main(shlex.split(command))
    assert code == 0, f"enformer exited with status {code}"


# %% [markdown]
# ## Which tracks?
#
# `enformer info` lists a model's heads and tracks; `--search` and `--tracks` look tracks up
# in its track sheet. The mini model carries its own sheet; for the official model pass
# `--targets targets_human.txt`.

# %%
enformer("info --weights mini --tracks 'search:K562'")

# %% [markdown]
# ## Predict
#
# A region longer than one window's output (512 bins x 128 bp = 65,536 bp for the mini model)
# is cut into windows whose output bins abut; the region's ends get their context from the
# genome around them. The run is resumable: run the same command again after an interruption
# and it continues where it stopped.

# %%
region = "chr1:850,001-950,000"
enformer(f"predict --weights mini --fasta {FASTA} --region {region} "
         f"--tracks 0,1,24,34,35 --out {OUT}/pred -q")
files = sorted((OUT / "pred").glob("*.bw"))
print("\n".join(f.name for f in files))

# %% [markdown]
# ## Read the BigWig files
#
# Each file holds one track at real coordinates, one value per 128-bp bin. These are the
# files to drag into IGV (File > Load from File), together with the genome and the GTF.

# %%
values, labels = [], []
for f in files:
    with pyBigWig.open(str(f)) as bw:
        v = np.array(bw.values("chr1", 850_000, 950_000, numpy=True))[::128]
    values.append(np.nan_to_num(v))
    labels.append(f.stem.replace("human_", ""))
values = np.stack(values, axis=1)  # (bins, tracks)
print(values.shape, "bins x tracks; max per track:", values.max(0).round(2))

# %% [markdown]
# ## The picture
#
# Genes from the GTF are drawn under the tracks. The mini model puts CAGE and DNase signal at
# CpG-island promoters; the official model resolves far more (cell-type-specific enhancers,
# alternative promoters, RNA-seq coverage over exons).

# %%
fig = plot_tracks(values, chrom="chr1", start=850_000, bin_size=128, labels=labels,
                  gtf=GTF, title=f"mini model, {region}")
fig

# %% [markdown]
# Next: [score variants](t2_score_vcf.py) in the same region.
