"""In-silico saturation mutagenesis at the official size on CPU: exact reuse vs naive.

``saturation_mutagenesis(..., exact_reuse=True)`` computes the conv stages of the
reference once and, for each of the 3 x positions mutants, only the conv rows the
mutation reaches, then the transformer and head; ``exact_reuse=False`` runs one full
forward per mutant. Naive is timed on the first ``--naive-positions`` positions (a full
forward per mutant makes it slow), ours on all ``--positions``; both print mutants per
second, and the scores of the shared positions are compared.

    python benchmarks/bench_ism.py [--weights DIR] [--positions 32] [--naive-positions 2]
    python benchmarks/bench_ism.py --model borzoi --positions 2 --naive-positions 1

``--model borzoi``: Borzoi at its official size (524,288 bp; random weights, BatchNorm
statistics randomised as in ``bench_borzoi.py``); reuse covers the conv tower and the U-Net's
skip rows, the transformer runs for every mutant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from enformer import Enformer, EnformerConfig
from enformer.model.borzoi import Borzoi, BorzoiConfig
from enformer.interpret.ism import saturation_mutagenesis


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("enformer", "borzoi"), default="enformer")
    p.add_argument("--weights", help="checkpoint (default: random official-size weights)")
    p.add_argument("--positions", type=int, default=32)
    p.add_argument("--naive-positions", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    family = Borzoi if args.model == "borzoi" else Enformer
    if args.weights:
        model = family.from_pretrained(args.weights)
    elif family is Borzoi:
        model = Borzoi(BorzoiConfig.preset("official")).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm1d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    else:
        model = Enformer(EnformerConfig.official()).eval()
    length = model.config.sequence_length
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, length)])
    start = length // 2 - args.positions // 2
    tracks = [0, 1, 2, 3]
    common = dict(head="human", tracks=tracks, batch_size=args.batch_size, progress=False)

    t = time.perf_counter()
    naive = saturation_mutagenesis(
        model, x, start=start, end=start + args.naive_positions, exact_reuse=False, **common
    )
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    ours = saturation_mutagenesis(
        model, x, start=start, end=start + args.positions, exact_reuse=True, **common
    )
    t_ours = time.perf_counter() - t
    n_naive = 3 * args.naive_positions
    n_ours = 3 * args.positions
    a = ours.scores[: args.naive_positions]
    b = naive.scores
    rel = float((np.abs(a - b) / np.maximum(np.abs(b), 1e-3)).max())
    result = {
        "model": args.model,
        "positions": args.positions,
        "naive_mutants_per_s": n_naive / t_naive,
        "ours_mutants_per_s": n_ours / t_ours,
        "speedup": (n_ours / t_ours) / (n_naive / t_naive),
        "max_rel_diff": rel,
        "naive_s": t_naive,
        "ours_s": t_ours,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"ISM {args.model} official size, fp32, {args.threads} threads, {len(tracks)} tracks")
        print(
            f"  naive: {n_naive} mutants in {t_naive:.1f} s = "
            f"{result['naive_mutants_per_s']:.3f}/s (incl. the reference forward)"
        )
        print(f"  ours : {n_ours} mutants in {t_ours:.1f} s = {result['ours_mutants_per_s']:.3f}/s")
        print(f"  speed-up {result['speedup']:.2f}x, max rel diff {rel:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
