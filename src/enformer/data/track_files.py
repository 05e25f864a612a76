"""Locating a head's track sheet: beside the weights, in the cache, or downloaded.

:func:`find_track_sheet` looks for ``targets_{head}.txt`` and fetches the official sheets
from the Basenji repository into the download cache (:mod:`enformer.io.cache`) when allowed.
:func:`enformer.inference.selection.track_sheet_for` builds on it for a model's weights.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..io.cache import DownloadError, offline_switch, resolve_cache_dir
from ..io.cache import download as fetch_url
from .track_records import OFFICIAL_TRACK_COUNTS, parse_sheet_text

__all__ = ["DEFAULT_URL", "TrackSheetNotFound", "find_track_sheet"]

logger = logging.getLogger(__name__)

DEFAULT_URL = (
    "https://raw.githubusercontent.com/calico/basenji/master/manuscripts/cross2020/"
    "targets_{head}.txt"
)
"""Where :func:`find_track_sheet` downloads ``targets_{head}.txt`` from by default."""

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_HEAD_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class TrackSheetNotFound(FileNotFoundError):
    """A head's track sheet could not be found locally nor downloaded."""


def find_track_sheet(
    head: str,
    *,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Locate ``targets_{head}.txt``, downloading it into the cache if needed.

    Looks, in order, at

    1. ``path`` (a file, or a folder holding ``targets_{head}.txt``); if given, it must exist;
    2. ``targets_{head}.txt`` in ``weights_dir`` (or beside it, if it is a file);
    3. ``targets_{head}.txt`` in the cache (``cache_dir``, else :func:`default_cache_dir`);
    4. ``url`` (default :data:`DEFAULT_URL`, the Basenji repository), unless ``download`` is
       false or the environment sets ``ENFORMER_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``. The
       content is checked to be a
       valid sheet (with the official track count for ``human``/``mouse`` from the default
       URL) and then moved into the cache atomically.

    Parameters
    ----------
    head
        Head name, e.g. ``'human'`` or ``'mouse'``.
    path
        A sheet the user supplied.
    weights_dir
        Folder (or file) of the model weights.
    cache_dir
        Cache folder to use instead of the default.
    download
        Allow downloading.
    url
        Download address; ``{head}`` in it is replaced by ``head``.
    timeout
        Seconds to wait for the server.

    Returns
    -------
    pathlib.Path
        Path of an existing sheet.

    Raises
    ------
    TrackSheetNotFound
        If the sheet is found nowhere and cannot be downloaded; the message lists where it
        looked and how to provide the file.
    ValueError
        If ``head`` is not a plain name.
    """
    if not _HEAD_RE.fullmatch(head):
        raise ValueError(f"head must be a plain name such as 'human', got {head!r}")
    name = f"targets_{head}.txt"
    if path is not None:
        given = Path(path).expanduser()
        candidate = given / name if given.is_dir() else given
        if candidate.is_file():
            return candidate
        raise TrackSheetNotFound(f"track sheet {str(candidate)!r} (for head {head!r}) not found")

    looked: list[str] = []
    if weights_dir is not None:
        folder = Path(weights_dir).expanduser()
        if folder.is_file():
            folder = folder.parent
        candidate = folder / name
        if candidate.is_file():
            return candidate
        looked.append(f"{candidate} (beside the weights): missing")

    cached = resolve_cache_dir(cache_dir) / name
    if cached.is_file():
        return cached
    looked.append(f"{cached} (cache): missing")

    address = (url or DEFAULT_URL).replace("{head}", head)
    if not download:
        looked.append(f"{address}: not downloaded (download=False)")
    elif (switch := offline_switch()) is not None:
        looked.append(f"{address}: not downloaded ({switch} is set; unset it to download)")
    else:
        expected = OFFICIAL_TRACK_COUNTS.get(head) if url is None else None
        try:
            _download_sheet(address, cached, head=head, expected=expected, timeout=timeout)
            return cached
        except DownloadError as err:
            looked.append(f"{address}: download failed: {err.reason}")

    where = "\n".join(f"  - {item}" for item in looked)
    raise TrackSheetNotFound(
        f"track sheet {name} for head {head!r} not found. Looked at:\n{where}\n"
        f"Provide it by passing path=..., by putting {name} beside the weights, or by saving "
        f"it as {cached} (set ENFORMER_CACHE to change the cache folder); it can be fetched "
        f"from {address}"
    )


def _download_sheet(
    url: str, dest: Path, *, head: str, expected: int | None, timeout: float
) -> None:
    """Fetch ``url`` into ``dest`` through the cache's atomic download, checking it is a sheet."""

    def check(part: Path) -> None:
        try:
            tracks = parse_sheet_text(part.read_bytes(), url)
        except ValueError as err:
            raise ValueError(f"downloaded content is not a valid track sheet ({err})") from err
        if expected is not None and len(tracks) != expected:
            raise ValueError(
                f"downloaded sheet has {len(tracks)} tracks; the official {head} head has "
                f"{expected}"
            )

    logger.info("downloading track sheet for head %r from %s", head, url)
    fetch_url(url, dest, timeout=timeout, max_bytes=_MAX_DOWNLOAD_BYTES, check=check)
    logger.info("saved track sheet for head %r to %s", head, dest)
