# %% [markdown]
# # The official weights: download, convert, check parity, run on a GPU
#
# Everything in the other tutorials runs on the bundled mini model. For science you want the
# published models. This tutorial shows the commands for them (they need a download of about
# 1 GB, not possible where these pages are built; such blocks are marked) and runs the same
# steps on what is available offline: the mini model, and a small Enformer for which DeepMind's
# own code computed reference outputs.

# %% [markdown]
# ## Download and convert
#
# <!-- docs: official -->
# ```bash
# # The enformer-pytorch / Hugging Face copy of DeepMind's weights, cached in ~/.cache/enformer:
# enformer info --weights EleutherAI/enformer-official-rough
# # Our format (model.safetensors + config.json), e.g. for a machine without network access:
# enformer convert EleutherAI/enformer-official-rough enformer-official/
# # TF-Hub variables (a .npz of {v.name: v.numpy()}) convert the same way:
# enformer convert enformer_tf_variables.npz enformer-official/
# # Borzoi (Calico's release folder) and Flashzoi (borzoi-pytorch on the hub):
# enformer convert borzoi/fold0/ borzoi-fold0/
# enformer convert johahi/flashzoi-replicate-0 flashzoi-0/
# ```
#
# Offline, the same round trip with the mini model: save, convert, load, and check that
# nothing changed.

# %%
import os
import shlex
import tempfile
from pathlib import Path

import numpy as np
import torch

from enformer import Enformer
from enformer.cli.main import main

OUT = Path(tempfile.mkdtemp())
SHARED = Path(os.environ.get("ENFORMER_SHARED", "../shared"))


def enformer(command: str) -> None:
    """Run an `enformer` command line, exactly as in a terminal."""
    code = main(shlex.split(command))
    assert code == 0, f"enformer exited with status {code}"


mini = Enformer.from_pretrained("mini")
mini.save_pretrained(str(OUT / "saved"))
enformer(f"convert {OUT}/saved {OUT}/converted -q")
back = Enformer.from_pretrained(str(OUT / "converted"))
same = all(torch.equal(a, b) for a, b in zip(mini.state_dict().values(),
                                             back.state_dict().values()))
print("identical tensors after the round trip:", same)

# %% [markdown]
# ## Check parity with DeepMind's code
#
# The package's tests compare its outputs with outputs that DeepMind's TensorFlow code
# computed for the same weights. The reference folder used by the tests holds such outputs for
# a small Enformer (384 channels, 2 transformer layers, the official input length and heads),
# in both published weight layouts. Loading one and comparing takes a few seconds:

# %%
vectors = SHARED / "vectors" / "public"
small = Enformer.from_pretrained(str(vectors / "hf")).eval()
with np.load(vectors / "io.npz") as f:
    x = torch.from_numpy(f["inputs_onehot"].astype(np.float32))
    reference, head_bins = f["human"], f["head_bins"]
with torch.inference_mode():
    ours = small(x)["human"][:, head_bins].numpy()
difference = np.abs(ours - reference) / (np.abs(reference) + 1e-3)
print(f"largest relative difference to DeepMind's output: {difference.max():.1e}")

# %% [markdown]
# With the official weights, the same check runs against DeepMind's published example
# outputs; the test suite does it for both weight layouts at every change of the model code.
#
# ## On a GPU
#
# Every command takes `--device cuda` (or `cuda:1`), and `--dtype bfloat16` halves memory
# and time on recent GPUs while returning float32 results. In Python, move the model and
# keep `torch.inference_mode()` around predictions (without it PyTorch keeps what it needs
# for gradients and runs out of memory after a few sequences):
#
# <!-- docs: official -->
# ```bash
# enformer predict --weights EleutherAI/enformer-official-rough --fasta hg38.fa \
#     --chromosomes chr21 --tracks 'assay:CAGE' --targets targets_human.txt \
#     --device cuda --dtype bfloat16 --batch-size 8 --out chr21/
# ```
#
# The same code runs here on the CPU when no GPU is present:

# %%
from enformer import predict  # noqa: E402

device = "cuda" if torch.cuda.is_available() else "cpu"
dtype = torch.bfloat16 if device == "cuda" else None
rng = np.random.default_rng(0)
dna = "".join(rng.choice(list("ACGT"), mini.config.sequence_length))
prediction = predict(mini, dna, device=device, dtype=dtype, tracks=[0, 24], progress=False)
print(device, prediction.values["human"].shape, prediction.values["human"].dtype)
