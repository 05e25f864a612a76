"""Borzoi forward speed and memory: enformer (this package) vs PyPI's borzoi-pytorch.

Both models get the same random official-size weights (ours written into borzoi-pytorch's
names by ``enformer.weights.borzoi.to_borzoi_pytorch``; BatchNorm statistics randomised) and
the same input, and run interleaved in one process, fp32, batch 1, human head. Prints seconds
per sequence, the ratio, each call's peak memory (resident-set growth over the level before
the call, sampled every 5 ms) and the largest relative difference of the outputs.

    python benchmarks/bench_borzoi.py                    # 524,288 bp, the official size
    python benchmarks/bench_borzoi.py --length 131072    # a quicker proxy
    python benchmarks/bench_borzoi.py --flashzoi         # rotary attention (both sides)
    python benchmarks/bench_borzoi.py --variants 4       # also exact reuse vs naive, SNVs

Needs ``pip install borzoi-pytorch`` (its import also needs ``intervaltree``). borzoi-pytorch
crops a fixed number of bins (``bins_to_return``); it is set so both return the same bins.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import numpy as np
import torch

from bench_forward import PeakRSS  # the same peak-memory probe as the Enformer benchmark


def build(length: int, flashzoi: bool):
    """Our model and borzoi-pytorch's, holding the same random weights."""
    from borzoi_pytorch import Borzoi as TheirBorzoi
    from borzoi_pytorch.config_borzoi import BorzoiConfig as TheirConfig

    from enformer.model.borzoi import Borzoi, BorzoiConfig
    from enformer.weights.borzoi import to_borzoi_pytorch

    torch.manual_seed(0)
    ours = Borzoi(BorzoiConfig.preset("flashzoi" if flashzoi else "official")).eval()
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    bins = length // 32 - 2 * ours.config.crop
    theirs = TheirBorzoi(TheirConfig(enable_mouse_head=True, return_center_bins_only=True,
                                     bins_to_return=bins, flashed=flashzoi)).eval()  # fmt: skip
    missing, unexpected = theirs.load_state_dict(to_borzoi_pytorch(ours), strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not map: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return ours, theirs


def timed(fn, x):
    gc.collect()
    with PeakRSS() as mem, torch.inference_mode():
        t = time.perf_counter()
        y = fn(x)
        seconds = time.perf_counter() - t
    return y, seconds, mem.growth


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=524_288)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--flashzoi", action="store_true")
    p.add_argument("--variants", type=int, default=0, help="SNVs for the reuse comparison")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ours, theirs = build(args.length, args.flashzoi)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, args.length)])[None]

    def run_ours(x):  # the human head only, as borzoi-pytorch's forward computes
        return ours(x, heads="human")["human"]

    def run_theirs(x):
        return theirs(x.transpose(1, 2)).transpose(1, 2)

    rows = {"ours": [], "theirs": []}
    outputs = {}
    for r in range(args.repeats):
        for name, fn in (("ours", run_ours), ("theirs", run_theirs))[:: 1 if r % 2 == 0 else -1]:
            y, seconds, peak = timed(fn, x)
            rows[name].append((seconds, peak))
            outputs[name] = y
            print(f"  {name:6s} {seconds:7.2f} s  peak {peak / 2**30:6.2f} GiB", file=sys.stderr)
    a, b = outputs["ours"], outputs["theirs"]
    rel = float(((a - b).abs() / (b.abs() + 1e-3)).max())
    med = {k: statistics.median(s for s, _ in v) for k, v in rows.items()}
    peak = {k: max(m for _, m in v) for k, v in rows.items()}
    result = {
        "model": "flashzoi" if args.flashzoi else "borzoi",
        "length": args.length,
        "threads": args.threads,
        "repeats": args.repeats,
        "seconds": {k: [round(s, 3) for s, _ in v] for k, v in rows.items()},
        "median_seconds": med,
        "speedup": med["theirs"] / med["ours"],
        "peak_gib": {k: v / 2**30 for k, v in peak.items()},
        "memory_ratio": peak["ours"] / peak["theirs"],
        "max_rel_diff": rel,
    }
    if args.variants:
        result["variants"] = reuse_ratio(ours, x[0], args.variants)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['model']} {args.length:,} bp, {args.threads} threads: ours "
              f"{med['ours']:.2f} s, borzoi-pytorch {med['theirs']:.2f} s -> "
              f"{result['speedup']:.2f}x; peak {result['peak_gib']['ours']:.2f} vs "
              f"{result['peak_gib']['theirs']:.2f} GiB ({result['memory_ratio']:.0%}); "
              f"max rel diff {rel:.1e}")  # fmt: skip
    return 0


def reuse_ratio(model, x: torch.Tensor, n: int) -> dict:
    """Seconds per SNV with exact reuse vs full forwards, and their largest difference."""
    from enformer.variants.predictors import predict_alleles, predict_alleles_reuse

    length = x.shape[0]
    rng = np.random.default_rng(1)
    alts = []
    for p in rng.integers(length // 4, 3 * length // 4, n):
        a = x.clone()
        a[p] = torch.roll(a[p], 1)
        alts.append(a)
    kw = dict(ref_index=np.zeros(n, dtype=int), head="human", tracks=list(range(16)))
    t = time.perf_counter()
    fast = predict_alleles_reuse(model, x[None], torch.stack(alts), **kw)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    naive = predict_alleles(model, x[None], torch.stack(alts), **kw)
    t_naive = time.perf_counter() - t
    diff = float(np.abs(fast.alt - naive.alt).max() / np.abs(naive.alt).max())
    return {"snvs": n, "seconds_reuse": t_fast, "seconds_naive": t_naive,
            "speedup": t_naive / t_fast, "max_rel_diff": diff}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
