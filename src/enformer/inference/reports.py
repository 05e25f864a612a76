"""What ``enformer info`` and ``enformer predict`` report, as JSON-ready dicts and as text.

:func:`model_summary` gives a model's configuration, parameter counts, heads and output
geometry, and :func:`render_model_summary` writes it (with any listed tracks and notes) as
aligned text; :func:`predict_summary` and :func:`render_predict_summary` do the same for the
files a prediction run wrote.
"""

from __future__ import annotations

from typing import Any

from ..model import Enformer, EnformerConfig
from ..model.geometry import output_geometry

__all__ = [
    "geometry_summary",
    "model_summary",
    "parameter_counts",
    "predict_summary",
    "render_model_summary",
    "render_predict_summary",
    "track_entry",
]


def model_summary(model: Enformer, source: str) -> dict[str, Any]:
    """``model`` (loaded from ``source``) described: configuration, sizes, heads, geometry."""
    cfg = model.config
    return {
        "model": source,
        "description": cfg.description or None,
        "parameters": parameter_counts(model),
        "heads": dict(cfg.heads),
        "geometry": geometry_summary(cfg),
        "config": cfg.to_dict(),
    }


def parameter_counts(model: Enformer) -> dict[str, int]:
    """Parameters in all, in the trunk, and per head (``head_{name}``)."""
    heads = {f"head_{name}": sum(p.numel() for p in head.parameters())
             for name, head in model.heads.items()}  # fmt: skip
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "trunk": total - sum(heads.values()), **heads}


def geometry_summary(cfg: EnformerConfig) -> dict[str, Any]:
    """The output geometry of ``cfg`` in bp and bins (see :mod:`enformer.model.geometry`)."""
    geo = output_geometry(cfg)
    return {
        "input_bp": geo.input_length,
        "bin_size_bp": geo.bin_size,
        "bins_before_crop": geo.input_length // geo.bin_size,
        "output_bins": geo.n_bins,
        "output_bp": geo.output_span,
        "first_output_base": geo.offset,
    }


def track_entry(track) -> dict[str, Any]:
    """One track of a sheet as a JSON-ready dict."""
    return {k: getattr(track, k) for k in ("index", "identifier", "assay", "strand", "description")}


def _architecture_line(cfg: dict[str, Any]) -> str:
    """Width and transformer of an Enformer or a Borzoi/Flashzoi configuration."""
    if cfg.get("family") == "borzoi":
        attention = "rotary" if cfg["attention"] == "rotary" else "relative-position"
        return (f"family       Borzoi (U-Net, {cfg['transformer_repeat']} {attention} attention "
                f"layers, {cfg['attention_heads']} heads)")  # fmt: skip
    return (f"channels     {cfg['channels']}, {cfg['num_transformer_layers']} transformer layers, "
            f"{cfg['num_heads']} heads")  # fmt: skip


def render_model_summary(s: dict[str, Any]) -> str:
    """The text of ``enformer info``: a :func:`model_summary`, plus ``tracks``/``notes`` if any."""
    cfg = s["config"]
    g = s["geometry"]
    lines = [
        f"model        {s['model']}",
    ]
    if s.get("description"):
        lines.append(f"description  {s['description']}")
    lines += [
        f"parameters   {s['parameters']['total']:,} (trunk {s['parameters']['trunk']:,})",
        _architecture_line(cfg),
        f"input        {g['input_bp']:,} bp -> {g['bins_before_crop']} bins of "
        f"{g['bin_size_bp']} bp",
        f"output       {g['output_bins']} bins = {g['output_bp']:,} bp, starting at input base "
        f"{g['first_output_base']:,}",
        "heads        " + ", ".join(f"{k} ({v:,} tracks)" for k, v in s["heads"].items()),
    ]
    for head, entry in s.get("tracks", {}).items():
        assays = ", ".join(f"{k} {v}" for k, v in entry["assays"].items())
        lines.append(f"tracks[{head}] {entry['sheet']}: {assays}")
        if "tracks" in entry:
            lines.append(f"  {entry['matches']} match(es)")
            for t in entry["tracks"]:
                lines.append(
                    f"  {t['index']:>5}  {t['identifier']:<14} {t['assay']:<6} {t['strand']}  "
                    f"{t['description']}"
                )
            if entry["matches"] > len(entry["tracks"]):
                lines.append(f"  ... {entry['matches'] - len(entry['tracks'])} more (--limit)")
    for note in s.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def predict_summary(result, fmt: str, head: str, description: str | None) -> dict[str, Any]:
    """The JSON-ready summary of a ``predict_to_files`` result (``fmt`` files of ``head``)."""
    summary: dict[str, Any] = {
        "out": result.out_dir, "format": fmt, "head": head,
        "files": [f.to_dict() for f in result.files], "settings": result.settings_path,
        "units": result.units, "computed": result.computed, "reused": result.reused,
        "mostly_n_windows": result.mostly_n,
        "model_description": description or None,
    }  # fmt: skip
    if result.mostly_n:
        summary["warnings"] = [
            f"{result.mostly_n} of {result.computed} predicted window(s) are more than half N: "
            "their predictions reflect little or no DNA sequence (an assembly gap?)"
        ]
    if result.world_size > 1:
        summary.update(rank=result.rank, world_size=result.world_size)
    return summary


def render_predict_summary(s: dict[str, Any], rank: int) -> str:
    """The text of ``enformer predict``: files written (rank 0), or this rank's share."""
    if rank != 0:
        return f"rank {rank}: predicted {s['computed']} unit(s); rank 0 writes the files"
    lines = [
        f"wrote {len(s['files'])} file(s) to {s['out']} ({s['units']} unit(s): "
        f"{s['computed']} predicted, {s['reused']} reused from an interrupted run)"
    ]
    for f in s["files"]:
        if f["format"] == "bigwig":
            ident = f" {f['track_identifier']}" if f.get("track_identifier") else ""
            lines.append(f"  {f['path']}  [{f['head']} track {f['track_index']}{ident}]")
        else:
            n = sum(len(v) for v in f.get("tracks", {}).values())
            lines.append(f"  {f['path']}  [{n} track(s), {len(f.get('regions', []))} region(s)]")
    lines.extend(f"warning: {w}" for w in s.get("warnings", []))
    lines.append(f"settings: {s['settings']}")
    if s.get("model_description"):
        lines.append(f"model: {s['model_description']}")
    return "\n".join(lines)
