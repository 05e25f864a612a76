"""File plumbing shared by every layer: the download cache, job folders, atomic writes.

Everything a long job needs to write its results safely lives here (:mod:`.jobs`: atomic
writes, the run lock, fingerprints of models, genomes and inputs; :mod:`.jobdir`: the one
resumable job directory, :class:`JobDir`, and the sharding rule), shared by
``enformer predict`` (:mod:`enformer.inference.writers`) and ``enformer score``
(:mod:`enformer.variants.score`), and so does the one download cache (:mod:`.cache`) used
for weights and track sheets. This package imports only the standard library, numpy and
torch: nothing of enformer's other packages (ARCHITECTURE.md).
"""

from .cache import DownloadError, default_cache_dir, download, offline_reason, resolve_cache_dir
from .jobdir import JobDir, shard_units
from .progress import progress_bar
from .jobs import (
    JobLock,
    JobLockedError,
    atomic_path,
    file_fingerprint,
    genome_fingerprint,
    model_fingerprint,
    sequence_digest,
    settings_digest,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "DownloadError",
    "JobDir",
    "JobLock",
    "JobLockedError",
    "atomic_path",
    "default_cache_dir",
    "download",
    "file_fingerprint",
    "genome_fingerprint",
    "model_fingerprint",
    "offline_reason",
    "progress_bar",
    "resolve_cache_dir",
    "sequence_digest",
    "settings_digest",
    "shard_units",
    "write_bytes_atomic",
    "write_json_atomic",
]
