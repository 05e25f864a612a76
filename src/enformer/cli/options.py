"""Options that several commands share, each defined once."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

# The values of Enformer.set_attention_implementation (kept here so that building the
# parser does not import the model).
ATTENTION_CHOICES = ("auto", "fused", "blocked")


def add_attention_option(p: argparse.ArgumentParser) -> None:
    """Add ``--attention {auto,fused,blocked}``."""
    p.add_argument(
        "--attention",
        choices=ATTENTION_CHOICES,
        default="auto",
        help="attention kernels: fused (scaled_dot_product_attention), blocked (explicit "
        "softmax in query blocks) or auto = fused on CUDA, blocked elsewhere; the same "
        "numbers up to float rounding (default auto)",
    )


def apply_attention_option(model, args: argparse.Namespace) -> None:
    """Set the model's attention implementation from ``--attention``."""
    model.set_attention_implementation(args.attention)
    log.debug("attention implementation: %s", args.attention)
