"""The job directory: the one engine behind every resumable job.

:class:`JobDir` is the one engine behind every resumable job (``enformer predict``,
``enformer score``): a directory holding ``manifest.json`` (the digest of every setting that
determines the results), one ``.npz`` file per finished *unit* of work, written atomically,
optionally with a digest of the input the unit read, and the run lock. A run with other
settings starts over (with a warning); a run with the same settings skips the finished units.
Units are split between the ``n`` processes of one job by one rule, :func:`shard_units`:
unit ``u`` belongs to shard ``k`` when ``u % n == k``, whether ``n`` is torchrun's world size
or the ``--shard k/n`` of separate processes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .jobs import LOCK_NAME, JobLock, atomic_path, settings_digest, write_json_atomic

__all__ = ["INPUT_DIGEST_KEY", "MANIFEST_NAME", "JobDir", "shard_units"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
"""Name of the settings record inside a job directory."""

INPUT_DIGEST_KEY = "__input_digest__"
"""Member of a unit's file holding the digest of the input it read."""


def shard_units(units: Iterable[int], shard: tuple[int, int] | None) -> list[int]:
    """The units of shard ``k`` of ``n``: those with ``u % n == k`` (all if ``shard`` is None).

    Parameters
    ----------
    units : iterable of int
        Unit indices.
    shard : (int, int) or None
        ``(k, n)``, 0-based ``k``.

    Returns
    -------
    list of int
        The shard's units, in the given order.
    """
    if shard is None:
        return list(units)
    k, n = shard
    return [u for u in units if u % n == k]


def _c_order(value: Any) -> np.ndarray:
    """``value`` as a C-ordered array of the same shape (0-d arrays stay 0-d)."""
    arr = np.asarray(value)
    return arr if arr.ndim == 0 else np.ascontiguousarray(arr)


class JobDir:
    """The work directory of one resumable job: settings, finished units, run lock.

    Parameters
    ----------
    directory : str or os.PathLike
        The job directory.
    settings : mapping
        Everything that determines the units' contents (JSON-ready); its
        :func:`settings_digest` is compared with the one an earlier run recorded.
    shard : (int, int), optional
        ``(k, n)``: this process is shard ``k`` of ``n`` of one job; it takes the lock shared
        plus its own shard lock (see :class:`JobLock`) and never deletes anything.
    what : str, optional
        How lock refusals name the output (e.g. ``'--out scores.tsv'``).
    unit_name : str, optional
        Format of a unit's file name relative to ``directory`` (one ``{}`` for the index).

    Attributes
    ----------
    hash : str
        Digest of ``settings``.
    previous : dict or None
        The manifest of an earlier run with other settings that :meth:`claim` discarded.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        settings: Mapping[str, Any],
        *,
        shard: tuple[int, int] | None = None,
        what: str | None = None,
        unit_name: str = "chunks/{:09d}.npz",
    ) -> None:
        self.path = Path(directory)
        self.settings = dict(settings)
        self.hash = settings_digest(self.settings)
        self.shard = shard
        self.lock = JobLock(self.path, shard=shard, what=what)
        self.unit_name = unit_name
        self.unit_dir = (self.path / unit_name.format(0)).parent
        prefix = Path(unit_name).name.split("{")[0]
        self._prefix = prefix
        self._pattern = re.compile(
            re.escape(prefix) + r"(\d+)" + re.escape(unit_name.rsplit("}", 1)[1])
        )
        self.previous: dict[str, Any] | None = None

    @property
    def manifest(self) -> Path:
        """The settings record."""
        return self.path / MANIFEST_NAME

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            found = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def claim(self, *, resume: bool = True, **extra: Any) -> set[int]:
        """Take the lock, check the settings (start over if they differ) and list done units.

        Parameters
        ----------
        resume : bool, optional
            Keep the finished units of an earlier run with the same settings.
        **extra
            JSON-ready entries recorded in a new manifest.

        Returns
        -------
        set of int
            The finished units.

        Raises
        ------
        JobLockedError
            If a live run holds a conflicting lock.
        ValueError
            For a shard, when the directory holds units of other settings (a shard never
            deletes them).
        """
        self.lock.acquire()
        with self.lock.setup():
            found = self._read_manifest()
            leftovers = bool(self._unit_files())
            same = found is not None and found.get("settings_hash") == self.hash
            if same and resume:
                self._sweep()
                return self.done()
            if self.shard is not None and (found is not None or leftovers):
                raise ValueError(
                    f"work directory {self.path} holds units of a run with other settings (or "
                    "resume is off); a shard never deletes them: give every shard the same "
                    "settings, or remove the directory"
                )
            if (found is not None and not same) or (found is None and leftovers):
                logger.warning(
                    "%s holds %d unit(s) of a run with other settings; starting over",
                    self.path,
                    len(self.done()),
                )
                self.previous = found
            for f in self._unit_files():
                f.unlink(missing_ok=True)
            self.unit_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                self.manifest,
                {"settings_hash": self.hash, "settings": self.settings, **extra},
            )
        return set()

    def _unit_files(self) -> list[Path]:
        """Every file in the unit folder that is or was meant to be a unit (temporaries too)."""
        if not self.unit_dir.is_dir():
            return []
        return [
            f
            for f in self.unit_dir.iterdir()
            if f.is_file()
            and f.name.lstrip(".").startswith(self._prefix)
            and f.name not in (MANIFEST_NAME,)
            and not f.name.startswith(LOCK_NAME)
        ]

    def _sweep(self) -> None:
        """Remove torn files (not finished units) left by a killed run; only a sole owner."""
        if self.shard is not None:
            return
        for f in self._unit_files():
            if not self._pattern.fullmatch(f.name):
                f.unlink(missing_ok=True)

    def record(self, **entries: Any) -> None:
        """Add JSON-ready entries to the manifest."""
        write_json_atomic(self.manifest, {**(self._read_manifest() or {}), **entries})

    def unit_path(self, unit: int) -> Path:
        """File of unit ``unit``."""
        return self.path / self.unit_name.format(unit)

    def done(self) -> set[int]:
        """Units whose file exists."""
        found = (self._pattern.fullmatch(f.name) for f in self._unit_files())
        return {int(m.group(1)) for m in found if m}

    def save(
        self, unit: int, arrays: Mapping[str, np.ndarray], *, digest: str | None = None
    ) -> None:
        """Write one unit's arrays atomically, with the digest of its input if given."""
        data = {k: _c_order(v) for k, v in arrays.items()}
        if digest is not None:
            data[INPUT_DIGEST_KEY] = np.array(digest)
        with atomic_path(self.unit_path(unit)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **data)

    def load(self, unit: int) -> dict[str, np.ndarray]:
        """Read one unit's arrays (without the input digest).

        Raises
        ------
        FileNotFoundError
            When the unit is missing (a process of the job did not finish its share).
        ValueError
            When its file is unreadable.
        """
        path = self.unit_path(unit)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files if k != INPUT_DIGEST_KEY}
        except FileNotFoundError:
            raise FileNotFoundError(
                f"unit {path.name} is missing from {path.parent}: a process of this run did "
                "not finish its share; run the same command again to resume"
            ) from None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"unit file {path} is unreadable ({err}); delete it and run again to redo it"
            ) from err

    def input_digest(self, unit: int) -> str | None:
        """The input digest stored with a unit (``None`` if absent or unreadable)."""
        try:
            with np.load(self.unit_path(unit), allow_pickle=False) as data:
                if INPUT_DIGEST_KEY not in data.files:
                    return None
                return str(data[INPUT_DIGEST_KEY].reshape(-1)[0])
        except (OSError, ValueError, zipfile.BadZipFile):
            return None

    def stale(self, units: Iterable[int], digest: Any) -> list[int]:
        """Of ``units``, those whose stored input digest differs from ``digest(unit)``."""
        return [u for u in units if self.input_digest(u) != digest(u)]

    def discard(self, units: Iterable[int]) -> None:
        """Delete the files of ``units`` (they will be computed again)."""
        for unit in units:
            self.unit_path(unit).unlink(missing_ok=True)

    def release(self, *, discard: bool = False) -> None:
        """Let the lock go (``discard``: remove the directories the claim created)."""
        self.lock.release(discard=discard)

    def remove(self) -> None:
        """Delete the job directory (the lock must be held exclusively)."""
        self.lock.remove_directory()
