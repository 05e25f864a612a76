"""Variant scoring speed: exact conv-tower reuse vs naive full forwards, official size, CPU.

Two scenarios, each timed interleaved in one process on the same weights and windows:

* ``single``: one variant-centred window per SNV. Naive = full forwards of ref and alt;
  ours = one full conv stack for ref, the changed rows only for alt, the transformer and
  heads for both (batched).
* ``shared``: K SNVs share one reference window (variant grouping, or ISM). Naive = one
  ref forward + K alt forwards; ours = one conv stack + K patches + K+1 transformers.

Prints variants per second for both, the ratio, and the max relative difference of the
head outputs (must stay <= 1e-5 relative, the tolerance the tests use).

    python benchmarks/bench_variants.py [--weights DIR] [--reps 2] [--shared 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from enformer import Enformer, EnformerConfig
from enformer.model.reuse import conv_activations, conv_tower_for, forward_from_tower


def snv(x: torch.Tensor, pos: int) -> torch.Tensor:
    y = x.clone()
    base = (int(y[pos].argmax()) + 1) % 4
    y[pos] = 0
    y[pos, base] = 1
    return y


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp_min(1e-3)).max())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", help="checkpoint (default: random official-size weights)")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--shared", type=int, default=16, help="variants per shared window")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.weights:
        model = Enformer.from_pretrained(args.weights)
    else:
        model = Enformer(EnformerConfig.official()).eval()
    model.eval()
    length = model.config.sequence_length
    rng = np.random.default_rng(0)
    ref = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, length)])
    centre = length // 2
    head = "human"

    def naive(alts):
        outs = []
        with torch.inference_mode():
            outs.append(model(ref[None])[head][0])
            for a in alts:
                outs.append(model(a[None])[head][0])
        return torch.stack(outs)

    def ours(alts):
        with torch.inference_mode():
            acts = conv_activations(model, ref)
            towers = [acts.tower] + [conv_tower_for(model, acts, a) for a in alts]
            outs = []
            for i in range(0, len(towers), 2):  # transformer in batches of 2
                outs.append(
                    forward_from_tower(model, torch.stack(towers[i : i + 2]), heads=[head])[head]
                )
        return torch.cat(outs)

    results = {}
    scenarios = {
        "single": [snv(ref, centre)],
        "shared": [snv(ref, centre - 40 * args.shared // 2 + 40 * k) for k in range(args.shared)],
    }
    for name, alts in scenarios.items():
        t_naive, t_ours = [], []
        for rep in range(args.reps):
            order = (naive, ours) if rep % 2 == 0 else (ours, naive)
            for fn in order:
                t = time.perf_counter()
                out = fn(alts)
                dt = time.perf_counter() - t
                (t_naive if fn is naive else t_ours).append(dt)
                if fn is naive:
                    out_naive = out
                else:
                    out_ours = out
                print(f"  {name} rep {rep} {fn.__name__}: {dt:.2f} s", file=sys.stderr)
        n = len(alts)
        tn, to = float(np.median(t_naive)), float(np.median(t_ours))
        results[name] = {
            "variants": n,
            "naive_variants_per_s": n / tn,
            "ours_variants_per_s": n / to,
            "speedup": tn / to,
            "max_rel_diff": rel_diff(out_ours, out_naive),
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"official size, fp32, {args.threads} threads, head {head}")
        for name, r in results.items():
            print(
                f"  {name:>6} ({r['variants']} variant(s)/window): naive "
                f"{r['naive_variants_per_s']:.4f}/s, ours {r['ours_variants_per_s']:.4f}/s, "
                f"speed-up {r['speedup']:.2f}x, max rel diff {r['max_rel_diff']:.1e}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
