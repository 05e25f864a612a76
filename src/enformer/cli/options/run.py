"""Options of the training commands (``train``, ``finetune``)."""

from __future__ import annotations

import argparse
from typing import Any


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


def resolve_run_config(args: argparse.Namespace, extra: list[str] | None = None) -> Any:
    """The TrainConfig of CONFIG + overrides (+ ``extra`` overrides, applied last)."""
    from ...train.config import load_config

    return load_config(args.config, [*args.overrides, *(extra or [])])


def execute_run(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or just print) a resolved configuration; the command's summary."""
    from ...train.config import config_to_dict, dump_config
    from ...train.run import describe_run, run_training

    if args.print_config:
        return {"config": config_to_dict(config), "_text": dump_config(config).rstrip()}
    summary = run_training(config, stop_at_step=args.stop_at_step)
    if summary.get("rank", 0) == 0:
        summary["_text"] = describe_run(summary)
    else:  # rank 0 reports for the run
        summary["_text"] = f"rank {summary['rank']}/{summary['world_size']} done"
    return summary
