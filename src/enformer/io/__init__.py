"""File I/O layer: atomic writes, job directories, fingerprints.

Everything a long job needs to write its results safely lives here, shared by
``enformer predict`` (:mod:`enformer.inference.writers`) and ``enformer score``
(:mod:`enformer.variants.score`). This package imports numpy, torch and :mod:`enformer.data`,
never the inference, variants, interpret, train or cli packages.
"""

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
