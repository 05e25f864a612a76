"""``enformer convert SRC OUT``: write any supported weights in this package's format."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import options as opt

HELP = "convert TF / enformer-pytorch / Borzoi / hub weights into this package's checkpoint format"

DESCRIPTION = """\
Convert Enformer weights into a checkpoint directory (model.safetensors + config.json)
that Enformer.from_pretrained(OUT) loads.

SRC may be: a .npz of TF variables ({v.name: v.numpy()} of the TF-Hub model); a TF-Hub
SavedModel directory (needs TensorFlow); an enformer-pytorch / Hugging Face directory
(config.json + pytorch_model.bin or model.safetensors); one of our checkpoints; a single
.safetensors/.bin file with config.json beside it; or a hub name such as
EleutherAI/enformer-official-rough.

Borzoi and Flashzoi: a Calico release folder (params.json + model0_best.h5 /
model1_best.h5), a borzoi-pytorch / Hugging Face folder or hub name
(johahi/borzoi-replicate-0, johahi/flashzoi-replicate-0), or one of our Borzoi
checkpoints; OUT then holds config.json with "family": "borzoi"."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert`` on the top-level subparsers."""
    p = opt.add_command(subparsers, "convert", HELP, DESCRIPTION, raw=True)
    p.add_argument("src", metavar="SRC", help="weights to convert (file, directory or hub name)")
    p.add_argument("out", metavar="OUT", help="output checkpoint directory")
    p.add_argument("--overwrite", action="store_true",
                   help="write into OUT even when it is not empty")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a config field (VALUE is JSON, else a string), "
                   "e.g. --set target_length=896")  # fmt: skip
    return p


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            overrides[field.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[field.strip()] = raw
    return overrides


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Convert ``args.src`` into ``args.out``; return the summary."""
    from ..weights import convert_weights

    return convert_weights(
        args.src,
        args.out,
        config_overrides=_parse_overrides(args.overrides) or None,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
