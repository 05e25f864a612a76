"""Calibrated variant scores: quantiles against a background of variants.

A raw score (``logSED = -0.3``) has no sense of scale by itself. A **background** is the same
statistics, for the same model, tracks and scoring window, over variants that are not
expected to matter: variants the user supplies (for example common variants) or random SNVs
drawn around the scored variants, seeded. Against it, a score's **quantile** is the fraction
of background variants whose absolute value is at most the score's (per track), and its
**signed quantile** that fraction with the score's sign: ``0.99`` means only 1 % of the
background has a predicted effect as large. In gene mode each region (``tss``, ``exons``,
``body``) is also kept on its own (``<stat>@<region>``) and a row is compared with its own
region's background, since sums over a few TSS bins and over a gene body differ in scale.

Random SNVs are drawn within half an output span of each scored variant and scored with
``group_span``, so that all the SNVs near one variant share its reference window: the exact
reuse predictor then computes the reference's convolutional stages once per window, and each
background SNV costs little more than the transformer's pass.

:func:`make_background` scores a background and :meth:`Background.save` writes it (``.npz``:
per statistic the ``(variants, tracks)`` values, and what the background was as JSON);
``score_variants(..., background=...)`` / ``enformer score --background FILE`` add
``<stat>_quantile`` and ``<stat>_signed_quantile`` columns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.genome import Genome
from ..io.jobs import write_bytes_atomic

__all__ = ["Background", "draw_random_snvs", "make_background", "quantile_names"]

# Settings that must match to compare.
_SETTINGS = ("stats", "head", "tracks", "window", "shifts", "rc", "untransform")


def quantile_names(stat: str) -> tuple[str, str]:
    """The two columns a background adds for ``stat``."""
    return f"{stat}_quantile", f"{stat}_signed_quantile"


@dataclass
class Background:
    """Background scores: per statistic ``(variants, tracks)`` values and their provenance.

    Attributes
    ----------
    values : dict of str to numpy.ndarray
        float32 ``(n, tracks)`` per statistic.
    metadata : dict
        What the background was (``source``, ``n``, ``seed``, model fingerprint) and the
        scoring settings it was computed with.
    """

    values: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    def quantiles(
        self, stat: str, scores: np.ndarray, regions: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quantile and signed quantile of ``scores`` ``(m, tracks)`` for ``stat``.

        The quantile of ``x`` on track ``t`` is the fraction of background values ``b`` on
        that track (NaN left out) with ``|b| <= |x|``; the signed quantile multiplies it by
        ``sign(x)``. NaN scores give NaN. With ``regions`` (the ``gene_region`` of each row,
        gene mode), a row is compared with the background values of its own region
        (``<stat>@<region>``: TSS, exon and body sums have different scales), when the
        background holds them.
        """
        x = np.asarray(scores, dtype=np.float64)
        q = np.full(x.shape, np.nan)
        keys = np.full(len(x), stat, dtype=object)
        if regions is not None:
            per_region = np.array([f"{stat}@{r}" for r in np.asarray(regions).astype(str)],
                                  dtype=object)  # fmt: skip
            have = np.array([k in self.values for k in per_region], dtype=bool)
            keys[have] = per_region[have]
        for key in set(keys.tolist()):
            rows = keys == key
            q[rows] = self._quantile(self.values[key], x[rows])
        return q.astype(np.float32), (np.sign(x) * q).astype(np.float32)

    @staticmethod
    def _quantile(values: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Fraction of finite ``|values[:, t]|`` at most ``|x[:, t]|``, per track."""
        bg = np.abs(values.astype(np.float64))
        q = np.full(x.shape, np.nan)
        for t in range(x.shape[1]):
            ref = np.sort(bg[:, t][np.isfinite(bg[:, t])])
            ok = np.isfinite(x[:, t])
            if ref.size:
                q[ok, t] = np.searchsorted(ref, np.abs(x[ok, t]), side="right") / ref.size
        return q

    def check_matches(self, plan_metadata: dict[str, Any]) -> None:
        """Refuse a background computed with other settings (naming them) or another model."""
        mine = self.metadata.get("settings", {})
        other = {k: plan_metadata.get(k) for k in _SETTINGS}
        other["stats"] = [s for s in other["stats"] if s in self.values]
        missing = [s for s in plan_metadata["stats"] if s not in self.values]
        if missing:
            raise ValueError(f"the background has no {', '.join(missing)} scores; it holds "
                             f"{', '.join(self.values)} (make one with these --stats)")  # fmt: skip
        differ = [k for k in _SETTINGS if k != "stats" and mine.get(k) != other[k]]
        if differ:
            raise ValueError(f"the background was computed with other {', '.join(differ)} "
                             f"({', '.join(f'{k}={mine.get(k)!r}' for k in differ)}); make it "
                             "with the settings of this run")  # fmt: skip
        model = plan_metadata["model"]["fingerprint"]
        if self.metadata.get("model_fingerprint") != model:
            raise ValueError("the background was computed with other model weights; make it "
                             "again with these weights")  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an ``.npz`` atomically: ``values/<stat>`` arrays and ``metadata`` JSON."""
        import io

        buffer = io.BytesIO()
        arrays = {f"values/{s}": v.astype(np.float32) for s, v in self.values.items()}
        np.savez(buffer, metadata=np.array(json.dumps(self.metadata, default=str)), **arrays)
        path = Path(path)
        write_bytes_atomic(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Background:
        """Read a file written by :meth:`save` (a clear error for anything else)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                values = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("values/")}
                metadata = json.loads(str(f["metadata"]))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path} is not a background file made by enformer score "
                             f"--make-background ({err})") from None  # fmt: skip
        return cls(values, metadata)


def draw_random_snvs(
    variants: Iterable[Any], genome: Genome, per_variant: int, *, distance: int, seed: int = 0
) -> list[str]:
    """``per_variant`` random SNVs within ``distance`` bp of each variant, seeded.

    Positions are drawn uniformly (excluding the variant's own position) among bases A, C, G
    or T of the genome; the ALT is one of the three other bases, uniformly. Returns
    ``chrom:pos:ref>alt`` strings (1-based).
    """
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for v in variants:
        lo, hi = max(v.pos0 - distance, 0), v.pos0 + distance + 1
        context = genome.fetch(v.chrom, lo, hi).upper()
        candidates = [i for i, b in enumerate(context) if b in "ACGT" and lo + i != v.pos0]
        if not candidates:
            continue
        for i in rng.choice(candidates, size=min(per_variant, len(candidates)), replace=False):
            ref = context[i]
            alt = rng.choice([b for b in "ACGT" if b != ref])
            out.append(f"{v.chrom}:{lo + int(i) + 1}:{ref}>{alt}")
    return out


def make_background(
    model: Any,
    variants: str | os.PathLike[str] | Sequence[Any],
    genome: Genome | str | os.PathLike[str],
    *,
    random_snvs: int | None = None,
    seed: int = 0,
    description: str | None = None,
    **score_args: Any,
) -> Background:
    """Score a background: ``variants`` themselves, or ``random_snvs`` random SNVs near each.

    Parameters
    ----------
    model, genome
        As for :func:`~enformer.variants.score.score_variants`.
    variants
        A VCF/TSV path or variants: the background itself (e.g. common variants), or, with
        ``random_snvs``, the variants around which random SNVs are drawn.
    random_snvs
        SNVs drawn within half an output span of each variant (seeded by ``seed``); they share
        the variant's reference window (``group_span``), so exact reuse applies.
    description
        Free text stored with the background.
    **score_args
        Passed to :func:`~enformer.variants.score.score_variants` (``stats``, ``tracks``,
        ``track_sheet``, ``head``, ``center_bins``, ``genes_gtf``, ``predictor``, ...): use the
        settings of the runs the background will calibrate.
    """
    from ..model.geometry import output_geometry
    from .io import iter_records
    from .records import Variant
    from .score import score_variants

    own = not isinstance(genome, Genome)
    genome_obj = Genome(genome) if own else genome
    try:
        source: Any = variants
        label = str(variants) if isinstance(variants, str | os.PathLike) else "<variants>"
        if random_snvs:
            span = output_geometry(model.config).output_span
            centres = [r for r in iter_records(variants) if isinstance(r, Variant)]
            source = draw_random_snvs(centres, genome_obj, int(random_snvs), seed=seed,
                                      distance=span // 4)  # fmt: skip
            score_args.setdefault("group_span", span // 2)
            label = f"{random_snvs} random SNVs within {span // 4} bp of each variant of {label}"
        table = score_variants(model, source, genome_obj, **score_args)
    finally:
        if own:
            genome_obj.close()
    meta = table.attrs["metadata"]
    n_tracks = len(meta["tracks"])
    values = {s: table[s].to_numpy(np.float32).reshape(-1, n_tracks) for s in meta["stats"]}
    regions: list[str] = []
    if "gene_region" in table:  # gene mode: each region also on its own (different scales)
        unit_regions = table["gene_region"].astype(str).to_numpy()[::max(n_tracks, 1)]
        regions = sorted(set(unit_regions.tolist()))
        for s in meta["stats"]:
            for r in regions:
                values[f"{s}@{r}"] = values[s][unit_regions == r]
    return Background(values, {
        "source": label, "n": int(len(table) // max(n_tracks, 1)), "seed": seed,
        "random_snvs": random_snvs, "description": description, "gene_regions": regions,
        "model_fingerprint": meta["model"]["fingerprint"],
        "settings": {k: meta.get(k) for k in _SETTINGS},
    })  # fmt: skip
