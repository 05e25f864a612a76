"""DNA strings <-> one-hot arrays, reverse complements and random sequences.

The one-hot layout used throughout the package is ``(L, 4)`` (or ``(B, L, 4)``) with the
columns in **A, C, G, T** order; ``N`` is a row of zeros. Encoding goes through a byte lookup
table, with no Python loop per base, so whole chromosomes encode in well under a second per
hundred megabases (the output array's memory is the limit, not the CPU).

Only numpy and torch are imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
import torch
from numpy.typing import DTypeLike

__all__ = [
    "ALPHABET",
    "COMPLEMENT",
    "decode",
    "first_invalid",
    "one_hot",
    "random_sequence",
    "reverse_complement",
    "reverse_complement_str",
    "validate_onehot",
]

logger = logging.getLogger(__name__)

ALPHABET = "ACGT"
"""Column order of the one-hot encoding."""

#: IUPAC ambiguity codes other than ``N`` (upper case).
IUPAC_AMBIGUOUS = "RYSWKMBDHV"

# Codes produced by the byte translation table.
_CODE_N = 4  # N: a row of zeros
_CODE_AMBIGUOUS = 5  # an IUPAC ambiguity code when ambiguous="error"
_CODE_INVALID = 6  # anything else


def _translation_table(ambiguous_as_n: bool) -> bytes:
    """256-byte table mapping each byte to a code 0..6 (see the ``_CODE_*`` constants)."""
    table = np.full(256, _CODE_INVALID, dtype=np.uint8)
    for i, base in enumerate(ALPHABET):
        table[ord(base)] = i
        table[ord(base.lower())] = i
    table[ord("N")] = table[ord("n")] = _CODE_N
    ambiguous_code = _CODE_N if ambiguous_as_n else _CODE_AMBIGUOUS
    for char in IUPAC_AMBIGUOUS:
        table[ord(char)] = table[ord(char.lower())] = ambiguous_code
    return table.tobytes()


_TABLES = {"error": _translation_table(False), "n": _translation_table(True)}

_PAIRS = {
    "A": "T", "C": "G", "G": "C", "T": "A", "N": "N",
    "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K",
    "B": "V", "V": "B", "D": "H", "H": "D",
}  # fmt: skip
COMPLEMENT = str.maketrans({**_PAIRS, **{k.lower(): v.lower() for k, v in _PAIRS.items()}})
"""The package's one DNA complement table, for :meth:`str.translate`: ``A<->T``, ``C<->G``,
``N`` stays, IUPAC codes map to their complements (``R<->Y``, ``K<->M``, ``B<->V``, ``D<->H``;
``S``, ``W`` stay), case is kept; other characters pass unchanged. ``seq.translate(COMPLEMENT)
[::-1]`` is the reverse complement (:func:`reverse_complement_str` also validates)."""
# Deleting every valid character leaves only the invalid ones.
_DELETE_VALID = str.maketrans("", "", "".join(_PAIRS) + "".join(_PAIRS).lower())

SeqLike = str | bytes | bytearray | memoryview
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def _as_bytes(seq: SeqLike, which: str) -> bytes | memoryview:
    """Return the sequence as ASCII bytes; non-ASCII characters raise a ValueError."""
    if isinstance(seq, str):
        try:
            return seq.encode("ascii")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"{which} contains {seq[err.start]!r} at position {err.start}; "
                "only A, C, G, T and N are allowed"
            ) from None
    if isinstance(seq, bytes | bytearray | memoryview):
        return seq
    raise TypeError(f"{which} must be str or bytes, not {type(seq).__name__}")


def _raise_bad_code(codes: np.ndarray, raw: np.ndarray, length: int, batched: bool) -> None:
    """Raise a ValueError describing the first base whose code is not A/C/G/T/N."""
    flat = int(np.argmax(codes > _CODE_N))
    char = chr(int(raw[flat]))
    if batched:
        where = f"sequence {flat // length} contains {char!r} at position {flat % length}"
    else:
        where = f"sequence contains {char!r} at position {flat}"
    if codes[flat] == _CODE_AMBIGUOUS:
        raise ValueError(
            f"{where}; this is an IUPAC ambiguity code: pass ambiguous='n' to encode it as N "
            "(all zeros), or replace it with one of A, C, G, T, N"
        )
    raise ValueError(f"{where}; only A, C, G, T and N are allowed")


def one_hot(
    seq: SeqLike | Sequence[SeqLike],
    dtype: DTypeLike = np.float32,
    *,
    ambiguous: Literal["error", "n"] = "error",
) -> np.ndarray:
    """One-hot encode DNA in A, C, G, T column order.

    Parameters
    ----------
    seq
        One sequence (``str``, ``bytes``, ``bytearray`` or ``memoryview``) or a sequence of
        them, all of the same length. Case is ignored.
    dtype
        Data type of the result (``np.float32`` by default; ``bool``, ``np.uint8`` and
        ``np.float16`` also work).
    ambiguous
        What to do with the IUPAC ambiguity codes ``R Y S W K M B D H V``: ``"error"``
        (the default) raises a ValueError, ``"n"`` encodes them like ``N``.

    Returns
    -------
    numpy.ndarray
        ``(L, 4)`` for one sequence, ``(B, L, 4)`` for a list of ``B`` sequences. ``N``
        (and ``n``) become rows of zeros.

    Raises
    ------
    ValueError
        If a character other than A, C, G, T, N (or an ambiguity code with
        ``ambiguous="n"``) occurs, naming the character and its 0-based position (and the
        sequence's index in a batch), or if the sequences of a batch differ in length.
    TypeError
        If ``seq`` is not a string, bytes or a sequence of them.

    Examples
    --------
    >>> one_hot("ACgTN").astype(int).tolist()
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    """
    if ambiguous not in _TABLES:
        raise ValueError(f"ambiguous must be 'error' or 'n', not {ambiguous!r}")
    table = _TABLES[ambiguous]
    lookup = np.zeros((_CODE_INVALID + 1, 4), dtype=dtype)
    lookup[np.arange(4), np.arange(4)] = 1

    batched = not isinstance(seq, str | bytes | bytearray | memoryview)
    if not batched:
        raw = _as_bytes(seq, "sequence")
        length = len(raw)
    else:
        if isinstance(seq, np.ndarray) and seq.dtype.kind in "SU":
            seq = seq.tolist()
        if not isinstance(seq, Sequence):
            raise TypeError(
                f"seq must be a string, bytes or a sequence of them, not {type(seq).__name__}"
            )
        parts = [_as_bytes(s, f"sequence {i}") for i, s in enumerate(seq)]
        lengths = {len(p) for p in parts}
        if len(lengths) > 1:
            first = len(parts[0])
            odd = next(i for i, p in enumerate(parts) if len(p) != first)
            raise ValueError(
                f"all sequences of a batch must have the same length: sequence 0 has {first} bp, "
                f"sequence {odd} has {len(parts[odd])} bp; pad or crop them first"
            )
        length = lengths.pop() if lengths else 0
        raw = b"".join(parts)

    raw_bytes = bytes(raw) if isinstance(raw, memoryview | bytearray) else raw
    codes = np.frombuffer(raw_bytes.translate(table), dtype=np.uint8)
    if codes.size and int(codes.max()) > _CODE_N:
        _raise_bad_code(codes, np.frombuffer(raw_bytes, dtype=np.uint8), length, batched)
    out = lookup.take(codes, axis=0)  # (B*L, 4)
    if batched:
        out = out.reshape(len(parts), length, 4)  # (B, L, 4)
    return out


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def validate_onehot(x: np.ndarray | torch.Tensor) -> None:
    """Check that ``x`` is one-hot DNA of shape ``(..., L, 4)``.

    Every value must be 0 or 1 and every row may hold at most one 1 (a row of zeros is
    ``N``).

    Parameters
    ----------
    x
        numpy array or torch tensor.

    Raises
    ------
    ValueError
        Naming the first offending position if the shape, a value or a row is wrong.
    """
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-1] != 4:
        raise ValueError(
            f"one-hot DNA must have shape (..., L, 4) with A, C, G, T columns, got {shape}; "
            "channels-first (B, 4, L) arrays must be transposed"
        )
    arr = _to_numpy(x)
    if arr.dtype != np.bool_:
        good = (arr == 0) | (arr == 1)
        if not good.all():
            pos = np.unravel_index(int(np.argmax(~good)), shape)
            raise ValueError(
                f"one-hot DNA must contain only 0 and 1; found {arr[pos]!r} at index "
                f"{tuple(int(p) for p in pos)}"
            )
    counts = arr.sum(axis=-1, dtype=np.int64)
    if counts.size and int(counts.max()) > 1:
        pos = np.unravel_index(int(np.argmax(counts > 1)), counts.shape)
        raise ValueError(
            f"one-hot DNA rows may hold at most one 1, but row {tuple(int(p) for p in pos)} "
            f"holds {int(counts[pos])}"
        )


def decode(onehot: np.ndarray | torch.Tensor) -> str | list[str]:
    """Turn one-hot DNA back into a string.

    Parameters
    ----------
    onehot
        ``(L, 4)`` or ``(B, L, 4)`` array or tensor in A, C, G, T order.

    Returns
    -------
    str or list of str
        One string for ``(L, 4)``, a list of ``B`` strings for ``(B, L, 4)``. Rows of zeros
        decode to ``'N'``.

    Raises
    ------
    ValueError
        If the input is not one-hot (see :func:`validate_onehot`) or has more than three
        dimensions.
    """
    validate_onehot(onehot)
    arr = _to_numpy(onehot)
    if arr.ndim > 3:
        raise ValueError(f"decode expects (L, 4) or (B, L, 4), got shape {arr.shape}")
    idx = np.argmax(arr, axis=-1)
    idx[~arr.any(axis=-1)] = _CODE_N
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)[idx]
    if arr.ndim == 2:
        return letters.tobytes().decode("ascii")
    return [row.tobytes().decode("ascii") for row in letters]


def reverse_complement(x: ArrayT) -> ArrayT:
    """Reverse-complement one-hot DNA of shape ``(..., L, 4)``.

    Reverses the length axis and the A, C, G, T axis (A, C, G, T reversed is T, G, C, A,
    which is the complement), so ``N`` rows stay zero.

    Parameters
    ----------
    x
        numpy array or torch tensor with the bases on the last axis.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type, shape, dtype (and device) as ``x``; a new contiguous array, never a view.

    Raises
    ------
    ValueError
        If the shape is not ``(..., L, 4)``.
    """
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-1] != 4:
        raise ValueError(f"expected one-hot DNA of shape (..., L, 4), got {shape}")
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(-2, -1))
    return np.ascontiguousarray(np.asarray(x)[..., ::-1, ::-1])


def reverse_complement_str(seq: str) -> str:
    """Reverse-complement a DNA string, keeping case.

    ``N`` stays ``N`` and IUPAC ambiguity codes map to their complements
    (``R<->Y``, ``K<->M``, ``B<->V``, ``D<->H``; ``S`` and ``W`` stay).

    Parameters
    ----------
    seq
        The sequence.

    Returns
    -------
    str
        The reverse complement.

    Raises
    ------
    ValueError
        If ``seq`` contains a character that is not a nucleotide code, naming it and its
        0-based position.
    """
    pos = first_invalid(seq)
    if pos is not None:
        raise ValueError(
            f"sequence contains {seq[pos]!r} at position {pos}; only A, C, G, T, N and IUPAC "
            "ambiguity codes are allowed"
        )
    return seq.translate(COMPLEMENT)[::-1]


def first_invalid(seq: str) -> int | None:
    """0-based position of the first character of ``seq`` that is not a nucleotide code (A, C,
    G, T, N or an IUPAC ambiguity code, either case), or ``None``; one C-level pass when the
    sequence is clean."""
    bad = seq.translate(_DELETE_VALID)
    return seq.index(bad[0]) if bad else None


def random_sequence(
    length: int, seed: int | np.random.Generator | None = None, gc: float = 0.5
) -> str:
    """Draw a random upper-case DNA string with independent bases.

    Parameters
    ----------
    length
        Number of bases.
    seed
        Seed or generator for :func:`numpy.random.default_rng`; ``None`` is not reproducible.
    gc
        Expected G+C fraction; C and G each have probability ``gc/2``, A and T ``(1-gc)/2``.

    Returns
    -------
    str
        A string of ``length`` characters from ``ACGT``.

    Raises
    ------
    ValueError
        If ``length`` is negative or ``gc`` lies outside ``[0, 1]``.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if not 0.0 <= gc <= 1.0:
        raise ValueError(f"gc must lie in [0, 1], got {gc}")
    rng = np.random.default_rng(seed)
    at, cg = (1.0 - gc) / 2, gc / 2
    idx = rng.choice(4, size=int(length), p=[at, cg, cg, at])
    return np.frombuffer(ALPHABET.encode("ascii"), dtype=np.uint8)[idx].tobytes().decode("ascii")
