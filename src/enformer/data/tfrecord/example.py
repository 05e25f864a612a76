"""``tf.train.Example`` protocol buffers, decoded and encoded by hand (no ``protobuf`` package).

The few message types involved::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }     # map entries: key = 1, value = 2
    Feature   { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                        Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed]; }    # packed or not
    Int64List { repeated int64 value = 1 [packed]; }
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FeatureValue", "encode_example", "parse_example"]

FeatureValue = list[bytes] | np.ndarray
"""A decoded feature: a list of byte strings, or a float32 / int64 numpy array."""


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
