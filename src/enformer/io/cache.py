"""The download cache: where it lives, whether the network may be used, and fetching into it.

One place owns these rules for every download of the package (hub weights, track sheets):

* the cache root is ``$ENFORMER_CACHE``, else ``~/.cache/enformer``;
* the network is off when ``ENFORMER_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true
  value (``1``, ``true``, ``yes``, ``on``; any case);
* :func:`download` streams a URL into a temporary ``.part`` file beside its destination,
  checks it, and renames it into place, so that a final name only ever holds a complete
  file. Failures raise :class:`DownloadError`, whose message names the URL.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..version import __version__
from .progress import progress_bar

__all__ = [
    "CACHE_ENV",
    "OFFLINE_ENVS",
    "DownloadError",
    "default_cache_dir",
    "download",
    "offline_reason",
    "offline_switch",
    "resolve_cache_dir",
]

log = logging.getLogger(__name__)

CACHE_ENV = "ENFORMER_CACHE"
# Either variable turns the network off; HF_HUB_OFFLINE is honoured so that one switch
# covers this package and the Hugging Face tools a user runs beside it.
OFFLINE_ENVS = ("ENFORMER_OFFLINE", "HF_HUB_OFFLINE")
USER_AGENT = f"enformer/{__version__}"
DEFAULT_TIMEOUT = 60.0  # seconds without data before a download gives up
_CHUNK = 1 << 20  # bytes read at a time
_TRUE = ("1", "true", "yes", "on")


def default_cache_dir() -> Path:
    """Return the cache root: ``$ENFORMER_CACHE`` if set, else ``~/.cache/enformer``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "enformer"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Return ``cache_dir`` (expanded) when given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def offline_switch() -> str | None:
    """Return the first of :data:`OFFLINE_ENVS` set to a true value, or ``None`` when online."""
    for var in OFFLINE_ENVS:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    return None


def offline_reason() -> str | None:
    """Say why the network is off (``"offline mode is on (HF_HUB_OFFLINE=1)"``), or ``None``."""
    var = offline_switch()
    return None if var is None else f"offline mode is on ({var}={os.environ[var]})"


class DownloadError(OSError):
    """A download failed; nothing was left under the destination's name.

    ``url`` is the address, ``reason`` a short cause (``"HTTP 404 Not Found"``,
    ``"network unavailable (...)"``, ...), ``status`` the HTTP status when the server
    answered with an error (else ``None``) and ``kind`` one of ``"http"``, ``"network"``,
    ``"cut-short"``, ``"too-large"``, ``"rejected"`` (the content failed its check) or
    ``"write"`` (the cache could not be written).
    """

    def __init__(self, url: str, reason: str, *, kind: str, status: int | None = None) -> None:
        self.url, self.reason, self.kind, self.status = url, reason, kind, status
        super().__init__(f"download of {url} failed: {reason}; {_FIXES.get(kind, '')}".rstrip("; "))


_FIXES = {
    "http": "check the address",
    "network": "check the connection (or proxy), or copy the file into place by hand",
    "cut-short": "nothing was saved, run again to retry",
    "too-large": "check the address",
    "rejected": "check that the address serves the expected file",
    "write": f"check that the folder is writable (set {CACHE_ENV} to move the cache)",
}


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
    max_bytes: int | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` atomically and return ``dest``.

    The body is streamed into a ``.part`` file in ``dest``'s folder (created if needed),
    flushed to disk, checked, and renamed to ``dest``; on any failure the ``.part`` file
    is removed and ``dest`` is left as it was. Requests carry ``User-Agent:
    enformer/<version>``. This function does not look at the offline switches: callers
    decide (with :func:`offline_reason`) before they ask for the network.

    Parameters
    ----------
    url
        Address to fetch.
    dest
        Final path of the file.
    timeout
        Seconds to wait for the server (to connect, and for each read).
    progress
        Show a progress bar (when ``tqdm`` is installed and stderr is a terminal).
    max_bytes
        Refuse bodies longer than this.
    check
        Called with the complete ``.part`` file before it is renamed; a ``ValueError`` it
        raises rejects the download (its message becomes the reason).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DownloadError
        The server answered with an error, could not be reached, sent less than it
        announced or more than ``max_bytes``, the content failed ``check``, or the file
        could not be written.
    """
    dest = Path(dest)
    log.info("downloading %s", url)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, part_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as err:
        raise DownloadError(url, f"could not write {dest}: {err}", kind="write") from None
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(url, out, timeout=timeout, progress=progress, limit=max_bytes, name=dest.name)
        if check is not None:
            try:
                check(part)
            except ValueError as err:
                raise DownloadError(url, str(err), kind="rejected") from None
        try:
            os.replace(part, dest)
        except OSError as err:
            raise DownloadError(url, f"could not write {dest}: {err}", kind="write") from None
    finally:
        part.unlink(missing_ok=True)
    return dest


def _stream(
    url: str, out: Any, *, timeout: float, progress: bool, limit: int | None, name: str
) -> None:
    """Copy the body of ``url`` into the open file ``out``; translate every failure."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    received, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with progress_bar(total, name, progress, nbytes=True) as bar:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if limit is not None and received > limit:
                        raise DownloadError(
                            url, f"refused: more than {limit:,} bytes", kind="too-large"
                        )
                    _write(out, chunk, url)
                    bar.update(len(chunk))
        _write(out, b"", url, sync=True)
    except urllib.error.HTTPError as err:
        err.close()
        raise DownloadError(
            url, f"HTTP {err.code} {err.reason}", kind="http", status=err.code
        ) from None
    except urllib.error.URLError as err:
        raise DownloadError(url, f"network unavailable ({err.reason})", kind="network") from None
    except http.client.IncompleteRead as err:
        received += len(err.partial)
        raise _cut_short(url, received, total) from None
    except http.client.HTTPException as err:
        reason = f"bad answer from the server ({type(err).__name__}: {err})"
        raise DownloadError(url, reason, kind="network") from None
    except ValueError as err:  # urllib's answer to a malformed address
        raise DownloadError(url, f"invalid address ({err})", kind="network") from None
    except DownloadError:
        raise
    except OSError as err:
        reason = f"network unavailable ({type(err).__name__}: {err})"
        raise DownloadError(url, reason, kind="network") from None
    if total is not None and received != total:
        raise _cut_short(url, received, total)


def _write(out: Any, chunk: bytes, url: str, *, sync: bool = False) -> None:
    """Append ``chunk`` to ``out`` (with ``sync``, flush it to disk); name the URL on failure."""
    try:
        out.write(chunk)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        raise DownloadError(url, f"could not write the download: {err}", kind="write") from None


def _cut_short(url: str, received: int, total: int | None) -> DownloadError:
    got = f"after {received:,} bytes" if total is None else f"got {received:,} of {total:,} bytes"
    return DownloadError(url, f"cut short ({got})", kind="cut-short")
