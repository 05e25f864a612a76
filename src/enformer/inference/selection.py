"""What to predict: heads, tracks and the track sheet that names them, resolved in one place.

Every entry point (:func:`~enformer.inference.predict`, the writers, ``enformer predict``,
``attribute``, ``ism``, ``info``, ``evaluate``) turns a user's track selection into output
track indices with :func:`select_tracks`, and finds the sheet that names a head's tracks
with :func:`track_sheet_for`.

Selection syntax
----------------
A selection (``spec``) is one of

* ``None``, ``'all'`` or ``'*'``: every track of the head;
* an ``int``, a sequence or integer array of ints, a ``slice``, or a boolean mask of the
  head's length;
* a string of comma-separated terms: ``12``; ``10-20`` (both ends included); and, with a
  track sheet, ``assay:CAGE``, ``search:K562`` (or ``desc:``), ``id:ENCFF833POA``,
  ``strand:+``, an identifier, ``ASSAY:text`` (e.g. ``CAGE:K562``) or free text found in
  descriptions (see :meth:`~enformer.data.tracks.TrackSheet.select`);
* a list mixing ints and such strings.

Indices are output positions (0-based rows of the sheet). The result lists **each track
once, in the order first given** (``'5,1,5'`` is ``[5, 1]``). Names need a sheet; without
one only indices, ranges and ``all`` are understood.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..data.tracks import TrackSheet, TrackSheetNotFound, find_track_sheet, is_index_spec
from ..data.tracks import parse_index_spec
from ..model.config import EnformerConfig

logger = logging.getLogger(__name__)

__all__ = [
    "HeadSelection",
    "TrackSelection",
    "default_head",
    "resolve_heads",
    "resolve_selection",
    "resolve_strand_pairs",
    "resolve_tracks",
    "select_for_weights",
    "select_tracks",
    "track_sheet_for",
]


@dataclass(frozen=True)
class TrackSelection:
    """The tracks of one head chosen by :func:`select_tracks`.

    Attributes
    ----------
    head : str
        The head.
    indices : list of int
        Output track indices, each once, in the order given.
    sheet : TrackSheet or None
        The sheet used to resolve names (``None`` when there was none).
    """

    head: str
    indices: list[int]
    sheet: TrackSheet | None = None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def identifiers(self) -> list[str] | None:
        """The sheet's identifier of every selected track (``None`` without a sheet)."""
        if self.sheet is None:
            return None
        return [self.sheet[i].identifier for i in self.indices]

    @property
    def names(self) -> list[str]:
        """Identifiers with a sheet, else the indices as text."""
        return self.identifiers or [str(i) for i in self.indices]

    @property
    def descriptions(self) -> list[str]:
        """The sheet's description of every selected track (empty texts without a sheet)."""
        if self.sheet is None:
            return [""] * len(self.indices)
        return [self.sheet[i].description for i in self.indices]

    @property
    def strand_pairs(self) -> np.ndarray | None:
        """The head's strand-pair permutation from the sheet (``None`` = identity)."""
        return None if self.sheet is None else self.sheet.strand_pair_permutation()

    @property
    def sheet_path(self) -> str | None:
        """The sheet's file, as text, if it has one."""
        path = None if self.sheet is None else self.sheet.path
        return None if path is None else str(path)


def default_head(config: EnformerConfig) -> str:
    """``'human'`` when the model has it, else its first head."""
    return "human" if "human" in config.heads else next(iter(config.heads))


def _check_head(head: str, config: EnformerConfig) -> str:
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    return head


def resolve_heads(head: str | Sequence[str] | None, config: EnformerConfig) -> list[str]:
    """The heads to predict: ``None`` gives every head of the model, in its order.

    Raises
    ------
    ValueError
        A head the model lacks, or a head named twice.
    """
    if head is None:
        return list(config.heads)
    wanted = [head] if isinstance(head, str) else list(head)
    for h in wanted:
        _check_head(h, config)
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"head names repeat: {wanted}")
    return wanted


def select_tracks(
    config: EnformerConfig,
    spec: Any = None,
    *,
    head: str | None = None,
    sheet: TrackSheet | str | os.PathLike[str] | None = None,
) -> TrackSelection:
    """Resolve a track selection (see the module docstring) for one head.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration (its heads and their track counts).
    spec : object, optional
        The selection; ``None`` selects every track.
    head : str, optional
        The head (default :func:`default_head`).
    sheet : TrackSheet or path-like, optional
        The head's sheet (or its file), for names; it must have as many tracks as the head.

    Returns
    -------
    TrackSelection
        The head, the indices (each once, in the order given) and the sheet.

    Raises
    ------
    ValueError
        An unknown head, a sheet of another size, an index out of range, a reversed range,
        an unknown name, names without a sheet, or an empty selection.
    TypeError
        A selection of an unsupported type.
    """
    head = _check_head(default_head(config) if head is None else head, config)
    n = config.heads[head]
    if sheet is not None and not isinstance(sheet, TrackSheet):
        sheet = TrackSheet.read(sheet, head=head)
    if sheet is not None and len(sheet) != n:
        raise ValueError(
            f"track sheet {sheet.path or ''} has {len(sheet)} tracks but head {head!r} outputs "
            f"{n}; pass the sheet that belongs to these weights"
        )
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("all", "*")):
        chosen = list(range(n))
    elif sheet is not None:
        chosen = list(sheet.select(spec))
    else:
        chosen = _plain_indices(spec, n, head)
    if not chosen:
        raise ValueError(f"the track selection for head {head!r} is empty")
    return TrackSelection(head, chosen, sheet)


def _plain_indices(spec: Any, n: int, head: str) -> list[int]:
    """Indices of a selection made without a sheet, each once, in the order given."""
    if isinstance(spec, slice):
        return list(range(n))[spec]
    if isinstance(spec, str):
        return _index_text(spec, n, head)
    if isinstance(spec, list | tuple) and any(isinstance(item, str) for item in spec):
        out: dict[int, None] = {}
        for item in spec:
            text = isinstance(item, str)
            for i in _index_text(item, n, head) if text else _ints([item], n, head):
                out.setdefault(i, None)
        return list(out)
    return _ints(spec, n, head)


def _index_text(spec: str, n: int, head: str) -> list[int]:
    if not is_index_spec(spec):
        raise ValueError(
            f"track selection {spec!r} for head {head!r} needs a track sheet (track_sheet= "
            "or --targets); without one, give indices such as '0,5,10-20'"
        )
    return parse_index_spec(spec, n, "track")


def _ints(spec: Any, n: int, head: str) -> list[int]:
    arr = np.asarray(spec)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise ValueError(f"a boolean track mask for head {head!r} must have shape ({n},)")
        return [int(i) for i in np.flatnonzero(arr)]
    if arr.dtype.kind not in "iu":
        raise TypeError(f"track indices must be integers, got {spec!r}")
    out: dict[int, None] = {}
    for i in arr.ravel().tolist():
        if not 0 <= i < n:
            raise ValueError(f"track index {i} is out of range for head {head!r} (0..{n - 1})")
        out.setdefault(int(i), None)
    return list(out)


def select_for_weights(
    weights: str | os.PathLike[str] | None,
    config: EnformerConfig,
    spec: Any = None,
    *,
    head: str | None = None,
    targets: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> TrackSelection:
    """:func:`select_tracks` with the sheet :func:`track_sheet_for` finds for ``weights``.

    A selection that names tracks (anything but indices, ranges and ``all``) needs the sheet:
    it is then required and may be downloaded (when ``download``). A selection by index
    uses a sheet found locally (for identifiers and strand pairs) and works without one.

    Parameters
    ----------
    weights : str or path-like, optional
        What the model was loaded from.
    config : EnformerConfig
        The model's configuration.
    spec : object, optional
        The selection (``None``: every track).
    head : str, optional
        The head (default :func:`default_head`).
    targets : str or path-like, optional
        A sheet, or a folder holding ``targets_{head}.txt``, given by the user.
    download : bool, optional
        Allow downloading the official sheet when the selection needs names.

    Returns
    -------
    TrackSelection
        The selection.
    """
    head = _check_head(default_head(config) if head is None else head, config)
    by_index = not _names_tracks(spec)
    sheet = track_sheet_for(
        weights,
        head,
        targets,
        n_tracks=config.heads[head],
        download=download and not by_index,
        required=not by_index,
    )
    return select_tracks(config, spec, head=head, sheet=sheet)


def _names_tracks(spec: Any) -> bool:
    """Whether a selection holds text other than indices, ranges and ``all``."""
    if isinstance(spec, str):
        return not is_index_spec(spec)
    if isinstance(spec, list | tuple):
        return any(_names_tracks(item) for item in spec)
    return False


def _per_head(value: Any, heads: list[str]) -> dict[str, Any]:
    """Broadcast a value to every head unless it is already a mapping by head."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(heads)
        if unknown:
            raise ValueError(f"per-head mapping names heads not predicted: {sorted(unknown)}")
        return {h: value.get(h) for h in heads}
    return dict.fromkeys(heads, value)


def resolve_tracks(
    config: EnformerConfig,
    heads: list[str],
    tracks: Any,
    track_sheet: Any = None,
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """:func:`select_tracks` for several heads at once.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration.
    heads : list of str
        Heads being predicted.
    tracks : object
        A selection for every head, or a mapping head -> selection.
    track_sheet : TrackSheet or mapping of str to TrackSheet, optional
        A sheet for every head, or per head.

    Returns
    -------
    indices : dict of str to list of int
        Selected track indices per head.
    identifiers : dict of str to list of str
        Identifiers of the selected tracks, for heads with a sheet.
    """
    selections = _per_head(tracks, heads)
    sheets = _per_head(track_sheet, heads)
    indices: dict[str, list[int]] = {}
    identifiers: dict[str, list[str]] = {}
    for head in heads:
        chosen = select_tracks(config, selections[head], head=head, sheet=sheets[head])
        indices[head] = chosen.indices
        if chosen.identifiers is not None:
            identifiers[head] = chosen.identifiers
    return indices, identifiers


def resolve_strand_pairs(
    config: EnformerConfig,
    heads: list[str],
    strand_pairs: Any,
    track_sheet: Any = None,
) -> dict[str, np.ndarray | None]:
    """Strand-pair permutation per head (``None`` = identity).

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration (the number of tracks of each head).
    heads : list of str
        The heads whose permutations are wanted.
    strand_pairs : array or mapping of str to array, optional
        Explicit permutations; when missing for a head, the head's sheet's
        :meth:`~enformer.data.tracks.TrackSheet.strand_pair_permutation` is used.
    track_sheet : TrackSheet or mapping of str to TrackSheet, optional
        Sheets.

    Returns
    -------
    dict of str to numpy.ndarray or None
        int64 permutation per head, or ``None`` for the identity.

    Raises
    ------
    ValueError
        If a permutation has the wrong length or is not a permutation.
    """
    pairs, sheets = _per_head(strand_pairs, heads), _per_head(track_sheet, heads)
    return {h: _permutation(pairs[h], sheets[h], h, config.heads[h]) for h in heads}


class HeadSelection(NamedTuple):
    """What a prediction request reads from the model, resolved (:func:`resolve_selection`).

    Attributes
    ----------
    heads : list of str
        Heads to predict.
    indices : dict of str to list of int
        Selected track indices per head.
    identifiers : dict of str to list of str
        Identifiers of the selected tracks, for heads with a sheet.
    strand_pairs : dict of str to numpy.ndarray or None
        Strand-pair permutation per head (``None`` = identity).
    """

    heads: list[str]
    indices: dict[str, list[int]]
    identifiers: dict[str, list[str]]
    strand_pairs: dict[str, np.ndarray | None]


def resolve_selection(
    config: EnformerConfig,
    head: str | Sequence[str] | None,
    tracks: Any,
    track_sheet: Any,
    strand_pairs: Any,
) -> HeadSelection:
    """Resolve the heads, tracks and strand pairs of a prediction request at once.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration.
    head, tracks, track_sheet, strand_pairs
        As for :func:`resolve_heads`, :func:`resolve_tracks` and
        :func:`resolve_strand_pairs`.

    Returns
    -------
    HeadSelection
        The resolved request.
    """
    heads = resolve_heads(head, config)
    indices, identifiers = resolve_tracks(config, heads, tracks, track_sheet)
    pairs = resolve_strand_pairs(config, heads, strand_pairs, track_sheet)
    return HeadSelection(heads, indices, identifiers, pairs)


def _permutation(perm: Any, sheet: TrackSheet | None, head: str, n: int) -> np.ndarray | None:
    """A head's strand-pair permutation, checked; the sheet's when ``perm`` is None."""
    if perm is None and sheet is not None:
        perm = sheet.strand_pair_permutation()
    if perm is None:
        return None
    perm = np.asarray(perm, dtype=np.int64)
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError(
            f"strand_pairs for head {head!r} must be a permutation of 0..{n - 1} "
            f"(shape ({n},)), got shape {perm.shape}"
        )
    return perm


def track_sheet_for(
    weights: str | os.PathLike[str] | None,
    head: str,
    targets: str | os.PathLike[str] | None = None,
    *,
    also: Sequence[str | os.PathLike[str]] = (),
    n_tracks: int | None = None,
    download: bool = False,
    required: bool = False,
) -> TrackSheet | None:
    """Find and read the track sheet of a head of the model loaded from ``weights``.

    Looks, in this order, at

    1. ``targets``: a sheet, or a folder holding ``targets_{head}.txt``; when given it must
       exist and, with ``n_tracks``, have that many tracks;
    2. the files in ``also`` (e.g. a data set's ``targets.txt``), skipping missing ones;
    3. ``targets_{head}.txt`` beside the weights (:func:`enformer.weights.weights_dir`);
    4. ``targets_{head}.txt`` in the download cache;
    5. the Basenji repository, when ``download`` is true (and no offline switch is set).

    With ``n_tracks``, a sheet found in 2-4 with another number of tracks is passed over
    (logged), unless ``required``, which makes it an error.

    Parameters
    ----------
    weights : str or path-like, optional
        What the model was loaded from (folder, file, bundled or hub name).
    head : str
        Head name, e.g. ``'human'``.
    targets : str or path-like, optional
        A sheet the user gave.
    also : sequence of path-like, optional
        Further sheet files to try before the weights' folder.
    n_tracks : int, optional
        The head's number of output tracks, to check the sheet against.
    download : bool, optional
        Allow downloading (default false).
    required : bool, optional
        Raise instead of returning ``None`` when there is no usable sheet.

    Returns
    -------
    TrackSheet or None
        The sheet, or ``None`` when none was found and none is required.

    Raises
    ------
    TrackSheetNotFound
        ``targets`` does not exist, or nothing was found and ``required``.
    ValueError
        A sheet with the wrong number of tracks that was given or required.
    """
    from ..weights import weights_dir

    if targets is not None:
        path = find_track_sheet(head, path=targets, download=False)
        return _fitting(TrackSheet.read(path, head=head), head, n_tracks, strict=True)
    folder = weights_dir(weights)
    beside = [] if folder is None else [folder / f"targets_{head}.txt"]
    for candidate in [*also, *beside]:
        if Path(candidate).is_file():
            sheet = _fitting(TrackSheet.read(candidate, head=head), head, n_tracks, required)
            if sheet is not None:
                return sheet
    try:  # the cache, then the download
        path = find_track_sheet(head, download=download)
    except TrackSheetNotFound:
        if required:
            raise
        return None
    return _fitting(TrackSheet.read(path, head=head), head, n_tracks, required)


def _fitting(sheet: TrackSheet, head: str, n_tracks: int | None, strict: bool) -> TrackSheet | None:
    if n_tracks is None or len(sheet) == n_tracks:
        return sheet
    if strict:
        raise ValueError(
            f"track sheet {sheet.path} has {len(sheet)} tracks but head {head!r} outputs "
            f"{n_tracks}; pass the sheet that belongs to these weights"
        )
    logger.info("ignoring %s: %d tracks, head %r has %d", sheet.path, len(sheet), head, n_tracks)
    return None
