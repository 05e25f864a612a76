"""Borzoi outputs at a second input length (32,768 bp) from Calico's own code.

Run with TensorFlow (tensorflow-cpu 2.15.1) and calico/baskerville@544073b's ``src/`` on the
path, from a checkout beside the shared folder::

    PYTHONPATH=baskerville/src python tests/data/borzoi_32k/make_vectors.py ../shared/vectors/borzoi

It builds ``seqnn.SeqNN`` from the shared vectors' model parameters with ``seq_length`` 32,768
(the attention then sees 256 bins instead of 512, so its positional features change), loads
the shared Keras weights of both heads unchanged, and writes ``io.npz`` here: ``codes``
(1, 32768) int8 (0..3 = A, C, G, T; -1 = N, an all-zero row), ``human`` (1, 992, 24) and
``mouse`` (1, 992, 12) float32, eval mode.
"""

import json
import os
import sys
from pathlib import Path

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np  # noqa: E402
from baskerville import seqnn  # noqa: E402

LENGTH = 32_768
shared = Path(sys.argv[1])
params = json.loads((shared / "meta.json").read_text())["params_model"]
params["seq_length"] = LENGTH
model = seqnn.SeqNN(params)
model.models[0].load_weights(str(shared / "weights_human.h5"))
model.models[1].load_weights(str(shared / "weights_mouse.h5"))
rng = np.random.default_rng(7)
codes = rng.integers(0, 4, size=(1, LENGTH)).astype(np.int8)
codes[0, 20_000:20_300] = -1  # a run of N
x = np.zeros((1, LENGTH, 4), np.float32)
x[0, codes[0] >= 0, codes[0][codes[0] >= 0]] = 1
out = {h: m.predict(x, verbose=0).astype(np.float32) for h, m in zip(("human", "mouse"), model.models)}
np.savez_compressed(Path(__file__).parent / "io.npz", codes=codes, **out)
print({k: v.shape for k, v in out.items()})
