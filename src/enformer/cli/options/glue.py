"""Glue from parsed options to the library: options, model, selection, settings, reports."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .common import apply_attention_option, check_positive, parse_shifts

log = logging.getLogger(__name__)


def predict_options(args: argparse.Namespace, **overrides: Any):
    """The prediction options of ``args`` (those it has) as one ``PredictOptions``."""
    from ...inference.options import PredictOptions

    fields = {
        "head": getattr(args, "head", None),
        "tracks": getattr(args, "tracks", None),
        "targets": getattr(args, "targets", None),
        "rc": getattr(args, "rc", False),
        "shifts": parse_shifts(getattr(args, "shifts", "0")),
        "batch_size": getattr(args, "batch_size", None),
        "device": getattr(args, "device", None),
        "dtype": getattr(args, "dtype", None),
        "attention": getattr(args, "attention", "auto"),
    }
    fields.update(overrides)
    check_positive(batch_size=fields["batch_size"])
    return PredictOptions(**fields)


def load_model(args: argparse.Namespace):
    """Load ``--weights`` (with ``--attention``); log its description; return the model."""
    from ...weights import load_pretrained

    model = load_pretrained(args.weights, progress=not args.quiet)
    apply_attention_option(model, args)
    if model.config.description:
        log.info("model: %s", model.config.description)
    return model


def select_from_args(args: argparse.Namespace, config, spec: str | None = None):
    """``--head``, ``--tracks`` (or ``spec``) and ``--targets`` as a ``TrackSelection``."""
    from ...inference.selection import select_for_weights

    return select_for_weights(
        args.weights,
        config,
        spec if spec is not None else args.tracks,
        head=args.head,
        targets=args.targets,
        download=not getattr(args, "no_download", False),
    )


def write_settings(out: Path, name: str, settings: dict, files: list[dict]) -> Path:
    """Write ``{"settings": ..., "files": ...}`` as JSON beside the outputs, atomically."""
    from ...io.jobs import write_json_atomic

    path = Path(out) / name
    write_json_atomic(path, {"settings": settings, "files": files})
    return path


def finish_summary(summary: dict[str, Any], warnings: list[str], render) -> dict[str, Any]:
    """Add the warnings (if any) and the text rendering (``render(summary)``) to a summary."""
    if warnings:
        summary["warnings"] = warnings
    summary["_text"] = render(summary)
    return summary


def render_files(summary: dict[str, Any]) -> list[str]:
    """The closing lines of a summary: files written, warnings, settings file."""
    lines = [f"wrote {len(summary['files'])} file(s) to {summary['out']}:"]
    lines += [f"  {f['path']}" for f in summary["files"]]
    lines.extend(f"warning: {w}" for w in summary.get("warnings", []))
    lines.append(f"settings: {summary['settings']}")
    return lines
