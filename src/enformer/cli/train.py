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
    opt.add_run_arguments(p)
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the configuration and train; return the run summary."""
    return opt.execute_run(opt.resolve_run_config(args), args)
