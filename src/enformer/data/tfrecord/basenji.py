"""Basenji/Enformer TFRecord data sets: record layouts, ``statistics.json`` and file globs.

Two record layouts are understood (Basenji's and Borzoi's), told apart by the byte length of the
``sequence`` feature:

* **one-hot** (Enformer's release, older Basenji): ``sequence`` is a ``(L, 4)`` bool/uint8
  one-hot array in A, C, G, T order, ``4 * L`` bytes.
* **indices** (Borzoi/Baskerville): ``sequence`` holds one uint8 per base, 0-3 for A, C, G, T
  and 4 for N, ``L`` bytes.

``target`` is float16 (or float32) bytes of shape ``(bins, tracks)``. The lengths come from the
data set's ``statistics.json`` (``seq_length``, ``target_length``, ``num_targets``), which
:func:`read_tfrecords` finds beside the files or one folder up.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .example import FeatureValue, encode_example, parse_example
from .records import Compression, iter_tfrecord

logger = logging.getLogger(__name__)

Layout = Literal["auto", "onehot", "indices"]

# uint8 base index (0-3 ACGT, 4 N) -> one-hot row; anything above 4 is rejected earlier.
_INDEX_TO_ONEHOT = np.vstack([np.eye(4, dtype=np.uint8), np.zeros((1, 4), np.uint8)])


@dataclass(frozen=True)
class TFRecordStatistics:
    """Shapes of a Basenji-style data set, as in its ``statistics.json``.

    Attributes
    ----------
    seq_length : int or None
        Bases per record's sequence.
    target_length : int or None
        Target bins per record.
    num_targets : int or None
        Tracks per record.
    pool_width : int or None
        Bases per target bin.
    crop_bp : int or None
        Bases on each side of the sequence with no targets.
    counts : dict of str to int
        Records per split (``train_seqs`` etc. as ``{"train": 45, ...}``).
    raw : dict
        The whole JSON object.
    """

    seq_length: int | None = None
    target_length: int | None = None
    num_targets: int | None = None
    pool_width: int | None = None
    crop_bp: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def read_statistics(path: str | os.PathLike[str]) -> TFRecordStatistics:
    """Read a Basenji ``statistics.json``.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file, or the data folder holding it.

    Returns
    -------
    TFRecordStatistics
        The shapes it declares (missing keys are None).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a JSON object or a shape is not a positive integer.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "statistics.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"statistics file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} should hold a JSON object, got {type(raw).__name__}")
    values: dict[str, int | None] = {}
    for key in ("seq_length", "target_length", "num_targets", "pool_width", "crop_bp"):
        value = raw.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"{path}: {key!r} should be a non-negative integer, got {value!r}")
        values[key] = value
    counts = {
        key[: -len("_seqs")]: int(value)
        for key, value in raw.items()
        if key.endswith("_seqs") and isinstance(value, int)
    }
    return TFRecordStatistics(**values, counts=counts, raw=raw)


def _single_bytes(features: Mapping[str, FeatureValue], key: str) -> bytes | np.ndarray:
    if key not in features:
        raise ValueError(f"the example has no {key!r} feature (it has: {', '.join(features)})")
    value = features[key]
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"feature {key!r} should hold one byte string, got {len(value)}")
        return value[0]
    return value


def _decode_sequence(raw: bytes | np.ndarray, seq_length: int | None, layout: Layout) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        raise ValueError(f"feature 'sequence' should be a byte string, got a {raw.dtype} list")
    codes = np.frombuffer(raw, dtype=np.uint8)
    n = len(codes)
    if layout == "auto":
        if seq_length is not None:
            if n == seq_length:
                layout = "indices"
            elif n == 4 * seq_length:
                layout = "onehot"
            else:
                raise ValueError(
                    f"'sequence' has {n:,} bytes; expected {seq_length:,} (uint8 base indices) "
                    f"or {4 * seq_length:,} (one-hot) for seq_length {seq_length:,}"
                )
        elif (
            n % 4 == 0
            and n
            and int(codes.max()) <= 1
            and int(codes.reshape(-1, 4).sum(1).max()) <= 1
        ):
            layout = "onehot"
        else:
            layout = "indices"
    if layout == "onehot":
        if n % 4:
            raise ValueError(f"one-hot 'sequence' has {n:,} bytes, not a multiple of 4")
        onehot = codes.reshape(-1, 4)
        if n and int(codes.max()) > 1:
            raise ValueError("one-hot 'sequence' holds values other than 0 and 1")
        if seq_length is not None and len(onehot) != seq_length:
            raise ValueError(f"'sequence' has {len(onehot):,} bases, expected {seq_length:,}")
        return onehot.copy()
    if layout != "indices":
        raise ValueError(f"layout must be 'auto', 'onehot' or 'indices', not {layout!r}")
    if n and int(codes.max()) > 4:
        pos = int(np.argmax(codes > 4))
        raise ValueError(
            f"'sequence' byte {pos} is {int(codes[pos])}; base indices must be 0-3 (A, C, G, T) "
            "or 4 (N)"
        )
    if seq_length is not None and n != seq_length:
        raise ValueError(f"'sequence' has {n:,} bases, expected {seq_length:,}")
    return _INDEX_TO_ONEHOT[codes]


def _decode_target(
    raw: bytes | np.ndarray, target_length: int | None, num_targets: int | None
) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        values = raw.astype(np.float32)
    else:
        n = len(raw)
        itemsize = 2
        if target_length is not None and num_targets is not None:
            expected = target_length * num_targets
            if n == 4 * expected:
                itemsize = 4
            elif n != 2 * expected:
                raise ValueError(
                    f"'target' has {n:,} bytes; expected {2 * expected:,} (float16) or "
                    f"{4 * expected:,} (float32) for ({target_length}, {num_targets}) targets"
                )
        if n % itemsize:
            raise ValueError(f"'target' has {n:,} bytes, not a whole number of float16 values")
        values = np.frombuffer(raw, dtype="<f2" if itemsize == 2 else "<f4").astype(np.float32)
    size = values.size
    if num_targets is None and target_length is None:
        raise ValueError(
            "cannot tell the target shape: give num_targets or target_length (or a "
            "statistics.json beside the files)"
        )
    if num_targets is None:
        num_targets = size // target_length if target_length else 0
    if target_length is None:
        target_length = size // num_targets if num_targets else 0
    if target_length * num_targets != size:
        raise ValueError(f"'target' holds {size:,} values, not ({target_length}, {num_targets})")
    return values.reshape(target_length, num_targets)


def decode_example(
    features: Mapping[str, FeatureValue],
    *,
    seq_length: int | None = None,
    target_length: int | None = None,
    num_targets: int | None = None,
    layout: Layout = "auto",
) -> dict[str, np.ndarray]:
    """Turn a parsed Basenji/Enformer example into arrays.

    Parameters
    ----------
    features : mapping
        Output of :func:`parse_example`, with ``sequence`` and ``target`` features.
    seq_length, target_length, num_targets : int, optional
        Expected shapes (from ``statistics.json``). ``seq_length`` tells the layouts apart
        exactly; without it a sequence whose bytes are all 0/1 with at most one 1 per group of
        four is taken as one-hot. The target needs ``num_targets`` or ``target_length``.
    layout : {'auto', 'onehot', 'indices'}, optional
        Force a sequence layout instead of detecting it.

    Returns
    -------
    dict
        ``sequence``: uint8 ``(L, 4)`` one-hot (N is all zeros); ``target``: float32
        ``(bins, tracks)``.

    Raises
    ------
    ValueError
        If a feature is missing or its size does not fit the shapes.
    """
    sequence = _decode_sequence(_single_bytes(features, "sequence"), seq_length, layout)
    target = _decode_target(_single_bytes(features, "target"), target_length, num_targets)
    return {"sequence": sequence, "target": target}


def encode_record(
    sequence: np.ndarray,
    target: np.ndarray,
    *,
    layout: Literal["onehot", "indices"] = "indices",
    target_dtype: type[np.floating] = np.float16,
) -> bytes:
    """Serialise one Basenji-style example.

    Parameters
    ----------
    sequence : numpy.ndarray
        ``(L, 4)`` one-hot DNA (rows of zeros are N).
    target : numpy.ndarray
        ``(bins, tracks)`` values.
    layout : {'onehot', 'indices'}, optional
        ``'indices'`` (Borzoi/Baskerville, the default) stores one byte 0-4 per base;
        ``'onehot'`` (Enformer's release) stores the ``(L, 4)`` array as bytes.
    target_dtype : numpy float type, optional
        Stored target precision (float16 as in Basenji).

    Returns
    -------
    bytes
        A ``tf.train.Example`` with ``sequence`` and ``target`` byte features.
    """
    onehot = np.asarray(sequence)
    if onehot.ndim != 2 or onehot.shape[1] != 4:
        raise ValueError(f"sequence must be (L, 4) one-hot, got shape {onehot.shape}")
    if layout == "onehot":
        seq_bytes = onehot.astype(np.bool_).astype(np.uint8).tobytes()
    elif layout == "indices":
        idx = np.argmax(onehot, axis=1).astype(np.uint8)
        idx[~onehot.astype(bool).any(axis=1)] = 4
        seq_bytes = idx.tobytes()
    else:
        raise ValueError(f"layout must be 'onehot' or 'indices', not {layout!r}")
    tgt_bytes = np.asarray(target, dtype=np.dtype(target_dtype).newbyteorder("<")).tobytes()
    return encode_example({"sequence": seq_bytes, "target": tgt_bytes})


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def tfrecord_files(pattern: str | os.PathLike[str]) -> list[Path]:
    """List TFRecord files in natural order (``train-2.tfr`` before ``train-10.tfr``).

    Parameters
    ----------
    pattern : str or os.PathLike
        A file, a folder (its ``*.tfr`` files) or a glob pattern.

    Returns
    -------
    list of pathlib.Path
        The matching files.

    Raises
    ------
    FileNotFoundError
        If nothing matches.
    """
    path = Path(pattern)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in path.iterdir() if p.name.endswith((".tfr", ".tfrecord", ".tfrecords"))]
    else:
        files = [Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file()]
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {str(pattern)!r}")
    return sorted(files, key=lambda p: (str(p.parent), _natural_key(p)))


def _find_statistics(files: Sequence[Path]) -> TFRecordStatistics | None:
    for folder in (files[0].parent, files[0].parent.parent):
        candidate = folder / "statistics.json"
        if candidate.is_file():
            logger.debug("using %s for record shapes", candidate)
            return read_statistics(candidate)
    return None


def read_tfrecords(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    statistics: str | os.PathLike[str] | TFRecordStatistics | None = None,
    seq_length: int | None = None,
    target_length: int | None = None,
    num_targets: int | None = None,
    layout: Layout = "auto",
    compression: Compression = "auto",
    verify: bool = True,
) -> Iterator[dict[str, np.ndarray]]:
    """Read Basenji/Enformer TFRecords as numpy arrays, without TensorFlow.

    Parameters
    ----------
    paths : path, glob pattern, folder, or iterable of them
        TFRecord files, read in the given order; a folder or a pattern expands to its files in
        natural order (``train-2.tfr`` before ``train-10.tfr``).
    statistics : path or TFRecordStatistics, optional
        The data set's ``statistics.json`` (or its folder). By default it is looked for beside
        the first file and one folder up (Basenji's ``data_dir/tfrecords/*.tfr`` layout).
    seq_length, target_length, num_targets : int, optional
        Override the shapes of the statistics.
    layout : {'auto', 'onehot', 'indices'}, optional
        Sequence layout; detected from the byte length by default.
    compression : {'auto', 'none', 'zlib', 'gzip'}, optional
        File compression; detected by default.
    verify : bool, optional
        Check every record's CRC-32C (default True; costs a few ms per Basenji record).

    Yields
    ------
    dict
        ``sequence``: uint8 one-hot ``(L, 4)`` (A, C, G, T; N is all zeros); ``target``:
        float32 ``(bins, tracks)``.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is truncated or corrupt or a record does not fit the shapes; the message names
        the file and the 0-based record number.
    """
    if isinstance(paths, str | os.PathLike):
        files = tfrecord_files(paths)
    else:
        files = [f for p in paths for f in tfrecord_files(p)]
    if not files:
        return
    if statistics is None:
        stats = _find_statistics(files)
    elif isinstance(statistics, TFRecordStatistics):
        stats = statistics
    else:
        stats = read_statistics(statistics)
    if stats is not None:
        seq_length = seq_length if seq_length is not None else stats.seq_length
        target_length = target_length if target_length is not None else stats.target_length
        num_targets = num_targets if num_targets is not None else stats.num_targets
    for path in files:
        for number, data in enumerate(iter_tfrecord(path, compression=compression, verify=verify)):
            try:
                record = decode_example(
                    parse_example(data),
                    seq_length=seq_length,
                    target_length=target_length,
                    num_targets=num_targets,
                    layout=layout,
                )
            except ValueError as err:
                raise ValueError(f"{path}, record {number} (0-based): {err}") from None
            yield record
