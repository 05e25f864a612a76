"""Train a small Enformer and a same-size conv-only model on real Basenji data, then compare.

Data: ``../shared/data/basenji_tiny_hg38`` — 65 real hg38 windows of 131,072 bp (45 train,
10 valid, 10 test) with 74 real CAGE / DNase / RNA / RNA3 tracks over the central 65,536 bp.
The 32-bp Basenji targets are pooled 4:1 into 128-bp bins (``TFRecordDataset(pool=4)``: sums
for ``sum``/``sum_sqrt`` tracks, means for ``mean`` tracks), so each example has 512 target
bins; the models see the whole 131,072-bp record (1,024 bins) and crop to the central 512.

Two models, trained the same way (package API: ``build_data`` + ``fit`` + ``evaluate``):

* ``enformer`` — stem + 6-block conv tower (bin 128 bp) + ``--layers`` transformer blocks
  (relative-position multi-head attention + MLP) + final pointwise block + 74-track head;
* ``conv`` — the same stem, tower, widths, final block and head with
  ``num_transformer_layers=0``. By default (``--conv-extra local``) each removed transformer
  block is replaced by the same block with its attention branch swapped for a *local*
  convolution branch (BatchNorm -> GELU -> Conv1d(C, C, k), same dropout, residual), keeping
  its MLP branch; ``k`` is the odd width whose C*C*k weights come closest to the attention
  branch's parameters, so the two models have roughly the same size while the conv model's
  receptive field grows by only (k-1)/2 bins per block. ``--conv-extra none`` gives the bare
  conv-only trunk (fewer parameters).

Identical for both: seed, data order, augmentation (random shift of -3..3 bp and reverse
complement with the targets reversed and CAGE/RNA strand pairs swapped), Poisson loss, Adam
with linear warm-up then cosine decay, global-norm clipping (0.2, the paper's), batch size,
number of updates, validation every epoch, and the **best-on-validation** weights are the ones
tested (optionally with early stopping).

Metric (DESIGN.md §3): for each track, Pearson r between prediction and target over **all
128-bp bins of all 10 test sequences pooled** (512 × 10 = 5,120 values per track, raw values,
no log), then the mean over tracks; per assay = mean over that assay's tracks (assay = the
prefix of the ``targets.txt`` description: CAGE 24, DNASE 10, RNA 30, RNA3 10 tracks).

Examples::

    # the reported run (benchmarks/results/train_basenji_tiny.md; ~27 min on 1 thread)
    python benchmarks/train_basenji_tiny.py --seed 0 \
        --out benchmarks/results/train_basenji_tiny.json
    # the two models as two parallel processes, one thread each (same numbers)
    python benchmarks/train_basenji_tiny.py --seed 0 --jobs 2
    # a smoke run (a minute or two)
    python benchmarks/train_basenji_tiny.py --quick
    # one model only
    python benchmarks/train_basenji_tiny.py --model conv --steps 90

Every process runs on ONE torch thread (``--threads``), as this benchmark is meant to be run
on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "basenji_tiny_hg38").resolve()
ASSAYS = ("CAGE", "DNASE", "RNA", "RNA3")
MODELS = ("enformer", "conv")

log = logging.getLogger("train_basenji_tiny")


# ============================================================================ arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=str(DEFAULT_DATA), help="basenji_tiny_hg38 folder")
    p.add_argument("--seed", type=int, default=0, help="seed of init, data order, augmentation")
    p.add_argument("--model", choices=("both", *MODELS), default="both")
    p.add_argument(
        "--jobs",
        type=int,
        choices=(1, 2),
        default=1,
        help="with --model both: 2 runs the two models as two parallel processes",
    )
    # size
    p.add_argument("--channels", type=int, default=96, help="width C (stem C/2, embedding 2C)")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks of the Enformer")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--key-size", type=int, default=16, help="query/key size per head")
    p.add_argument(
        "--conv-extra",
        choices=("local", "none"),
        default="local",
        help="what the conv model gets in place of each transformer block (see the docstring)",
    )
    p.add_argument(
        "--conv-kernel",
        type=int,
        default=None,
        help="width of the local conv replacing attention (default: parameter-matched)",
    )
    # schedule
    p.add_argument("--steps", type=int, default=None, help="optimiser updates (overrides --epochs)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the 45 training windows")
    p.add_argument("--batch-size", type=int, default=5, help="sequences per update")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (Adam)")
    p.add_argument(
        "--warmup", type=float, default=0.1, help="warm-up: fraction of the updates (<1) or count"
    )
    p.add_argument(
        "--schedule", choices=("cosine", "constant"), default="cosine", help="after warm-up"
    )
    p.add_argument("--min-lr-ratio", type=float, default=0.1, help="floor of the cosine decay")
    p.add_argument("--clip-norm", type=float, default=0.2, help="global-norm clip (0: none)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=None, help="updates (default: one epoch)")
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping after this many evaluations without improvement (default: off; "
        "the best-on-valid weights are tested either way)",
    )
    # plumbing
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--run-dir", default=None, help="keep run folders here (default: temporary)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, a few updates")
    p.add_argument("--quiet", action="store_true", help="log only warnings")
    p.add_argument(
        "--report-from",
        default=None,
        metavar="JSON",
        help="print the report of a saved --out file and exit (no training)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.channels = min(args.channels, 32)
        args.layers = min(args.layers, 1)
        args.heads = 2
        args.key_size = 8
        args.batch_size = 3
        if args.steps is None:
            args.steps = 4
        args.eval_every = args.eval_every or 2
    return args


# ============================================================================== models


def model_config(args: argparse.Namespace, n_tracks: int, *, attention: bool):
    """The EnformerConfig of either model (the conv model has num_transformer_layers=0)."""
    from enformer.model import EnformerConfig
    from enformer.model.config import exponential_linspace_int

    c = args.channels
    if c % 2 or c % args.heads:
        raise SystemExit(f"--channels {c} must be even and divisible by --heads {args.heads}")
    num_pooling = 7  # 128-bp bins
    tower = tuple(exponential_linspace_int(c // 2, c, num_pooling - 1, divisible_by=8))
    tower = tower[:-1] + (c,)  # the last block must have C filters
    rel = 6 * max(1, round(c / args.heads / 6))
    return EnformerConfig.preset(
        "official",
        channels=c,
        num_transformer_layers=args.layers if attention else 0,
        num_heads=args.heads,
        key_size=args.key_size,
        num_relative_position_features=rel,
        num_pooling=num_pooling,
        tower_filters=tower,
        target_length=512,
        sequence_length=131_072,
        heads={"human": n_tracks},
        description=(
            "basenji_tiny benchmark: small Enformer"
            if attention
            else f"basenji_tiny benchmark: conv-only (extra={args.conv_extra})"
        ),
    )


def attention_branch_parameters(cfg) -> int:
    """Parameters of one transformer block's attention branch (LayerNorm + MHA)."""
    from enformer.model.enformer import MHABlock

    return sum(p.numel() for p in MHABlock(cfg).parameters())


def make_local_block_class():
    import torch
    from torch import nn

    from enformer.model.enformer import MLPBlock
    from enformer.model.layers import ConvBlock

    class LocalConvBlock(nn.Module):
        """A transformer block whose attention branch is a local convolution.

        ``x + Dropout(Conv1d_k(GELU(BN(x))))``, then ``x + MLP(x)`` with the package's
        :class:`~enformer.model.enformer.MLPBlock`. Accepts ``rows`` like a transformer block
        (the crop the trunk asks its last block for).
        """

        def __init__(self, cfg, kernel: int) -> None:
            super().__init__()
            self.conv = ConvBlock(
                cfg.channels,
                cfg.channels,
                kernel,
                eps=cfg.batch_norm_eps,
                momentum=cfg.batch_norm_momentum,
            )
            self.dropout = nn.Dropout(cfg.dropout_rate)
            self.mlp = MLPBlock(cfg)

        def forward(self, x: torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
            x = x + self.dropout(self.conv(x.transpose(1, 2)).transpose(1, 2))
            if rows is not None:
                x = x[:, rows[0] : rows[1]]
            return x + self.mlp(x)

    return LocalConvBlock


def build_models(args: argparse.Namespace, n_tracks: int, which: str):
    """Build one model, seeded by ``--seed``; returns (model, info dict)."""
    from torch import nn

    from enformer.model import Enformer
    from enformer.train.checkpoint import seed_everything

    attn_cfg = model_config(args, n_tracks, attention=True)
    seed_everything(args.seed)
    if which == "enformer":
        model = Enformer(attn_cfg)
        info: dict[str, Any] = {"transformer_layers": args.layers}
    else:
        cfg = model_config(args, n_tracks, attention=False)
        model = Enformer(cfg)
        info = {"transformer_layers": 0, "conv_extra": args.conv_extra}
        if args.conv_extra == "local" and args.layers > 0:
            c = cfg.channels
            kernel = args.conv_kernel
            if kernel is None:
                target = attention_branch_parameters(attn_cfg)
                # ConvBlock(C, C, k): BN 2C + weights C*C*k + bias C
                kernel = max(1, round((target - 3 * c) / (c * c)))
                if kernel % 2 == 0:  # odd widths keep "same" padding symmetric
                    lo, hi = kernel - 1, kernel + 1
                    cost = lambda k: abs(c * c * k + 3 * c - target)  # noqa: E731
                    kernel = lo if cost(lo) <= cost(hi) else hi
            block = make_local_block_class()
            model.trunk.transformer = nn.ModuleList(block(cfg, kernel) for _ in range(args.layers))
            info.update(local_blocks=args.layers, local_kernel=kernel)
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["config"] = model.config.to_dict()
    return model, info


# ============================================================================== one run


def train_config(args: argparse.Namespace, run_dir: Path, steps: int, eval_every: int):
    from enformer.train import DataConfig, ModelSpec, OptimConfig, TrainConfig

    warmup = int(round(args.warmup * steps)) if args.warmup < 1 else int(args.warmup)
    return TrainConfig(
        run_dir=str(run_dir),
        seed=args.seed,
        steps=steps,
        batch_size=args.batch_size,
        head="human",
        loss="poisson",
        amp=False,
        device="cpu",
        eval_every=eval_every,
        eval_batch_size=2,
        early_stopping_patience=args.patience,
        checkpoint_every=10**9,  # a checkpoint at the end only
        log_every=max(1, eval_every),
        tensorboard=False,
        resume="never",
        model=ModelSpec(preset="official"),
        data=DataConfig(
            kind="tfrecord",
            path=str(args.data),
            pool=4,  # 32-bp -> 128-bp bins
            max_shift=3,
            reverse_complement=True,
            num_workers=0,
        ),
        optim=OptimConfig(
            name="adam",
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=warmup,
            schedule=args.schedule,
            min_lr_ratio=args.min_lr_ratio,
            clip_norm=args.clip_norm or None,
        ),
    )


def run_one(args: argparse.Namespace, which: str, run_root: Path) -> dict[str, Any]:
    """Train one model and evaluate its best-on-valid weights on the test split."""
    import torch

    torch.set_num_threads(args.threads)
    from enformer.train import build_dataset, evaluate, fit, make_eval_loader
    from enformer.train.run import build_data

    t_start = time.perf_counter()
    sheet_probe = Path(args.data) / "targets.txt"
    from enformer.data.tracks import TrackSheet

    n_tracks = len(TrackSheet.read(sheet_probe))
    model, info = build_models(args, n_tracks, which)

    n_train = 45
    steps_per_epoch = n_train // args.batch_size
    steps = args.steps if args.steps is not None else args.epochs * steps_per_epoch
    eval_every = args.eval_every or steps_per_epoch
    run_dir = run_root / which
    config = train_config(args, run_dir, steps, eval_every)
    data = build_data(config, model)  # train (augmented) + valid + track sheet
    if len(data.train) != n_train:
        steps_per_epoch = len(data.train) // args.batch_size

    best: dict[str, Any] = {}
    curve: list[dict[str, Any]] = []
    t_fit = time.perf_counter()

    def on_record(record: dict[str, Any]) -> None:
        if record["kind"] == "eval":
            curve.append(
                {
                    "step": record["step"],
                    "valid_mean_r": record["mean_r"],
                    "valid_loss": record["loss"],
                    "seconds": round(time.perf_counter() - t_fit, 1),
                }
            )
            if record.get("best"):
                best["state"] = copy.deepcopy(model.state_dict())
                best["step"] = record["step"]
            log.info(
                "[%s] step %d valid loss %.4f mean r %.4f%s",
                which,
                record["step"],
                record["loss"],
                record["mean_r"],
                " (best)" if record.get("best") else "",
            )
        elif record["step"] % config.log_every == 0:
            curve.append({"step": record["step"], "train_loss": record["loss"]})

    result = fit(
        model,
        data.train,
        config=config,
        valid_loader=data.valid,
        track_sheet=data.track_sheet,
        track_sheet_path=data.track_sheet_path,
        callbacks=[on_record],
    )
    fit_seconds = time.perf_counter() - t_fit

    test_ds = build_dataset(config.data, config.data.test_split)
    loader = make_eval_loader(test_ds, batch_size=2)

    def test_eval() -> dict[str, Any]:
        res = evaluate(model, loader, head="human", device="cpu", amp=False,
                       track_sheet=data.track_sheet)  # fmt: skip
        return {
            "mean_r": res.mean_r,
            "by_assay": {a: res.by_assay.get(a, math.nan) for a in ASSAYS},
            "mean_r2": res.metrics.mean_r2,
            "loss": res.loss,
            "undefined_tracks": res.metrics.undefined,
            "per_track_r": [float(x) for x in res.metrics.pearson_r],
        }

    final_test = test_eval()
    if "state" in best:
        model.load_state_dict(best["state"])
    best_test = test_eval() if "state" in best else final_test
    total_seconds = time.perf_counter() - t_start
    train_losses = result.losses
    return {
        "model": which,
        **info,
        "steps": result.state.step,
        # fit's state.epoch is the 0-based epoch in progress; count the batches instead
        "epochs_completed": round(
            result.state.epoch + result.state.batch_in_epoch / max(1, steps_per_epoch), 2
        ),
        "steps_per_epoch": steps_per_epoch,
        "stopped_early": result.state.stopped_early,
        "best_valid_mean_r": result.state.best_metric,
        "best_step": result.state.best_step,
        "first_train_loss": train_losses[0] if train_losses else None,
        "last_train_loss": train_losses[-1] if train_losses else None,
        "test": best_test,
        "test_final_weights": final_test,
        "fit_seconds": fit_seconds,
        "total_seconds": total_seconds,
        "seconds_per_update": fit_seconds / max(1, len(train_losses)),
        "curve": curve,
        "train_config": _plain_config(config),
        "threads": args.threads,
    }


def _plain_config(config) -> dict[str, Any]:
    from enformer.train.config import config_to_dict

    return config_to_dict(config)


# ============================================================================== report


def fmt(x: float | None, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace, wall: float) -> str:
    lines = []
    r0 = results[0]
    tc = r0["train_config"]
    lines.append("basenji_tiny_hg38: test-split per-track Pearson r (best-on-valid weights)")
    lines.append(
        "metric: per track, r over all 128-bp bins of all 10 test sequences pooled "
        "(10 x 512 bins), then the mean over tracks (and over each assay's tracks)"
    )
    lines.append("")
    header = (
        "| model | params | mean r | CAGE (24) | DNASE (10) | RNA (30) | RNA3 (10) "
        "| best valid r (step) | updates | train time |"
    )
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))
    for r in results:
        t = r["test"]
        name = "Enformer (attention)" if r["model"] == "enformer" else "conv-only"
        if r["model"] == "enformer":
            name += f", {r['transformer_layers']} transformer layers"
        elif r.get("local_blocks"):
            name += f", {r['local_blocks']} local conv(k={r['local_kernel']})+MLP blocks"
        else:
            name += ", no extra blocks"
        lines.append(
            f"| {name} | {r['parameters']:,} | {fmt(t['mean_r'])} | "
            + " | ".join(fmt(t["by_assay"][a]) for a in ASSAYS)
            + f" | {fmt(r['best_valid_mean_r'])} ({r['best_step']}) | {r['steps']} | "
            f"{r['fit_seconds'] / 60:.1f} min |"
        )
    lines.append("")
    lines.append("same metric with the final (last-update) weights instead of best-on-valid:")
    for r in results:
        t = r["test_final_weights"]
        lines.append(
            f"  {r['model']:8s} mean r {fmt(t['mean_r'])}  "
            + "  ".join(f"{a} {fmt(t['by_assay'][a])}" for a in ASSAYS)
        )
    lines.append("")
    for r in results:
        epochs = r["steps"] / r["steps_per_epoch"]
        t = r["test"]
        lines.append(
            f"{r['model']}: {r['steps']} updates ({epochs:.3g} epochs of {r['steps_per_epoch']} "
            f"updates), {r['seconds_per_update']:.2f} s/update incl. validation, training "
            f"{r['fit_seconds']:.0f} s, total incl. data loading and test "
            f"{r['total_seconds']:.0f} s, train loss {fmt(r['first_train_loss'], 4)} -> "
            f"{fmt(r['last_train_loss'], 4)}, test Poisson loss {fmt(t['loss'], 4)}, "
            f"test mean R2 {fmt(t['mean_r2'])}"
        )
    o = tc["optim"]
    lines.append("")
    lines.append(
        f"training (both): seed {tc['seed']}, batch {tc['batch_size']}, Adam lr {o['lr']:g}, "
        f"warm-up {o['warmup_steps']} updates then {o['schedule']}"
        + (f" to {o['min_lr_ratio']:g}x" if o["schedule"] == "cosine" else "")
        + f", clip {o['clip_norm']}, Poisson loss, shift +-{tc['data']['max_shift']} bp + reverse "
        f"complement (strand pairs swapped), 131,072-bp input, targets pooled to 128 bp "
        f"(512 bins), valid every {tc['eval_every']} updates, best-on-valid weights tested"
        + (
            f", early stopping patience {tc['early_stopping_patience']}"
            if tc["early_stopping_patience"]
            else ""
        )  # fmt: skip
    )
    lines.append(
        f"machine: {os.cpu_count()} CPU cores, {args.threads} torch thread(s) per model, "
        f"jobs {args.jobs}; wall clock of the whole benchmark {wall / 60:.1f} min"
    )
    return "\n".join(lines)


# ================================================================================ main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("enformer").setLevel(logging.WARNING)  # our own callback logs progress
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        old = argparse.Namespace(**saved["args"])
        print(report(saved["results"], old, saved["wall_seconds"]))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    which = list(MODELS) if args.model == "both" else [args.model]
    tmp = None
    if args.run_dir:
        run_root = Path(args.run_dir)
    else:
        tmp = tempfile.mkdtemp(prefix="train_basenji_tiny_")
        run_root = Path(tmp)
    try:
        if args.jobs == 2 and len(which) == 2:
            results = run_parallel(args, which, run_root, argv)
        else:
            results = [run_one(args, w, run_root) for w in which]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t0
    text = report(results, args, wall)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
            "args": vars(args),
            "wall_seconds": wall,
            "results": results,
            "report": text,
        }
        out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return 0


def run_parallel(
    args: argparse.Namespace, which: list[str], run_root: Path, argv: list[str] | None
) -> list[dict[str, Any]]:
    """Run each model in its own process (one thread each), then gather their JSON."""
    base = list(sys.argv[1:] if argv is None else argv)
    drop = {"--model", "--jobs", "--out", "--run-dir"}
    cleaned: list[str] = []
    skip = False
    for item in base:
        if skip:
            skip = False
            continue
        key = item.split("=", 1)[0]
        if key in drop:
            skip = "=" not in item
            continue
        cleaned.append(item)
    procs = []
    outs = []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    for w in which:
        out = run_root / f"{w}.json"
        outs.append(out)
        cmd = [sys.executable, __file__, *cleaned, "--model", w, "--jobs", "1",
               "--run-dir", str(run_root / f"{w}_run"), "--out", str(out)]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a model process failed: exit codes {codes}")
    return [json.loads(o.read_text())["results"][0] for o in outs]


if __name__ == "__main__":
    sys.exit(main())
