"""Forward-pass speed and memory: enformer (this package) vs PyPI's enformer-pytorch.

Both models get the same weights (an enformer-pytorch / Hugging Face directory) and the
same 196,608-bp input, and run interleaved in one process, fp32, batch 1. Prints seconds
per sequence, the ratio, each call's peak memory (resident-set growth over the level
before the call, sampled every 5 ms), the largest difference of their outputs, and our
achieved FLOP rate as a fraction of this machine's measured fp32 matmul rate.

    python benchmarks/bench_forward.py                 # random official-size weights
    python benchmarks/bench_forward.py --weights DIR   # e.g. enformer-official-rough
    python benchmarks/bench_forward.py --malloc-env    # also rerun with glibc's mmap off

Needs ``pip install enformer-pytorch`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident-set growth during a block, sampled by a thread."""

    def __enter__(self):
        gc.collect()
        self.base = rss_bytes()
        self.peak = self.base
        self._stop = False
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.growth = self.peak - self.base


def matmul_rate(n: int = 4096, reps: int = 5) -> float:
    """Best-of fp32 GEMM rate (FLOP/s) at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def nominal_flops(cfg, length: int) -> float:
    """Multiply-add FLOPs of one standard Enformer forward (pool logits at every position)."""
    c2 = cfg.channels // 2
    f = 0.0
    L = length
    f += L * cfg.stem_kernel_size * 4 * c2 * 2 + L * c2 * c2 * 2 * 2
    L //= 2
    cin = c2
    for cout in cfg.filters:
        f += L * cfg.tower_kernel_size * cin * cout * 2 + L * cout * cout * 2 * 2
        L //= 2
        cin = cout
    t, c, h, k, v = L, cfg.channels, cfg.num_heads, cfg.key_size, cfg.value_size
    nf = cfg.relative_position_features
    per_layer = (
        t * c * (2 * h * k) * 2
        + 2 * t * c * (h * v) * 2
        + h * t * t * k * 2
        + h * t * (2 * t - 1) * k * 2
        + (2 * t - 1) * nf * h * k * 2
        + h * t * t * v * 2
        + 2 * t * c * 2 * c * 2
    )
    f += cfg.num_transformer_layers * per_layer
    out = cfg.output_bins(length)
    f += out * c * 2 * c * 2 + out * 2 * c * sum(cfg.heads.values()) * 2
    return f


def make_random_hf_dir(directory: Path, seed: int) -> None:
    """Official-size enformer-pytorch model with random weights (and random BN stats)."""
    from enformer_pytorch import Enformer as EP

    torch.manual_seed(seed)
    model = EP.from_hparams(
        dim=1536, depth=11, heads=8, output_heads=dict(human=5313, mouse=1643), target_length=896
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(directory, safe_serialization=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", help="enformer-pytorch / Hugging Face directory")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--length", type=int, default=196_608)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--malloc-env",
        action="store_true",
        help="also run a second time with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=huge",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from enformer_pytorch import Enformer as EP

    from enformer import Enformer

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = str(Path(tmp) / "random_official")
            make_random_hf_dir(Path(weights), args.seed)
        ours = Enformer.from_pretrained(weights).eval()
        theirs = EP.from_pretrained(weights, use_tf_gamma=args.length == 196_608).eval()

    rng = np.random.default_rng(args.seed)
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (1, args.length))])

    rates = [matmul_rate()]  # measured again after every round; the best one is used
    flops = nominal_flops(ours.config, args.length)
    times = {"ours": [], "enformer_pytorch": []}
    peaks = {"ours": [], "enformer_pytorch": []}
    outs = {}
    for rep in range(args.reps + 1):  # first round is warm-up
        for name in ("enformer_pytorch", "ours") if rep % 2 else ("ours", "enformer_pytorch"):
            with PeakRSS() as mem, torch.inference_mode():
                t = time.perf_counter()
                if name == "ours":
                    y = ours(x)["human"]
                else:
                    y = theirs(x)["human"]
                dt = time.perf_counter() - t
            outs[name] = y
            if rep:
                times[name].append(dt)
                peaks[name].append(mem.growth)
            print(
                f"  rep {rep} {name:>16}: {dt:6.2f} s, peak +{mem.growth / 1e9:.2f} GB",
                file=sys.stderr,
            )
            del y
        rates.append(matmul_rate(reps=3))
    rate = max(rates)
    ours_t = float(np.median(times["ours"]))
    theirs_t = float(np.median(times["enformer_pytorch"]))
    diff = (outs["ours"] - outs["enformer_pytorch"]).abs()
    result = {
        "length": args.length,
        "threads": args.threads,
        "malloc_env": bool(os.environ.get("MALLOC_MMAP_MAX_")),
        "ours_s": ours_t,
        "enformer_pytorch_s": theirs_t,
        "speedup": theirs_t / ours_t,
        "ours_peak_gb": max(peaks["ours"]) / 1e9,
        "enformer_pytorch_peak_gb": max(peaks["enformer_pytorch"]) / 1e9,
        "peak_ratio": max(peaks["ours"]) / max(peaks["enformer_pytorch"]),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / outs["enformer_pytorch"].abs().clamp_min(1e-2)).max()),
        "matmul_gflops": rate / 1e9,
        "nominal_tflop": flops / 1e12,
        "ours_gflops": flops / ours_t / 1e9,
        "ours_fraction_of_matmul": flops / ours_t / rate,
        "enformer_pytorch_fraction_of_matmul": flops / theirs_t / rate,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"input {args.length:,} bp, fp32, batch 1, {args.threads} threads"
            f"{' (MALLOC_MMAP_MAX_=0)' if result['malloc_env'] else ''}"
        )
        print(f"  ours              {ours_t:7.2f} s/seq   peak +{result['ours_peak_gb']:.2f} GB")
        print(
            f"  enformer-pytorch  {theirs_t:7.2f} s/seq   peak "
            f"+{result['enformer_pytorch_peak_gb']:.2f} GB"
        )
        print(f"  speed-up {result['speedup']:.2f}x   memory ratio {result['peak_ratio']:.2f}")
        print(f"  max |diff| {result['max_abs_diff']:.2e} (rel {result['max_rel_diff']:.2e})")
        print(
            f"  matmul rate {result['matmul_gflops']:.0f} GFLOP/s; nominal forward "
            f"{result['nominal_tflop']:.2f} TFLOP -> ours {result['ours_gflops']:.0f} GFLOP/s "
            f"= {100 * result['ours_fraction_of_matmul']:.0f}% of matmul "
            f"(enformer-pytorch {100 * result['enformer_pytorch_fraction_of_matmul']:.0f}%)"
        )
    if args.malloc_env and not os.environ.get("MALLOC_MMAP_MAX_"):
        env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="1000000000000")
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        return subprocess.call([c for c in cmd if c != "--malloc-env"], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
