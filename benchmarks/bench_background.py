"""Background scores with exact reuse vs full forwards (``enformer score --make-background``).

Random SNVs are drawn around each variant of the shared GTEx eQTL VCF and share its reference
window, so the reuse predictor computes the reference's convolutional stages once per window.
Runs both predictors on the same model, interleaved, and prints seconds, the ratio and the
largest difference of the scores.

    python benchmarks/bench_background.py [--weights mini] [--snvs 4] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from enformer import Enformer
from enformer.variants.background import make_background


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="mini")
    p.add_argument("--snvs", type=int, default=4, help="random SNVs per variant")
    p.add_argument("--shared", default=os.environ.get("ENFORMER_SHARED", "../shared"))
    args = p.parse_args(argv)
    data = Path(args.shared) / "data"
    model = Enformer.from_pretrained(args.weights)
    kw = dict(random_snvs=args.snvs, seed=0, stats="SAD,logSED", tracks=list(range(8)),
              progress=False)  # fmt: skip
    out = {}
    warnings.simplefilter("ignore")
    for name in ("reuse", "naive", "reuse", "naive"):
        t = time.perf_counter()
        bg = make_background(model, data / "variants" / "gtex_eqtl_chr1.vcf",
                             data / "genome" / "hg38_subset.fa.gz", predictor=name, **kw)
        out.setdefault(name, []).append((time.perf_counter() - t, bg))
    best = {k: min(s for s, _ in v) for k, v in out.items()}
    a, b = out["reuse"][0][1].values["logSED"], out["naive"][0][1].values["logSED"]
    result = {"weights": args.weights, "background_variants": int(a.shape[0]),
              "seconds_reuse": best["reuse"], "seconds_naive": best["naive"],
              "speedup": best["naive"] / best["reuse"],
              "max_abs_diff_logSED": float(np.abs(a - b).max())}  # fmt: skip
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
