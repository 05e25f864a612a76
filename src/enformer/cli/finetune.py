"""``enformer finetune CONFIG.yaml [key=value ...]``: adapt a pretrained model."""

from __future__ import annotations

import argparse
from typing import Any

from . import options as opt

HELP = "fine-tune pretrained weights: new heads, frozen trunk / BatchNorm, last-N layers, LoRA"

DESCRIPTION = """\
Fine-tune a pretrained Enformer. CONFIG.yaml is a training run description (as for
`enformer train`) whose `finetune` section, or the options below, say how to adapt the model:

  enformer finetune run.yaml --weights EleutherAI/enformer-official-rough \\
      --heads k562:12 --freeze-trunk --freeze-batchnorm --lora-rank 8 head=k562

The options are shorthands for overrides (--heads X is finetune.heads=[X], ...) and are
applied after CONFIG's own values and the KEY=VALUE overrides. Exported weights (best/,
final/) have the LoRA adapters merged and load like any model."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``finetune``."""
    p = opt.add_command(sub, "finetune", HELP, DESCRIPTION, raw=True)
    opt.add_run_arguments(p)
    g = p.add_argument_group("fine-tuning (shorthands for overrides)")
    g.add_argument("--weights", metavar="DIR|NAME", help="pretrained weights (model.weights)")
    g.add_argument("--heads", nargs="+", metavar="NAME:N",
                   help="new heads, e.g. k562:12; the first is trained unless head= names another")
    g.add_argument("--keep-heads", action="store_true", help="keep the pretrained heads too")
    g.add_argument("--freeze-trunk", action="store_true", help="train heads (and LoRA) only")
    g.add_argument("--freeze-batchnorm", action="store_true",
                   help="keep BatchNorm statistics as loaded")  # fmt: skip
    g.add_argument(
        "--train-last-layers",
        type=int,
        metavar="N",
        help="train only the last N transformer blocks of the trunk",
    )
    g.add_argument("--lora-rank", type=int, metavar="R", help="LoRA rank (0 disables)")
    g.add_argument("--lora-alpha", type=float, metavar="A", help="LoRA scale numerator")
    return p


def _shorthands(args: argparse.Namespace) -> list[str]:
    out = []
    if args.weights:
        out.append(f"model.weights={args.weights}")
    if args.heads:
        out.append("finetune.heads=[" + ", ".join(args.heads) + "]")
    if args.keep_heads:
        out.append("finetune.keep_heads=true")
    if args.freeze_trunk:
        out.append("finetune.freeze_trunk=true")
    if args.freeze_batchnorm:
        out.append("finetune.freeze_batchnorm=true")
    if args.train_last_layers is not None:
        out.append(f"finetune.train_last_layers={args.train_last_layers}")
    if args.lora_rank is not None:
        out.append(f"finetune.lora_rank={args.lora_rank}")
    if args.lora_alpha is not None:
        out.append(f"finetune.lora_alpha={args.lora_alpha}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the configuration with the fine-tuning options and train."""
    import dataclasses

    from ..train.finetune import parse_head_spec
    from ..train.run import finetune_requested

    config = opt.resolve_run_config(args, _shorthands(args))
    new_heads = [parse_head_spec(spec)[0] for spec in config.finetune.heads]
    if new_heads and config.head not in new_heads and not config.finetune.keep_heads:
        # The pretrained heads are dropped: train the first new one.
        config = dataclasses.replace(config, head=new_heads[0])
    if not config.model.weights:
        raise ValueError("fine-tuning needs pretrained weights: --weights or model.weights=...")
    if not finetune_requested(config):
        raise ValueError(
            "no fine-tuning option set (heads, freeze_trunk, freeze_batchnorm, "
            "train_last_layers, lora_rank): use `enformer train` to continue training as is"
        )
    return opt.execute_run(config, args)
