"""Hub models: fetching ``owner/name`` checkpoints into the shared download cache.

The cache root, the offline switches and the atomic download itself belong to
:mod:`enformer.io.cache`; this module knows the hub's address layout and which files make
a checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from pathlib import Path

from ..io.cache import DownloadError, download, offline_reason, resolve_cache_dir
from .convert import WeightsError
from .formats import CONFIG_NAME, WEIGHTS_CANDIDATES, WeightsNotFound

__all__ = ["DEFAULT_ENDPOINT", "hub_download", "is_hub_name"]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_hub_name(text: str) -> bool:
    """Whether ``text`` has the shape of a hub model name, ``owner/name``."""
    return bool(_HUB_NAME.fullmatch(text)) and ".." not in text


def _hub_endpoint() -> str:
    endpoint = (
        os.environ.get("ENFORMER_HUB_ENDPOINT") or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    )
    return endpoint.rstrip("/")


def _cached_weights(directory: Path) -> Path | None:
    if not (directory / CONFIG_NAME).is_file():
        return None
    return next((directory / n for n in WEIGHTS_CANDIDATES if (directory / n).is_file()), None)


def hub_download(
    name: str,
    *,
    revision: str = "main",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Fetch ``config.json`` and the weights of hub model ``name`` into the cache.

    Files come from ``{endpoint}/{name}/resolve/{revision}/{file}``, where the endpoint is
    ``$ENFORMER_HUB_ENDPOINT``, else ``$HF_ENDPOINT``, else ``https://huggingface.co``;
    the weights file is ``model.safetensors`` or, failing that, ``pytorch_model.bin``.
    A complete cached copy is used without touching the network. Each file is streamed
    to a ``.part`` file and renamed only when complete.

    Parameters
    ----------
    name
        ``owner/name``, e.g. ``"EleutherAI/enformer-official-rough"``.
    revision
        Branch, tag or commit.
    cache_dir
        Cache root; default :func:`enformer.io.cache.default_cache_dir`. Files land in
        ``{cache_dir}/hub/{owner}--{name}/{revision}/``.
    progress
        Show a progress bar (when ``tqdm`` is installed and stderr is a terminal).

    Returns
    -------
    Path
        The local directory holding ``config.json`` and the weights.

    Raises
    ------
    WeightsNotFound
        Offline (no network, ``ENFORMER_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) with nothing
        cached, or the hub has no such model.
    WeightsError
        A download was cut short (nothing is left under the final name).
    """
    owner, _, repo = name.partition("/")
    local = resolve_cache_dir(cache_dir) / "hub" / f"{owner}--{repo}" / _safe_revision(revision)
    if _cached_weights(local) is not None:
        log.debug("using cached %s at %s", name, local)
        return local
    endpoint = _hub_endpoint()
    base = f"{endpoint}/{owner}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}"

    def fail(reason: str) -> WeightsNotFound:
        return WeightsNotFound(
            f"could not get weights for {name!r} (revision {revision!r}): {reason}. "
            f"Tried {base}/{CONFIG_NAME} and {' / '.join(WEIGHTS_CANDIDATES)}; nothing usable "
            f"is cached in {local}. To use the model offline, download its directory "
            f"({CONFIG_NAME} + weights) on a machine with network access, copy it here and "
            "pass its path, or set ENFORMER_HUB_ENDPOINT / HF_ENDPOINT to a reachable mirror"
        )

    offline = offline_reason()
    if offline:
        raise fail(offline)
    try:
        _fetch(base, local, name=name, progress=progress)
    except DownloadError as err:
        if err.kind == "cut-short":
            raise WeightsError(str(err)) from None
        if err.kind not in ("http", "network"):
            raise
        if err.status == 404:
            raise fail(f"no such model or revision at {endpoint} (HTTP 404)") from None
        if err.status in (401, 403):
            raise fail(
                f"access denied (HTTP {err.status}): the model may be private or gated"
            ) from None
        raise fail(err.reason) from None
    except LookupError as err:
        raise fail(str(err)) from None
    return local


def _fetch(base: str, local: Path, *, name: str, progress: bool) -> None:
    """Download ``config.json``, then the first weights file the hub has, into ``local``."""
    download(f"{base}/{CONFIG_NAME}", local / CONFIG_NAME, progress=progress)
    for filename in WEIGHTS_CANDIDATES:
        try:
            download(f"{base}/{filename}", local / filename, progress=progress)
            return
        except DownloadError as err:
            if err.status != 404:
                if err.status is not None:
                    err.reason = f"{err.reason} for {filename}"
                raise
            log.debug("%s has no %s", name, filename)
    raise LookupError(f"the model has neither {' nor '.join(WEIGHTS_CANDIDATES)}")


def _safe_revision(revision: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "--", revision)
    if not safe or set(safe) <= {"."}:
        raise ValueError(f"invalid revision {revision!r}")
    return safe

