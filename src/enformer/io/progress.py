"""The package's one progress bar: tqdm when installed, else log lines or nothing.

tqdm is an optional extra. :func:`progress_bar` returns a tqdm bar when progress is wanted and
tqdm can be imported; otherwise a stand-in with the same ``update``/``close`` methods (and
use as a context manager) that logs about every 10 % at INFO, or stays silent.
"""

from __future__ import annotations

import logging
import math
from typing import Any

__all__ = ["progress_bar"]

logger = logging.getLogger(__name__)


class _Quiet:
    """A bar that shows nothing."""

    def update(self, k: int = 1) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _LogLines(_Quiet):
    """An INFO log line about every 10 % of ``total``."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total, self.desc, self.n, self._next = total, desc, 0, 0.1

    def update(self, k: int = 1) -> None:
        """Count ``k`` more steps."""
        self.n += k
        if self.total and self.n / self.total >= self._next:
            logger.info("%s: %d/%d", self.desc, self.n, self.total)
            self._next = math.floor(self.n / self.total * 10 + 1) / 10


def progress_bar(
    total: int | None, desc: str, enabled: bool, unit: str = "seq", *, nbytes: bool = False
) -> Any:
    """Return a tqdm bar when enabled and installed, else a logging or silent stand-in.

    Parameters
    ----------
    total : int or None
        Number of steps (bytes with ``nbytes``).
    desc : str
        Label.
    enabled : bool
        Show progress at all.
    unit : str, optional
        Unit name shown by tqdm.
    nbytes : bool, optional
        Count bytes (a download): scaled units, shown only when stderr is a terminal, and no
        log lines without tqdm.

    Returns
    -------
    object
        Something with ``update(k)`` and ``close()`` that can be used in a ``with`` block.
    """
    if not enabled:
        return _Quiet()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Quiet() if nbytes else _LogLines(total, desc)
    if nbytes:
        return tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None,  # off when stderr is not a terminal
            leave=False,
        )
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
