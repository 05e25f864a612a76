"""Result files of the interpretation tools: arrays plus metadata in HDF5 or NPZ, and BigWig.

:func:`write_arrays` is the one writer behind :func:`~enformer.interpret.write_attributions`
and :func:`~enformer.interpret.write_ism`: named arrays as datasets, metadata as HDF5
attributes (JSON text unless a plain string) or, in an NPZ, as one ``metadata`` JSON string.
Every file is written under a temporary name and moved into place, so a final name never
holds a partial file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io.jobs import atomic_path

__all__ = ["read_arrays", "write_arrays", "write_bigwig"]


def write_arrays(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
    *,
    what: str,
) -> Path:
    """Write ``arrays`` and ``metadata`` to ``.h5``/``.hdf5`` or ``.npz``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    arrays : mapping of str to numpy.ndarray
        Datasets.
    metadata : mapping
        JSON-ready settings (values that JSON cannot hold are written as text).
    what : str
        What the file holds, for the error on an unknown suffix (``'ISM'``, ...).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    suffix = path.suffix
    if suffix not in (".h5", ".hdf5", ".npz"):
        raise ValueError(f"unknown {what} file type {suffix!r}; use .h5 or .npz")
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            with open(tmp, "wb") as fh:
                text = json.dumps(dict(metadata), default=str)
                np.savez_compressed(fh, metadata=np.array(text), **arrays)
        else:
            import h5py

            with h5py.File(tmp, "w") as h5:
                for key, value in arrays.items():
                    h5.create_dataset(key, data=value)
                for key, value in metadata.items():
                    h5.attrs[key] = value if isinstance(value, str) else json.dumps(value)
    return path


def read_arrays(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`write_arrays`: ``(arrays, metadata)``.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz``, or an HDF5 file (any other suffix).

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The datasets.
    metadata : dict
        The metadata, JSON values decoded (attributes that are not JSON stay text).
    """
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        return arrays, json.loads(str(arrays.pop("metadata")))
    import h5py

    with h5py.File(path, "r") as h5:
        arrays = {k: h5[k][()] for k in h5}
        meta = {}
        for k, v in h5.attrs.items():
            try:
                meta[k] = json.loads(v)
            except (TypeError, ValueError):
                meta[k] = v
    return arrays, meta


def write_bigwig(
    path: str | os.PathLike[str],
    chrom: str,
    start: int,
    values: np.ndarray,
    chrom_sizes: dict[str, int],
) -> Path:
    """Write per-base values of a window as a BigWig file (atomically).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.bw`` file.
    chrom : str
        Chromosome of the window.
    start : int
        0-based genomic position of ``values[0]``; bases outside the chromosome are dropped.
    values : numpy.ndarray
        ``(L,)`` per-base values.
    chrom_sizes : dict of str to int
        Chromosome lengths for the header (in the genome's order).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    import pyBigWig

    if chrom not in chrom_sizes:
        raise ValueError(f"chromosome {chrom!r} is not in the genome's chromosome sizes")
    values = np.asarray(values, dtype=np.float64)
    lo = max(0, -start)
    hi = min(len(values), chrom_sizes[chrom] - start)
    path = Path(path)
    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        try:
            bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
            if hi > lo:
                bw.addEntries(chrom, start + lo, values=values[lo:hi], span=1, step=1)
        finally:
            bw.close()
    return path
