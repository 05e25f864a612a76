# %% [markdown]
# # Explain a prediction: attributions, mutagenesis, attention
#
# Why does the model predict CAGE signal at the promoter of *SAMD11* (chr1, + strand, TSS at
# 923,923)? Three complementary answers:
#
# 1. **Attributions** (gradient x input): how much each base of the 131-kb input pushes the
#    read-out (CAGE at the gene's TSS bins) up or down, in one backward pass.
# 2. **In-silico saturation mutagenesis (ISM)**: the read-out after changing each base of a
#    short window to each other base — slower, but a direct measurement.
# 3. **Attention**: which bins the transformer looks at from the TSS bin.
#
# It runs on the **bundled mini model**, which learned little more than CpG-island promoters.
# **With the official weights** the same commands show transcription-factor motifs in the
# promoter and distal enhancers the TSS attends to; pass `--weights
# EleutherAI/enformer-official-rough --targets targets_human.txt --tracks 'CAGE:K562'`.
# Attributions of the full model take one forward and one backward pass (about a minute on a
# CPU); ISM with exact reuse costs one transformer pass per mutant.

# %%
# %matplotlib inline
import os
import shlex
import tempfile
from pathlib import Path

from IPython.display import Image

from enformer import Enformer
from enformer.cli.main import main
from enformer.data.genome import Genome
from enformer.interpret import capture_attention
from enformer.interpret.attention_plots import plot_attention_profile

DATA = Path(os.environ.get("ENFORMER_SHARED", "../shared")) / "data"  # your files here
FASTA = DATA / "genome" / "hg38_subset.fa.gz"
GTF = DATA / "annotations" / "gencode_hg38_subset.gtf"
OUT = Path(tempfile.mkdtemp())


def enformer(command: str) -> None:
    """Run an `enformer` command line, exactly as in a terminal."""
    code = main(shlex.split(command))
    assert code == 0, f"enformer exited with status {code}"


# %% [markdown]
# ## 1. Attributions
#
# `--gene SAMD11 --gtf ...` reads out the TSS bins of the gene (the bin holding the TSS and
# one on each side); track 0 is a plus-strand CAGE track, matching the gene's strand.

# %%
enformer(f"attribute --weights mini --fasta {FASTA} --region chr1:923,000-925,000 "
         f"--gene SAMD11 --gtf {GTF} --tracks 0 --out {OUT}/attr --plot png -q")
print(sorted(p.name for p in (OUT / "attr").iterdir()))
Image(filename=str(next((OUT / "attr").glob("*.png"))))

# %% [markdown]
# ## 2. In-silico mutagenesis of the TSS
#
# Every base of a 40-bp window around the TSS, changed to each of the other three bases: the
# heatmap shows the change of the read-out. The convolutional stages of the reference are
# computed once and reused for every mutant (only the rows a mutation reaches are redone).

# %%
enformer(f"ism --weights mini --fasta {FASTA} --region chr1:923,000-925,000 "
         f"--window chr1:923,904-923,943 --gene SAMD11 --gtf {GTF} --tracks 0 "
         f"--out {OUT}/ism --plot png -q")
Image(filename=str(next((OUT / "ism").glob("*.png"))))

# %% [markdown]
# ## 3. Where the TSS looks
#
# `capture_attention` records the softmax weights of the transformer layers for one input.
# From the TSS bin, we plot the attention (averaged over heads) of the last layer to every
# bin of the window, with the genes underneath.

# %%
model = Enformer.from_pretrained("mini")
length = model.config.sequence_length
tss = 923_922  # 0-based position of the TSS
start = tss - length // 2
with Genome(FASTA) as genome:
    sequence = genome.fetch("chr1", start, start + length)
maps = capture_attention(model, sequence, layers=[model.config.num_transformer_layers - 1],
                         average_heads=True)
query = (tss - start) // maps.bin_size  # the TSS bin, counted over all (uncropped) bins
fig = plot_attention_profile(maps, query, chrom="chr1", input_start=start, gtf=GTF,
                             query_label="SAMD11 TSS")
fig

# %% [markdown]
# Next: [fine-tune on your own BigWigs](t4_finetune.py).
