"""Read (and write) Basenji/Enformer TFRecord files without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little-endian)
    uint32 masked CRC-32C of the 8 length bytes
    bytes  data[length]
    uint32 masked CRC-32C of the data

where ``masked(crc) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)``. Basenji,
Baskerville and the Enformer release write the whole file through one ZLIB stream
(``tf.io.TFRecordOptions(compression_type="ZLIB")``); GZIP streams and uncompressed files are
read too. Compression is detected from the first bytes of the file.

Each record is a serialised ``tf.train.Example`` protocol buffer. This module decodes the few
message types involved by hand (no ``protobuf`` package)::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }     # map entries: key = 1, value = 2
    Feature   { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                        Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }    # packed or not
    Int64List { repeated int64 value = 1 [packed]; }

Two record layouts are understood (DESIGN.md section 3), told apart by the byte length of the
``sequence`` feature:

* **one-hot** (Enformer's release, older Basenji): ``sequence`` is a ``(L, 4)`` bool/uint8
  one-hot array in A, C, G, T order, ``4 * L`` bytes.
* **indices** (Borzoi/Baskerville): ``sequence`` holds one uint8 per base, 0-3 for A, C, G, T
  and 4 for N, ``L`` bytes.

``target`` is float16 (or float32) bytes of shape ``(bins, tracks)``. The lengths come from the
data set's ``statistics.json`` (``seq_length``, ``target_length``, ``num_targets``), which
:func:`read_tfrecords` finds beside the files or one folder up.

CRC checking uses a table-driven CRC-32C vectorised with numpy over chunks of the record (about
0.1 GB/s, a few milliseconds per Basenji record); pass ``verify=False`` to skip it.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

__all__ = [
    "TFRecordStatistics",
    "crc32c",
    "decode_example",
    "encode_example",
    "encode_record",
    "iter_tfrecord",
    "masked_crc32c",
    "parse_example",
    "read_statistics",
    "read_tfrecords",
    "tfrecord_files",
    "write_tfrecord",
]

logger = logging.getLogger(__name__)

Compression = Literal["auto", "none", "zlib", "gzip"]
FeatureValue = list[bytes] | np.ndarray
"""A decoded feature: a list of byte strings, or a float32 / int64 numpy array."""

# ----------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli)
# ----------------------------------------------------------------------------------------------

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK32 = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8
_CHUNK = 256  # bytes per vectorised chunk
_VECTOR_MIN = 4096  # shorter inputs use the plain loop


def _make_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table[byte] = crc
    return table


_TABLE = _make_table()
_TABLE_LIST: list[int] = [int(v) for v in _TABLE]


def _crc_loop(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw CRC register over ``data`` one byte at a time."""
    table = _TABLE_LIST
    for byte in bytes(data):
        reg = table[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg


@lru_cache(maxsize=8)
def _zeros_operator(n: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """Byte tables of the linear map "advance the register over ``n`` zero bytes".

    The register update is linear over GF(2), so the map applied to a 32-bit value is the XOR
    of its action on the value's four bytes: ``op(r) = t0[r & 255] ^ t1[(r >> 8) & 255] ^ ...``.
    """
    values = (
        np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32))[:, None]
    ).ravel()  # (1024,): every byte value at every byte position
    for _ in range(n):
        values = _TABLE[values & 0xFF] ^ (values >> 8)
    rows = values.reshape(4, 256)
    return tuple(row.tolist() for row in rows)  # type: ignore[return-value]


def _crc_vector(reg: int, data: bytes | memoryview) -> int:
    """Advance the raw register over ``data`` using chunk-parallel numpy arithmetic.

    The data after a short head is cut into ``k`` chunks of ``_CHUNK`` bytes. Because the update
    is linear, ``f(r, C) = Z(r) ^ f(0, C)``, where ``Z`` advances over ``len(C)`` zero bytes:
    the ``f(0, C_i)`` of all chunks are computed together (one numpy step per byte position) and
    then folded in order with ``Z``.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    head = len(arr) % _CHUNK
    reg = _crc_loop(reg, arr[:head].tobytes())
    chunks = arr[head:].reshape(-1, _CHUNK).T.copy()  # (CHUNK, k): byte j of every chunk
    regs = np.zeros(chunks.shape[1], dtype=np.uint32)
    for column in chunks:
        regs = _TABLE[(regs ^ column) & 0xFF] ^ (regs >> 8)
    t0, t1, t2, t3 = _zeros_operator(_CHUNK)
    for part in regs.tolist():
        reg = t0[reg & 0xFF] ^ t1[(reg >> 8) & 0xFF] ^ t2[(reg >> 16) & 0xFF] ^ t3[reg >> 24] ^ part
    return reg


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32C (Castagnoli, as used by TFRecord) of ``data``.

    Parameters
    ----------
    data : bytes-like
        The bytes to checksum.
    value : int, optional
        CRC of preceding data, to continue a running checksum:
        ``crc32c(b, crc32c(a)) == crc32c(a + b)``.

    Returns
    -------
    int
        The checksum, ``0 <= crc < 2**32``; ``crc32c(b"123456789") == 0xE3069283``.
    """
    reg = ~value & _MASK32
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    if len(view) >= _VECTOR_MIN:
        reg = _crc_vector(reg, view)
    else:
        reg = _crc_loop(reg, view)
    return ~reg & _MASK32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """TFRecord's masked CRC-32C: the CRC rotated right by 15 bits plus ``0xA282EAD8``.

    Parameters
    ----------
    data : bytes-like
        The bytes to checksum.

    Returns
    -------
    int
        The masked checksum as stored in a TFRecord frame.
    """
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _MASK32


# ----------------------------------------------------------------------------------------------
# Framing and compression
# ----------------------------------------------------------------------------------------------

_READ_SIZE = 1 << 20


class _Source:
    """A file read as a (possibly decompressed) byte stream, with exact-size reads."""

    def __init__(self, handle: IO[bytes], compression: str) -> None:
        self._fh = handle
        self._wbits = {"zlib": 15, "gzip": 31}.get(compression)
        self._dec = zlib.decompressobj(self._wbits) if self._wbits else None
        self._buf = bytearray()
        self._pos = 0
        self._raw_done = False

    def _fill(self) -> bool:
        """Append more decompressed bytes to the buffer; False at the end of the file."""
        if self._dec is None:
            chunk = self._fh.read(_READ_SIZE)
            if not chunk:
                return False
            self._buf += chunk
            return True
        while True:
            if self._dec.eof:
                rest = self._dec.unused_data
                if not rest:
                    rest = self._fh.read(_READ_SIZE)
                if not rest:
                    return False
                # Concatenated streams (e.g. gzip members) are read one after another.
                self._dec = zlib.decompressobj(self._wbits)
                self._buf += self._dec.decompress(rest, _READ_SIZE * 4)
                return True
            raw = self._dec.unconsumed_tail or self._fh.read(_READ_SIZE)
            if not raw:
                self._raw_done = True
                return False
            out = self._dec.decompress(raw, _READ_SIZE * 4)
            if out:
                self._buf += out
                return True

    def read(self, n: int) -> bytes:
        """Return ``n`` bytes, or fewer at the end of the stream."""
        while len(self._buf) - self._pos < n and self._fill():
            pass
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += len(out)
        if self._pos > _READ_SIZE:
            del self._buf[: self._pos]
            self._pos = 0
        return out

    @property
    def truncated_stream(self) -> bool:
        """Whether the compressed stream ended without its end marker."""
        return self._dec is not None and not self._dec.eof and self._raw_done


def _detect_compression(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(12)
    if not head:
        return "none"
    if len(head) == 12:
        (stored,) = struct.unpack("<I", head[8:12])
        if stored == masked_crc32c(head[:8]):
            return "none"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    raise ValueError(
        f"{path} is not a TFRecord file: it is neither ZLIB- nor GZIP-compressed, and its first "
        "8 bytes are not a length with a valid masked CRC-32C"
    )


def iter_tfrecord(
    path: str | os.PathLike[str], *, compression: Compression = "auto", verify: bool = True
) -> Iterator[bytes]:
    """Yield the raw records (serialised protos) of one TFRecord file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    compression : {'auto', 'none', 'zlib', 'gzip'}, optional
        How the file is compressed; ``'auto'`` (the default) tells from its first bytes.
    verify : bool, optional
        Check the masked CRC-32C of every length and data field (default True).

    Yields
    ------
    bytes
        One record's payload.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is truncated or corrupt; the message names the file and the 0-based record
        number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TFRecord file not found: {path}")
    if compression == "auto":
        compression = _detect_compression(path)  # type: ignore[assignment]
    if compression not in ("none", "zlib", "gzip"):
        raise ValueError(
            f"compression must be 'auto', 'none', 'zlib' or 'gzip', not {compression!r}"
        )
    with open(path, "rb") as fh:
        source = _Source(fh, compression)
        number = 0
        while True:
            where = f"{path}, record {number} (0-based)"
            try:
                header = source.read(12)
                if not header:
                    break
                if len(header) < 12:
                    raise ValueError(
                        f"{where}: truncated file: {len(header)} bytes where a 12-byte record "
                        "header was expected"
                    )
                length, length_crc = struct.unpack("<QI", header)
                if verify and length_crc != masked_crc32c(header[:8]):
                    raise ValueError(
                        f"{where}: corrupt record header (length CRC mismatch); the file is "
                        "damaged or not a TFRecord file"
                    )
                payload = source.read(length + 4)
                if len(payload) < length + 4:
                    raise ValueError(
                        f"{where}: truncated file: the record declares {length:,} bytes but "
                        f"only {max(len(payload) - 4, 0):,} remain"
                    )
            except zlib.error as err:
                raise ValueError(f"{where}: corrupt {compression.upper()} stream ({err})") from None
            data = payload[:length]
            if verify:
                (data_crc,) = struct.unpack("<I", payload[length:])
                if data_crc != masked_crc32c(data):
                    raise ValueError(f"{where}: corrupt record data (CRC-32C mismatch)")
            yield data
            number += 1
        if source.truncated_stream:
            raise ValueError(
                f"{path}, after record {number - 1} (0-based): truncated file: the "
                f"{compression.upper()} stream ends without its end marker"
            )


def write_tfrecord(
    path: str | os.PathLike[str],
    records: Iterable[bytes],
    *,
    compression: Literal["none", "zlib", "gzip"] = "zlib",
) -> int:
    """Write serialised records as a TFRecord file (ZLIB-compressed by default, as Basenji).

    Parameters
    ----------
    path : str or os.PathLike
        Output file (overwritten).
    records : iterable of bytes
        Payloads, e.g. from :func:`encode_record`.
    compression : {'none', 'zlib', 'gzip'}, optional
        Stream compression.

    Returns
    -------
    int
        Number of records written.
    """
    wbits = {"none": None, "zlib": 15, "gzip": 31}[compression]
    comp = zlib.compressobj(6, zlib.DEFLATED, wbits) if wbits else None
    count = 0
    with open(path, "wb") as fh:
        for data in records:
            data = bytes(data)
            length = struct.pack("<Q", len(data))
            frame = b"".join(
                [
                    length,
                    struct.pack("<I", masked_crc32c(length)),
                    data,
                    struct.pack("<I", masked_crc32c(data)),
                ]
            )
            fh.write(comp.compress(frame) if comp else frame)
            count += 1
        if comp:
            fh.write(comp.flush())
    return count


# ----------------------------------------------------------------------------------------------
# Protocol buffers: tf.train.Example
# ----------------------------------------------------------------------------------------------


class _ProtoError(ValueError):
    """Malformed protocol buffer."""


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field number, wire type, value)`` of a message.

    The value is an int for varint and fixed-width fields and a memoryview for
    length-delimited ones.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _ProtoError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos, end)
        elif wire == 1:
            if pos + 8 > end:
                raise _ProtoError("truncated 64-bit field")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            size, pos = _read_varint(buf, pos, end)
            if pos + size > end:
                raise _ProtoError(
                    f"length-delimited field {number} declares {size} bytes, {end - pos} remain"
                )
            value = buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise _ProtoError("truncated 32-bit field")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise _ProtoError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_feature(buf: memoryview) -> FeatureValue:
    result: FeatureValue = []
    for number, wire, value in _fields(buf):
        if wire != 2 or number not in (1, 2, 3):
            continue  # unknown field: skipped, as protobuf parsers do
        if number == 1:  # BytesList
            result = [bytes(v) for n, w, v in _fields(value) if n == 1 and w == 2]
        elif number == 2:  # FloatList
            parts: list[np.ndarray] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    if len(v) % 4:
                        raise _ProtoError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(v, dtype="<f4"))
                elif w == 5:
                    parts.append(np.array([v], dtype="<u4").view("<f4"))
            result = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        else:  # Int64List
            ints: list[int] = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    pos = 0
                    while pos < len(v):
                        item, pos = _read_varint(v, pos, len(v))
                        ints.append(_signed64(item))
                elif w == 0:
                    ints.append(_signed64(v))
            result = np.array(ints, dtype=np.int64)
    return result


def parse_example(data: bytes | bytearray | memoryview) -> dict[str, FeatureValue]:
    """Decode a serialised ``tf.train.Example``.

    Parameters
    ----------
    data : bytes-like
        The record payload.

    Returns
    -------
    dict of str to (list of bytes or numpy.ndarray)
        Feature name to value: a list of byte strings for a ``BytesList``, a float32 array for a
        ``FloatList`` and an int64 array for an ``Int64List`` (an empty ``Feature`` gives an
        empty list). Arrays may be read-only views of ``data``.

    Raises
    ------
    ValueError
        If the bytes are not a valid ``Example``.
    """
    buf = memoryview(data).cast("B")
    features: dict[str, FeatureValue] = {}
    try:
        for number, wire, value in _fields(buf):
            if number != 1 or wire != 2:
                continue
            for n2, w2, entry in _fields(value):
                if n2 != 1 or w2 != 2:
                    continue
                key, feature = "", memoryview(b"")
                for n3, w3, v3 in _fields(entry):
                    if n3 == 1 and w3 == 2:
                        key = bytes(v3).decode("utf-8")
                    elif n3 == 2 and w3 == 2:
                        feature = v3
                features[key] = _parse_feature(feature)
    except UnicodeDecodeError as err:
        raise _ProtoError(f"feature name is not UTF-8 ({err})") from None
    return features


def _varint_bytes(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)) + payload


def encode_example(features: Mapping[str, bytes | Sequence[bytes] | np.ndarray]) -> bytes:
    """Serialise a ``tf.train.Example``.

    Parameters
    ----------
    features : mapping
        Feature name to value: ``bytes`` or a sequence of ``bytes`` (a ``BytesList``), a
        floating-point array (a packed ``FloatList``, stored as float32) or an integer array (a
        packed ``Int64List``).

    Returns
    -------
    bytes
        The serialised message, readable by TensorFlow and by :func:`parse_example`.
    """
    entries = []
    for key, value in features.items():
        if isinstance(value, bytes | bytearray | memoryview):
            inner = _delimited(1, _delimited(1, bytes(value)))
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            inner = _delimited(2, _delimited(1, value.astype("<f4").tobytes()))
        elif isinstance(value, np.ndarray) and value.dtype.kind in "iub":
            packed = b"".join(_varint_bytes(int(v)) for v in value.ravel())
            inner = _delimited(3, _delimited(1, packed))
        else:
            inner = _delimited(1, b"".join(_delimited(1, bytes(v)) for v in value))
        entry = _delimited(1, key.encode("utf-8")) + _delimited(2, inner)
        entries.append(_delimited(1, entry))
    return _delimited(1, b"".join(entries))


# ----------------------------------------------------------------------------------------------
# Basenji/Enformer records
# ----------------------------------------------------------------------------------------------

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
