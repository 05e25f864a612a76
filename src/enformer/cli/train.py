"""``enformer train CONFIG.yaml [key=value ...]``: train a model as a YAML file describes."""

from __future__ import annotations

import argparse
from typing import Any

from . import options as opt

HELP = "train a model from a YAML run description (single process or under torchrun)"

DESCRIPTION = """\
Train an Enformer as CONFIG.yaml describes (see enformer.train.config.TrainConfig for every
key), with key=value overrides applied on top, dotted keys for sections:

  enformer train run.yaml steps=20000 optim.lr=2e-4 data.path=data/ model.preset=tiny

The run folder (run_dir) receives config.yaml (the resolved configuration), checkpoint.pt
(written atomically; a rerun with the same run_dir resumes from it exactly), train_log.csv,
eval_log.csv, log.jsonl, best/ (weights of the best validation mean Pearson r) and final/.
Launch with `torchrun --nproc_per_node=N -m enformer train ...` for data-parallel training."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``train``."""
    p = opt.add_command(sub, "train", HELP, DESCRIPTION, raw=True)
    add_run_arguments(p)
    return p


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """CONFIG, overrides and the options shared by ``train`` and ``finetune``."""
    p.add_argument("config", metavar="CONFIG.yaml", help="YAML run description")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="configuration overrides, e.g. steps=1000 optim.lr=1e-4 data.kind=npz (write "
        "them right after CONFIG.yaml, before any --option)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as YAML and exit without training",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        metavar="N",
        help="stop after update N with a checkpoint (resume later by running again)",
    )


def resolve(args: argparse.Namespace, extra: list[str] | None = None) -> Any:
    """The TrainConfig of CONFIG + overrides (+ ``extra`` overrides, applied last)."""
    from ..train.config import load_config

    return load_config(args.config, [*args.overrides, *(extra or [])])


def execute(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or just print) a resolved configuration; the command's summary."""
    from ..train.config import config_to_dict, dump_config
    from ..train.run import run_training

    if args.print_config:
        return {"config": config_to_dict(config), "_text": dump_config(config).rstrip()}
    summary = run_training(config, stop_at_step=args.stop_at_step)
    if summary.get("rank", 0) == 0:
        summary["_text"] = _text(summary)
    else:  # rank 0 reports for the run
        summary["_text"] = f"rank {summary['rank']}/{summary['world_size']} done"
    return summary


def _text(summary: dict[str, Any]) -> str:
    state = "finished" if summary["finished"] else "stopped (resume by running again)"
    lines = [f"{state} at update {summary['steps']} (epoch {summary['epochs']}) in "
             f"{summary['run_dir']}"]  # fmt: skip
    if summary.get("resumed_from") is not None:
        lines.append(f"resumed from update {summary['resumed_from']}")
    if summary.get("last_train_loss") is not None:
        lines.append(f"last training loss {summary['last_train_loss']:.5f}")
    last = summary.get("last_eval")
    if last:
        lines.append(f"validation: loss {last['loss']:.5f}, mean Pearson r {last['mean_r']:.4f}")
        for assay, value in last.get("by_assay", {}).items():
            lines.append(f"  {assay:<10} r {value:.4f}")
    if summary.get("best_valid_mean_r") is not None:
        lines.append(
            f"best validation mean r {summary['best_valid_mean_r']:.4f} at update "
            f"{summary['best_step']}" + (" (stopped early)" if summary["stopped_early"] else "")
        )
    lines.append("wrote: " + ", ".join(summary["files"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the configuration and train; return the run summary."""
    return execute(resolve(args), args)
