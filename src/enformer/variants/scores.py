"""Variant-effect statistics as pure array functions, and the bins they read.

Every statistic takes the reference and alternative predictions ``ref``, ``alt`` of shape
``(..., bins, tracks)`` (after averaging the reverse-complement/shift copies) and returns
``(..., tracks)``; ``R`` and ``A`` below are those arrays and sums run over the bin axis. The
formulas are in :data:`SCORE_FORMULAS`, which every output's metadata carries.

======== ==================================================================== ======
name     formula                                                              signed
======== ==================================================================== ======
SAD      ``ΣA − ΣR``                                                          yes
SAR      ``Σ[log2(A+1) − log2(R+1)]`` (log, then sum)                         yes
logSED   ``log2(ΣA+1) − log2(ΣR+1)`` (sum, then log); alias ``SADR``          yes
D1       ``Σ|A−R|``                                                           no
D2       ``sqrt(Σ(A−R)²)``                                                    no
SAX      ``(A−R)[b*]``, ``b* = argmax_b |A−R|`` (first on ties)               yes
JS       ``½ Σ[p ln(p/q) + q ln(q/p)]``, ``p = (R+c)/Σ(R+c)``,                no
         ``q = (A+c)/Σ(A+c)``, ``c`` = 25th percentile of R over the bins
REF      ``ΣR``                                                               –
ALT      ``ΣA``                                                               –
======== ==================================================================== ======

Signed statistics change sign when REF and ALT are swapped; unsigned ones do not (JS exactly so
for a fixed pseudocount ``c``: with the default ``c`` taken from R, a swap takes it from the
other allele). All are 0 when ``alt == ref``. Computations run in float64 and return the
inputs' floating dtype (float32 for float32 predictions).

Bins
----
Which bins enter the sums is chosen before scoring (``bins=`` of :func:`compute_scores`): all
bins, the ``w`` bins around the variant's bin, or the TSS bins of each gene (CAGE at the 3 bins
around a TSS is the usual expression read-out). Those bins, the GTF reader and the TSS index
live in :mod:`enformer.data.annotation` (:func:`~enformer.data.annotation.center_bins`,
:class:`~enformer.data.annotation.TSSIndex`), which documents how a TSS maps to a bin through
the window's start plus the crop offset.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "SCORE_ALIASES",
    "SCORE_FORMULAS",
    "SCORE_FUNCTIONS",
    "SIGNED_SCORES",
    "alt_sum",
    "compute_scores",
    "d1",
    "d2",
    "js",
    "log_sed",
    "ref_sum",
    "resolve_stats",
    "sad",
    "sar",
    "sax",
]

logger = logging.getLogger(__name__)

SCORE_FORMULAS: dict[str, str] = {
    "SAD": "SAD = sum_b A - sum_b R",
    "SAR": "SAR = sum_b [log2(A + 1) - log2(R + 1)]",
    "logSED": "logSED = log2(sum_b A + 1) - log2(sum_b R + 1)",
    "SADR": "SADR = logSED = log2(sum_b A + 1) - log2(sum_b R + 1)",
    "D1": "D1 = sum_b |A - R|",
    "D2": "D2 = sqrt(sum_b (A - R)^2)",
    "SAX": "SAX = (A - R)[b*] with b* = argmax_b |A - R| (first bin on ties)",
    "JS": (
        "JS = 1/2 sum_b [p ln(p/q) + q ln(q/p)], p = (R + c) / sum_b (R + c), "
        "q = (A + c) / sum_b (A + c), c = 25th percentile of R over the bins (per track)"
    ),
    "REF": "REF = sum_b R",
    "ALT": "ALT = sum_b A",
}
"""Formula of every statistic, by name. ``R``/``A``: ref/alt predictions ``(bins, tracks)``
averaged over the requested reverse-complement and shift copies; ``sum_b`` sums over the bins
of the scoring window; results are per track."""

SCORE_ALIASES: dict[str, str] = {"SADR": "logSED"}
"""Alternative names of statistics."""

SIGNED_SCORES = frozenset({"SAD", "SAR", "logSED", "SADR", "SAX"})
"""Statistics that change sign when REF and ALT are swapped."""


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------


def _pair(ref: Any, alt: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    r, a = np.asarray(ref), np.asarray(alt)
    if r.shape != a.shape:
        raise ValueError(f"ref and alt must have the same shape, got {r.shape} and {a.shape}")
    if r.ndim < 2:
        raise ValueError(f"predictions must have shape (..., bins, tracks), got {r.shape}")
    dtype = np.result_type(r.dtype, a.dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    return r.astype(np.float64, copy=False), a.astype(np.float64, copy=False), dtype


_ARRAYS_DOC = """

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """


def _statistic(
    kernel: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Make a statistic from its formula.

    ``kernel`` gets float64 ``(ref, alt)`` checked by :func:`_pair`; its result is cast back to
    the inputs' dtype, and its docstring gains the parameters every statistic shares.
    """

    @functools.wraps(kernel)
    def statistic(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
        r, a, dtype = _pair(ref, alt)
        return kernel(r, a).astype(dtype)

    statistic.__doc__ = (kernel.__doc__ or "").rstrip() + _ARRAYS_DOC
    return statistic


@_statistic
def sad(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAD, the sum of alt minus the sum of ref: ``ΣA − ΣR``."""
    return alt.sum(axis=-2) - ref.sum(axis=-2)


@_statistic
def sar(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAR, the summed log ratio: ``Σ[log2(A+1) − log2(R+1)]`` (log, then sum; ``A, R >= 0``)."""
    return (np.log2(alt + 1) - np.log2(ref + 1)).sum(axis=-2)


@_statistic
def log_sed(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """LogSED (alias SADR), the log ratio of sums: ``log2(ΣA+1) − log2(ΣR+1)`` (A, R >= 0)."""
    return np.log2(alt.sum(axis=-2) + 1) - np.log2(ref.sum(axis=-2) + 1)


@_statistic
def d1(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """D1, the L1 distance: ``Σ|A−R|``."""
    return np.abs(alt - ref).sum(axis=-2)


@_statistic
def d2(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """D2, the L2 distance: ``sqrt(Σ(A−R)²)``."""
    return np.sqrt(np.square(alt - ref).sum(axis=-2))


@_statistic
def sax(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAX, the signed difference at the bin of largest change: ``(A−R)[argmax_b |A−R|]``.

    On ties the first such bin counts.
    """
    diff = alt - ref
    b = np.argmax(np.abs(diff), axis=-2)  # (..., tracks)
    return np.take_along_axis(diff, b[..., None, :], axis=-2)[..., 0, :]


def js(
    ref: np.ndarray, alt: np.ndarray, pseudocount: float | np.ndarray | None = None
) -> np.ndarray:
    """JS, the symmetric Kullback-Leibler divergence of the two bin profiles.

    ``JS = ½ Σ[p ln(p/q) + q ln(q/p)] = ½ Σ (p − q)(ln p − ln q)`` with
    ``p = (R+c)/Σ(R+c)`` and ``q = (A+c)/Σ(A+c)`` normalised over the bins of each track.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``, non-negative.
    pseudocount : float or numpy.ndarray, optional
        ``c``, broadcastable to ``(..., 1, tracks)``. Default: the 25th percentile of ``ref``
        over the bins, per track (basenji's choice).

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``, >= 0; 0 when the profiles are equal. Terms with ``p = q = 0`` count
        0.
    """
    r, a, dtype = _pair(ref, alt)
    if pseudocount is None:
        c = np.percentile(r, 25, axis=-2, keepdims=True)
    else:
        c = np.asarray(pseudocount, dtype=np.float64)
        if c.ndim >= 1 and c.shape[-1:] == r.shape[-1:] and c.ndim < r.ndim:
            c = np.expand_dims(c, axis=-2)
    p = r + c
    q = a + c
    with np.errstate(divide="ignore", invalid="ignore"):
        p = p / p.sum(axis=-2, keepdims=True)
        q = q / q.sum(axis=-2, keepdims=True)
        terms = (p - q) * (np.log(p) - np.log(q))
    terms = np.where(p == q, 0.0, terms)
    return (0.5 * terms.sum(axis=-2)).astype(dtype)


@_statistic
def ref_sum(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """REF, the summed reference prediction: ``ΣR`` (``alt`` only sets the shape check)."""
    return ref.sum(axis=-2)


@_statistic
def alt_sum(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """ALT, the summed alternative prediction: ``ΣA`` (``ref`` only sets the shape check)."""
    return alt.sum(axis=-2)


SCORE_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "SAD": sad,
    "SAR": sar,
    "logSED": log_sed,
    "SADR": log_sed,
    "D1": d1,
    "D2": d2,
    "SAX": sax,
    "JS": js,
    "REF": ref_sum,
    "ALT": alt_sum,
}
"""The function of every statistic, by name (see :data:`SCORE_FORMULAS`)."""

_BY_LOWER = {name.lower(): name for name in SCORE_FUNCTIONS}


def resolve_stats(stats: str | Iterable[str]) -> list[str]:
    """Normalise statistic names (case-insensitive; comma-separated text accepted).

    Parameters
    ----------
    stats : str or iterable of str
        E.g. ``'SAD,logSED'`` or ``['sad', 'D2']``.

    Returns
    -------
    list of str
        Canonical spellings (``'SADR'`` stays ``'SADR'``), each once, in the given order.

    Raises
    ------
    ValueError
        If a name is unknown (the message lists the known ones) or none is given.
    """
    items = stats.split(",") if isinstance(stats, str) else list(stats)
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        canonical = _BY_LOWER.get(name.lower())
        if canonical is None:
            raise ValueError(
                f"unknown variant statistic {name!r}; choose from {', '.join(SCORE_FUNCTIONS)}"
            )
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ValueError("no variant statistic given; e.g. 'SAD'")
    return out


def compute_scores(
    ref: np.ndarray,
    alt: np.ndarray,
    stats: Sequence[str] = ("SAD",),
    *,
    bins: np.ndarray | Sequence[int] | slice | None = None,
) -> dict[str, np.ndarray]:
    """Compute several statistics over the chosen bins.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.
    stats : sequence of str, optional
        Statistic names (see :func:`resolve_stats`).
    bins : array, sequence of int, slice or None, optional
        Bins entering the sums: integer indices, a boolean mask over the bin axis, a slice,
        or ``None`` for all bins.

    Returns
    -------
    dict of str to numpy.ndarray
        ``(..., tracks)`` per statistic, in the order asked.

    Raises
    ------
    ValueError
        For unknown statistics, mismatched shapes or an empty bin selection.
    """
    names = resolve_stats(stats)
    r, a = np.asarray(ref), np.asarray(alt)
    if bins is not None:
        index = bins if isinstance(bins, slice) else np.asarray(bins)
        if not isinstance(index, slice):
            index = np.flatnonzero(index) if index.dtype == np.bool_ else index.astype(np.int64)
        r, a = r[..., index, :], a[..., index, :]
        if r.shape[-2] == 0:
            raise ValueError("the bin selection is empty")
    return {name: SCORE_FUNCTIONS[name](r, a) for name in names}
