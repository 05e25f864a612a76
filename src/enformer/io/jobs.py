"""Atomic files, run locks and fingerprints for resumable jobs.

Atomic files
------------
:func:`atomic_path` yields a hidden temporary name beside the final file; when the block
succeeds the data are flushed to disk (``fsync``) and the file is moved into place with
:func:`os.replace`, and the directory entry is synced too. A reader therefore sees either the
old file, the complete new one, or nothing, never a torn file under a final name.

Run locks
---------
A job keeps its state (settings, finished chunks) in a *job directory*
(:class:`~enformer.io.jobdir.JobDir`). :class:`JobLock`
claims that directory with ``flock`` on a file ``lock`` inside it, so that the operating
system releases the claim when the process ends in any way (``kill -9`` included) and the next
run resumes. A plain run takes the lock exclusively: a second run into the same directory
while the first is alive is refused with :class:`JobLockedError` (naming pid, host and start
time of the holder) and never touches the holder's files.

Shards of one run (``shard=(k, n)``: processes that split the chunks of one job between them)
take ``lock`` *shared*, so they can run side by side, and each also takes its own
``lock.shard-<k+1>-of-<n>`` exclusively, so the same shard cannot run twice. A plain run
(for example the final assembly) is refused while any shard is alive, and shards are refused
while a plain run is alive. Shards that start together agree on the settings under a short
blocking mutex (:meth:`JobLock.setup`).

A lock file is removed only by a process that holds it exclusively; after ``flock`` succeeds
the holder checks that the name still refers to the file it locked (another run may have
removed it in between) and tries again if not.

Fingerprints
------------
* :func:`model_fingerprint`: BLAKE2b of the configuration and of the exact bytes of every
  tensor in the state dict (content-exact; about a second per GB of weights).
* :func:`genome_fingerprint`: the genome's chromosome names and lengths, in FASTA order. The
  bases themselves are checked per unit of work with :func:`sequence_digest` of the sequence
  a unit actually read, stored with the unit and compared again on resume, so a unit computed
  from other bases is recomputed even when the FASTA was replaced at the same path.
* :func:`file_fingerprint`: BLAKE2b of a file's bytes (inputs such as a VCF).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX (Windows): runs are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "JobLock",
    "JobLockedError",
    "atomic_path",
    "file_fingerprint",
    "genome_fingerprint",
    "model_fingerprint",
    "sequence_digest",
    "settings_digest",
    "write_bytes_atomic",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)

LOCK_NAME = "lock"
"""Name of the run lock inside a job directory."""

_DIGEST_SIZE = 16


# --------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - e.g. directories cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without fsync
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; move it into place if the block succeeds.

    Parameters
    ----------
    final : str or os.PathLike
        Where the file should end up (its directory is created if missing).

    Yields
    ------
    pathlib.Path
        A fresh temporary name in the same directory (hidden, ``.tmp-`` in its name). The
        block writes and closes it; it is then fsynced and renamed over ``final``. It is
        deleted if the block raises.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(final.parent, directory=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write the bytes ``data`` to the file ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Final file.
    data : object
        JSON-ready data (other objects are written with ``str``).
    """
    write_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


# --------------------------------------------------------------------------------------
# Fingerprints
# --------------------------------------------------------------------------------------


def settings_digest(data: Any) -> str:
    """Digest of JSON-ready data (keys sorted; other objects as ``str``).

    Parameters
    ----------
    data : object
        The settings.

    Returns
    -------
    str
        Hex digest (BLAKE2b, 16 bytes).
    """
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_SIZE).hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of a model's configuration and the exact bytes of every tensor of its state dict.

    Parameters
    ----------
    model : torch.nn.Module
        The model.

    Returns
    -------
    str
        Hex digest (BLAKE2b, 16 bytes).
    """
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json"):
        h.update(config.to_json().encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            t = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(name.encode())
            h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def genome_fingerprint(genome: Any) -> str:
    """Digest of a genome's chromosome names and lengths, in FASTA order.

    The bases are not read here: jobs store :func:`sequence_digest` of what each unit of
    work read and check it again on resume.

    Parameters
    ----------
    genome : enformer.data.genome.Genome
        The genome, or anything with a ``chrom_sizes`` mapping of name to length (this layer
        imports nothing of :mod:`enformer.data`).

    Returns
    -------
    str
        Hex digest.
    """
    return settings_digest([[name, int(size)] for name, size in genome.chrom_sizes.items()])


def sequence_digest(*parts: str | bytes | np.ndarray) -> str:
    """Digest of sequences (strings), bytes or arrays, in order.

    Parameters
    ----------
    *parts : str, bytes or numpy.ndarray
        What a unit of work read (arrays contribute dtype, shape and bytes).

    Returns
    -------
    str
        Hex digest (BLAKE2b, 16 bytes).
    """
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
        else:
            data = part.encode() if isinstance(part, str) else bytes(part)
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identity of a file by content: its size and the BLAKE2b digest of its bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    dict
        ``{'path', 'size', 'blake2b'}``.
    """
    path = Path(path).resolve()
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"path": str(path), "size": size, "blake2b": h.hexdigest()}


# --------------------------------------------------------------------------------------
# Run lock
# --------------------------------------------------------------------------------------


class JobLockedError(OSError):
    """Another live run holds the job directory (its message names it and what to do)."""


def _lock_fd(path: Path, exclusive: bool, blocking: bool = False) -> int | None:
    """Open and ``flock`` ``path``; ``None`` if another process holds a conflicting lock."""
    if fcntl is None:  # pragma: no cover - not POSIX
        logger.warning("no flock on this system: concurrent runs into one output are not caught")
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode if blocking else mode | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # removed or replaced while we waited: lock the current file instead


def _holder_info(shard: tuple[int, int] | None) -> bytes:
    """Who holds a lock: pid, host, start time (UTC) and command line."""
    now = datetime.datetime.now(datetime.timezone.utc)
    command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) if sys.argv else ""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": command[:300],
    }
    if shard is not None:
        info["shard"] = f"{shard[0] + 1}/{shard[1]}"
    return json.dumps(info).encode()


def _read_info(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "pid" in data else None


def _alive(info: dict[str, Any]) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # cannot tell: assume it is
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True
    return True


def _describe(info: dict[str, Any] | None) -> str:
    if info is None:
        return "another run (holder unknown)"
    who = f"shard {info['shard']} of a run" if info.get("shard") else "another run"
    return f"{who} (pid {info.get('pid')} on {info.get('host')}, started {info.get('started')})"


class JobLock:
    """Claim of a job directory for the lifetime of one run (see the module docstring).

    Parameters
    ----------
    directory : str or os.PathLike
        The job directory (created by :meth:`acquire` if missing).
    shard : (int, int), optional
        ``(k, n)``, 0-based: this process is shard ``k`` of ``n`` of one run.
    what : str, optional
        How the refusal message names the output the user chose (e.g. ``'--out pred/'``).
    name : str, optional
        Name of the lock file in ``directory`` (default :data:`LOCK_NAME`).
    transient : bool, optional
        Remove the lock file when a plain run releases it (for a lock that sits beside
        outputs rather than inside a job directory).

    Attributes
    ----------
    created : pathlib.Path or None
        The topmost directory :meth:`acquire` created (``None`` if the job directory existed).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        shard: tuple[int, int] | None = None,
        what: str | None = None,
        name: str = LOCK_NAME,
        transient: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self.transient = transient
        self.shard = shard
        self.what = what or str(self.directory)
        self.created: Path | None = None
        self._fds: list[int] = []

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.directory / self.name

    def _shard_path(self) -> Path:
        assert self.shard is not None
        return self.directory / f"{self.name}.shard-{self.shard[0] + 1}-of-{self.shard[1]}"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return bool(self._fds)

    def _refuse(self, holders: list[dict[str, Any] | None]) -> JobLockedError:
        who = "; ".join(_describe(h) for h in holders) if holders else _describe(None)
        return JobLockedError(
            f"{self.what} is in use by {who}; wait for it to finish, or choose another output "
            "(a run whose holder has died resumes normally)"
        )

    def _live_shards(self) -> list[dict[str, Any] | None]:
        found = [_read_info(p) for p in sorted(self.directory.glob(f"{self.name}.shard-*"))]
        return [info for info in found if info is not None and _alive(info)]

    def acquire(self) -> JobLock:
        """Create the directory if needed and take the lock without waiting.

        Returns
        -------
        JobLock
            ``self``.

        Raises
        ------
        JobLockedError
            If a live run holds a conflicting lock.
        """
        if self.held:
            return self
        missing = [p for p in (self.directory, *self.directory.parents) if not p.exists()]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.created = missing[-1] if missing else None
        main = _lock_fd(self.path, exclusive=self.shard is None)
        if main is None:
            holders = self._live_shards() or [_read_info(self.path)]
            raise self._refuse(holders)
        self._fds.append(main)
        if self.shard is None:
            os.ftruncate(main, 0)
            os.pwrite(main, _holder_info(None), 0)
            return self
        own = _lock_fd(self._shard_path(), exclusive=True)
        if own is None:
            info = _read_info(self._shard_path())
            self.release()
            raise self._refuse([info])
        self._fds.append(own)
        os.ftruncate(own, 0)
        os.pwrite(own, _holder_info(self.shard), 0)
        return self

    @contextlib.contextmanager
    def setup(self) -> Iterator[None]:
        """Serialise the set-up of the directory among shards (a no-op for a plain run)."""
        if self.shard is None:
            yield
            return
        fd = _lock_fd(self.directory / f"{self.name}.setup", exclusive=True, blocking=True)
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)

    def release(self, *, discard: bool = False) -> None:
        """Let the lock go.

        Parameters
        ----------
        discard : bool, optional
            Remove the directories :meth:`acquire` created (a run that failed on its inputs
            leaves nothing behind). Only a plain (exclusive) run does so.
        """
        if not self._fds:
            return
        if self.shard is not None and len(self._fds) > 1:
            with contextlib.suppress(OSError):
                self._shard_path().unlink()
        elif self.shard is None and discard and self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.shard is None and self.transient:
            with contextlib.suppress(OSError):
                self.path.unlink()
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()

    def remove_directory(self) -> None:
        """Delete the job directory (lock file included) while holding it exclusively."""
        if self.shard is not None or not self.held:
            raise RuntimeError("only the exclusive holder may remove a job directory")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> JobLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
