"""Forward-pass speed and memory: enformer (this package) vs PyPI's enformer-pytorch.

Both models get the same weights (an enformer-pytorch / Hugging Face directory) and the
same 196,608-bp input, and run interleaved in one process, fp32, batch 1. Prints seconds
per sequence, the ratio, each call's peak memory (resident-set growth over the level
before the call, sampled every 5 ms), the largest difference of their outputs, and our
achieved FLOP rate as a fraction of this machine's measured fp32 matmul rate.

    python benchmarks/bench_forward.py                 # random official-size weights
    python benchmarks/bench_forward.py --weights DIR   # e.g. enformer-official-rough
    python benchmarks/bench_forward.py --channels 384  # the quick speed proxy
    python benchmarks/bench_forward.py --load 1        # every call beside 1 busy process
    python benchmarks/bench_forward.py --load 1 --quiet-too   # alternate quiet / loaded
    python benchmarks/bench_forward.py --stages        # seconds per stage instead
    python benchmarks/bench_forward.py --malloc-env    # also rerun with glibc's mmap off

A competing load is N separate Python processes spinning on the CPU (not pinned), started
just before each timed call and killed right after it; each also stops by itself after
``--load-seconds``. Needs ``pip install enformer-pytorch`` (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

SPIN = (
    "import time\n"
    "end = time.monotonic() + {seconds}\n"
    "while time.monotonic() < end:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)


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


@contextlib.contextmanager
def competing_load(n: int, seconds: float = 600.0) -> Iterator[None]:
    """Run ``n`` CPU-spinning Python processes for the duration of the block.

    Each stops by itself after ``seconds`` at the latest and is killed when the block
    exits, whatever happens inside it.
    """
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SPIN.format(seconds=float(seconds))],
                    stdin=subprocess.DEVNULL,
                )
            )
        if procs:
            time.sleep(0.3)  # let them start spinning
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


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


def make_random_hf_dir(directory: Path, seed: int, channels: int = 1536, depth: int = 11) -> None:
    """enformer-pytorch model with random weights (and random BN stats).

    ``channels=1536, depth=11`` is the official size; smaller ``channels`` give the same
    shape family (stem C/2, tower filters from C/2 to C, 8 heads, the official heads).
    """
    from enformer_pytorch import Enformer as EP

    torch.manual_seed(seed)
    model = EP.from_hparams(
        dim=channels,
        depth=depth,
        heads=8,
        output_heads=dict(human=5313, mouse=1643),
        target_length=896,
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(directory, safe_serialization=False)


def stages_ours(model) -> list[tuple[str, object]]:
    """Our forward as (name, function of the previous stage's output) pairs."""
    from enformer.model import fast

    trunk = model.trunk
    return [
        ("stem", lambda x: fast.stem_forward(trunk.stem, model._prepare(x).contiguous())),
        ("tower", lambda h: _run_tower(trunk, h)),
        ("transformer", lambda h: trunk.attend(h, crop=True)),
        ("final+heads", lambda h: model.heads_forward(trunk.finish(h))["human"]),
    ]


def _run_tower(trunk, h: torch.Tensor) -> torch.Tensor:
    from enformer.model import fast

    for block in trunk.conv_tower:
        h = fast.tower_block_forward(block, h)
    return h


def stages_theirs(model) -> list[tuple[str, object]]:
    """enformer-pytorch's forward as (name, function) pairs (its own modules, in order)."""
    return [
        ("stem", lambda x: model.stem(x.transpose(1, 2))),
        ("tower", lambda h: model.conv_tower(h).transpose(1, 2)),
        ("transformer", model.transformer),
        ("final+heads", lambda h: _heads_theirs(model, model.final_pointwise(model.crop_final(h)))),
    ]


def _heads_theirs(model, emb: torch.Tensor) -> torch.Tensor:
    return {name: head(emb) for name, head in model._heads.items()}["human"]  # every head


def timed_call(fn, x, stages: bool) -> tuple[torch.Tensor, list[float], int]:
    """Run one forward (whole, or stage by stage); output, seconds per part, peak RSS growth."""
    with PeakRSS() as mem, torch.inference_mode():
        times = []
        if stages:
            y = x
            for _, stage in fn:
                t = time.perf_counter()
                y = stage(y)
                times.append(time.perf_counter() - t)
        else:
            t = time.perf_counter()
            y = fn(x)
            times.append(time.perf_counter() - t)
    return y, times, mem.growth


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", help="enformer-pytorch / Hugging Face directory")
    p.add_argument("--channels", type=int, default=1536, help="random model width (official 1536)")
    p.add_argument("--depth", type=int, default=11, help="random model transformer layers")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--length", type=int, default=196_608)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--load", type=int, default=0, help="busy processes beside every timed call")
    p.add_argument("--load-seconds", type=float, default=600.0, help="each busy process's limit")
    p.add_argument("--quiet-too", action="store_true", help="with --load: alternate quiet rounds")
    p.add_argument("--stages", action="store_true", help="time stem, tower, transformer, heads")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--malloc-env",
        action="store_true",
        help="also run a second time with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=huge",
    )
    return p.parse_args(argv)


def build_models(args):
    from enformer_pytorch import Enformer as EP

    from enformer import Enformer

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = str(Path(tmp) / "random")
            make_random_hf_dir(Path(weights), args.seed, args.channels, args.depth)
        ours = Enformer.from_pretrained(weights).eval()
        # Its precomputed TF gamma features exist only for the official width and length.
        tf_gamma = args.length == 196_608 and ours.config.channels == 1536
        theirs = EP.from_pretrained(weights, use_tf_gamma=tf_gamma).eval()
    return ours, theirs


def run_rounds(args, ours, theirs, x) -> tuple[dict, dict, list[float]]:
    """Interleaved rounds (the first is warm-up): times[load][impl] = list of per-part seconds."""
    if args.stages:
        fns = {"ours": stages_ours(ours), "enformer_pytorch": stages_theirs(theirs)}
    else:
        fns = {"ours": lambda v: ours(v)["human"], "enformer_pytorch": lambda v: theirs(v)["human"]}
    loads = [0, args.load] if args.quiet_too and args.load else [args.load]
    times = {n: {k: [] for k in fns} for n in loads}
    peaks = {k: [] for k in fns}
    outs = {}
    rates = [matmul_rate()]  # measured again after every round; the best one is used
    for rep in range(args.reps + 1):
        for n in loads if rep % 2 == 0 else loads[::-1]:
            with competing_load(n, args.load_seconds):
                for name in list(fns) if (rep + n) % 2 else list(fns)[::-1]:
                    y, parts, growth = timed_call(fns[name], x, args.stages)
                    outs[name] = y
                    if rep:
                        times[n][name].append(parts)
                        peaks[name].append(growth)
                    print(
                        f"  rep {rep} load {n} {name:>16}: {sum(parts):6.2f} s "
                        f"({' '.join(f'{t:.2f}' for t in parts)}), peak +{growth / 1e9:.2f} GB",
                        file=sys.stderr,
                    )
                    del y
        rates.append(matmul_rate(reps=3))
    diff = (outs["ours"] - outs["enformer_pytorch"]).abs()
    stats = {
        "ours_peak_gb": max(peaks["ours"]) / 1e9,
        "enformer_pytorch_peak_gb": max(peaks["enformer_pytorch"]) / 1e9,
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / outs["enformer_pytorch"].abs().clamp_min(1e-2)).max()),
    }
    return times, stats, rates


def summarize(times: dict, stage_names: list[str] | None) -> dict:
    """Medians, spread and the median of paired ratios for one load level."""
    ours = np.array(times["ours"])  # (reps, parts)
    theirs = np.array(times["enformer_pytorch"])
    ours_tot, theirs_tot = ours.sum(1), theirs.sum(1)
    out = {
        "ours_s": float(np.median(ours_tot)),
        "enformer_pytorch_s": float(np.median(theirs_tot)),
        "ours_all_s": [round(float(t), 3) for t in ours_tot],
        "enformer_pytorch_all_s": [round(float(t), 3) for t in theirs_tot],
        "paired_speedups": [round(float(r), 3) for r in theirs_tot / ours_tot],
    }
    out["speedup"] = out["enformer_pytorch_s"] / out["ours_s"]
    out["median_paired_speedup"] = float(np.median(theirs_tot / ours_tot))
    if stage_names:
        out["stages"] = {
            s: {
                "ours_s": float(np.median(ours[:, i])),
                "enformer_pytorch_s": float(np.median(theirs[:, i])),
            }
            for i, s in enumerate(stage_names)
        }
    return out


def report(args, result: dict) -> None:
    print(
        f"input {args.length:,} bp, fp32, batch 1, {args.threads} threads, "
        f"channels {result['channels']}"
        f"{' (MALLOC_MMAP_MAX_=0)' if result['malloc_env'] else ''}"
    )
    for n, r in result["by_load"].items():
        print(f" competing busy processes: {n}")
        print(f"  ours              {r['ours_s']:7.2f} s/seq  (all {r['ours_all_s']})")
        print(
            f"  enformer-pytorch  {r['enformer_pytorch_s']:7.2f} s/seq  "
            f"(all {r['enformer_pytorch_all_s']})"
        )
        print(
            f"  speed-up {r['speedup']:.2f}x (median of paired ratios "
            f"{r['median_paired_speedup']:.2f}x; {r['paired_speedups']})"
        )
        for s, v in r.get("stages", {}).items():
            print(
                f"    {s:<12} ours {v['ours_s']:6.2f} s   enformer-pytorch "
                f"{v['enformer_pytorch_s']:6.2f} s"
            )
    print(
        f"  peak +{result['ours_peak_gb']:.2f} GB vs +{result['enformer_pytorch_peak_gb']:.2f} GB"
        f"   memory ratio {result['peak_ratio']:.2f}"
    )
    print(f"  max |diff| {result['max_abs_diff']:.2e} (rel {result['max_rel_diff']:.2e})")
    q = result["by_load"][min(result["by_load"])]
    print(
        f"  matmul rate {result['matmul_gflops']:.0f} GFLOP/s; nominal forward "
        f"{result['nominal_tflop']:.2f} TFLOP -> ours "
        f"{result['nominal_tflop'] * 1e3 / q['ours_s']:.0f} GFLOP/s = "
        f"{100 * q['ours_fraction_of_matmul']:.0f}% of matmul "
        f"(enformer-pytorch {100 * q['enformer_pytorch_fraction_of_matmul']:.0f}%)"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    ours, theirs = build_models(args)
    rng = np.random.default_rng(args.seed)
    x = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (1, args.length))])
    times, stats, rates = run_rounds(args, ours, theirs, x)
    rate = max(rates)
    flops = nominal_flops(ours.config, args.length)
    names = [s for s, _ in stages_ours(ours)] if args.stages else None
    by_load = {}
    for n, t in times.items():
        r = summarize(t, names)
        r["ours_fraction_of_matmul"] = flops / r["ours_s"] / rate
        r["enformer_pytorch_fraction_of_matmul"] = flops / r["enformer_pytorch_s"] / rate
        by_load[n] = r
    result = {
        "length": args.length,
        "threads": args.threads,
        "channels": ours.config.channels,
        "reps": args.reps,
        "stages": args.stages,
        "malloc_env": bool(os.environ.get("MALLOC_MMAP_MAX_")),
        "by_load": by_load,
        **stats,
        "peak_ratio": stats["ours_peak_gb"] / stats["enformer_pytorch_peak_gb"],
        "matmul_gflops": rate / 1e9,
        "nominal_tflop": flops / 1e12,
        "loadavg_1min_at_end": os.getloadavg()[0],
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(args, result)
    if args.malloc_env and not os.environ.get("MALLOC_MMAP_MAX_"):
        env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="1000000000000")
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        return subprocess.call([c for c in cmd if c != "--malloc-env"], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
