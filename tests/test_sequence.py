"""One-hot encoding, decoding, reverse complements and random sequences."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pytest
import torch

from enformer.data.sequence import (
    ALPHABET,
    decode,
    one_hot,
    random_sequence,
    reverse_complement,
    reverse_complement_str,
    validate_onehot,
)

EYE = np.eye(4, dtype=np.float32)


# ----------------------------------------------------------------------------- one_hot
def test_one_hot_known_values_acgt_order():
    x = one_hot("ACGTN")
    assert x.shape == (5, 4)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, np.vstack([EYE, np.zeros((1, 4), np.float32)]))


def test_one_hot_is_case_insensitive_and_n_is_zero():
    np.testing.assert_array_equal(one_hot("acgtn"), one_hot("ACGTN"))
    np.testing.assert_array_equal(one_hot("nNnN"), np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8, bool])
def test_one_hot_dtype(dtype):
    x = one_hot("GATTACA", dtype=dtype)
    assert x.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(x.astype(np.float32), one_hot("GATTACA"))


@pytest.mark.parametrize("convert", [str.encode, lambda s: bytearray(s, "ascii"),
                                     lambda s: memoryview(s.encode())])  # fmt: skip
def test_one_hot_accepts_bytes_like(convert):
    seq = "ACGTNacgtn"
    np.testing.assert_array_equal(one_hot(convert(seq)), one_hot(seq))


def test_one_hot_batch():
    seqs = ["ACGT", "TTNA", "gggg"]
    x = one_hot(seqs)
    assert x.shape == (3, 4, 4)
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(x[i], one_hot(s))
    np.testing.assert_array_equal(one_hot(np.array(seqs)), x)
    np.testing.assert_array_equal(one_hot(tuple(s.encode() for s in seqs)), x)


def test_one_hot_empty_inputs():
    assert one_hot("").shape == (0, 4)
    assert one_hot([]).shape == (0, 0, 4)
    assert one_hot(["", ""]).shape == (2, 0, 4)


def test_one_hot_error_names_character_position_and_fix():
    seq = "ACGTACGTACGTX"
    with pytest.raises(ValueError) as info:
        one_hot(seq)
    assert str(info.value) == (
        "sequence contains 'X' at position 12; only A, C, G, T and N are allowed"
    )


@pytest.mark.parametrize(
    ("seq", "char", "pos"),
    [("AC-GT", "'-'", 2), ("ACGT\n", "'\\n'", 4), ("ACU", "'U'", 2), ("AAé", "'é'", 2),
     ("AC GT", "' '", 2)],
)  # fmt: skip
def test_one_hot_rejects_other_characters(seq, char, pos):
    with pytest.raises(ValueError, match=re.escape(f"contains {char} at position {pos};")):
        one_hot(seq)


def test_one_hot_batch_error_names_sequence():
    with pytest.raises(ValueError, match=r"^sequence 1 contains 'Z' at position 2;"):
        one_hot(["ACGT", "ACZT"])
    with pytest.raises(ValueError, match=r"^sequence 1 contains 'é' at position 0;"):
        one_hot(["ACGT", "éCGT"])


def test_one_hot_batch_length_mismatch():
    with pytest.raises(ValueError, match="sequence 0 has 4 bp, sequence 2 has 3 bp"):
        one_hot(["ACGT", "ACGT", "ACG"])


def test_one_hot_ambiguity_codes():
    with pytest.raises(ValueError, match="'R' at position 1; this is an IUPAC ambiguity code"):
        one_hot("ARGT")
    with pytest.raises(ValueError, match="ambiguous='n'"):
        one_hot("acgy")
    x = one_hot("ARYSWKMBDHVNrysw", ambiguous="n")
    np.testing.assert_array_equal(x[0], EYE[0])
    assert not x[1:].any()
    # Non-IUPAC letters stay errors even with ambiguous="n".
    with pytest.raises(ValueError, match="'X' at position 1; only A, C, G, T and N"):
        one_hot("AX", ambiguous="n")
    with pytest.raises(ValueError, match="ambiguous must be"):
        one_hot("A", ambiguous="drop")  # type: ignore[arg-type]


def test_one_hot_type_errors():
    with pytest.raises(TypeError):
        one_hot(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence 1 must be str or bytes"):
        one_hot(["ACGT", 7])  # type: ignore[list-item]


def test_one_hot_matches_index_encoding():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 5, size=10_000)
    seq = np.frombuffer(b"ACGTN", np.uint8)[idx].tobytes().decode()
    expected = np.vstack([EYE, np.zeros((1, 4), np.float32)])[idx]
    np.testing.assert_array_equal(one_hot(seq), expected)


def test_one_hot_speed_sanity():
    seq = random_sequence(196_608, seed=0)
    start = time.perf_counter()
    x = one_hot(seq)
    elapsed = time.perf_counter() - start
    assert x.shape == (196_608, 4)
    logging.getLogger(__name__).info("one_hot of 196,608 bp took %.4f s", elapsed)


# ----------------------------------------------------------------------------- decode
def test_decode_round_trip():
    rng = np.random.default_rng(0)
    seq = np.frombuffer(b"ACGTN", np.uint8)[rng.integers(0, 5, size=5_000)].tobytes().decode()
    assert decode(one_hot(seq)) == seq
    assert decode(one_hot(seq.lower())) == seq
    assert decode(torch.from_numpy(one_hot(seq))) == seq
    assert decode(one_hot(seq, dtype=bool)) == seq


def test_decode_batch_and_empty():
    seqs = ["ACGTN", "NNNNA"]
    assert decode(one_hot(seqs)) == seqs
    assert decode(np.zeros((0, 4))) == ""


def test_decode_rejects_non_onehot():
    x = one_hot("ACGT")
    x[2, 0] = 1  # two ones in row 2
    with pytest.raises(ValueError, match=r"row \(2,\) holds 2"):
        decode(x)
    y = one_hot("ACGT")
    y[1, 1] = 0.5
    with pytest.raises(ValueError, match=r"only 0 and 1; found .*0\.5.* at index \(1, 1\)"):
        decode(y)
    with pytest.raises(ValueError, match="expects"):
        decode(np.zeros((1, 1, 3, 4)))


# ----------------------------------------------------------------------------- validate
def test_validate_onehot_accepts_valid():
    validate_onehot(one_hot("ACGTN"))
    validate_onehot(one_hot(["ACGTN", "NNNNN"], dtype=bool))
    validate_onehot(torch.from_numpy(one_hot("ACGTN")))


def test_validate_onehot_errors():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., L, 4\).*got \(2, 4, 10\).*transposed"):
        validate_onehot(np.zeros((2, 4, 10)))
    with pytest.raises(ValueError, match="got \\(4,\\)"):
        validate_onehot(np.zeros(4))
    bad = one_hot(["ACGT", "ACGT"])
    bad[1, 3, 2] = 2.0
    with pytest.raises(ValueError, match=r"found .*2\.0.* at index \(1, 3, 2\)"):
        validate_onehot(bad)
    nan = one_hot("AC")
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="only 0 and 1"):
        validate_onehot(torch.from_numpy(nan))
    multi = one_hot(["ACGT", "ACGT"])
    multi[1, 2] = 1
    with pytest.raises(ValueError, match=r"at most one 1, but row \(1, 2\) holds 4"):
        validate_onehot(multi)


# ----------------------------------------------------------------------------- reverse complement
def test_reverse_complement_str_known():
    assert reverse_complement_str("AACGTN") == "NACGTT"
    assert reverse_complement_str("GATTACA") == "TGTAATC"
    assert reverse_complement_str("acgtnACGTN") == "NACGTnacgt"
    assert reverse_complement_str("RYKMBVDHSW") == "WSDHBVKMRY"
    assert reverse_complement_str("") == ""


def test_reverse_complement_str_involution_and_error():
    seq = random_sequence(1_000, seed=3)
    assert reverse_complement_str(reverse_complement_str(seq)) == seq
    with pytest.raises(ValueError, match="contains 'X' at position 2"):
        reverse_complement_str("ACXGT")


def test_reverse_complement_onehot_known_string():
    x = one_hot("AACGTN")
    rc = reverse_complement(x)
    assert decode(rc) == "NACGTT"
    np.testing.assert_array_equal(rc, one_hot(reverse_complement_str("AACGTN")))


def test_reverse_complement_involution_numpy_and_torch():
    x = one_hot([random_sequence(257, seed=s) for s in range(3)])
    rc = reverse_complement(x)
    assert rc.flags["C_CONTIGUOUS"]
    assert not np.shares_memory(rc, x)
    np.testing.assert_array_equal(reverse_complement(rc), x)
    assert decode(rc) == [reverse_complement_str(s) for s in decode(x)]

    t = torch.from_numpy(x).to(torch.float64)
    trc = reverse_complement(t)
    assert isinstance(trc, torch.Tensor) and trc.dtype == torch.float64
    np.testing.assert_array_equal(trc.numpy(), rc)
    assert torch.equal(reverse_complement(trc), t)


def test_reverse_complement_shape_error():
    with pytest.raises(ValueError, match="shape"):
        reverse_complement(np.zeros((10, 5)))
    with pytest.raises(ValueError, match="shape"):
        reverse_complement(torch.zeros(4))


# ----------------------------------------------------------------------------- random
def test_random_sequence():
    s = random_sequence(10_000, seed=7)
    assert len(s) == 10_000 and set(s) <= set(ALPHABET)
    assert random_sequence(10_000, seed=7) == s
    assert random_sequence(10_000, seed=8) != s
    gc = (s.count("G") + s.count("C")) / len(s)
    assert abs(gc - 0.5) < 0.03
    rich = random_sequence(10_000, seed=7, gc=0.8)
    assert abs((rich.count("G") + rich.count("C")) / 10_000 - 0.8) < 0.03
    assert set(random_sequence(500, seed=1, gc=0.0)) == {"A", "T"}
    assert set(random_sequence(500, seed=1, gc=1.0)) == {"C", "G"}
    assert random_sequence(0, seed=0) == ""
    rng = np.random.default_rng(0)
    assert len(random_sequence(5, seed=rng)) == 5


def test_random_sequence_errors():
    with pytest.raises(ValueError, match="length"):
        random_sequence(-1, seed=0)
    with pytest.raises(ValueError, match="gc"):
        random_sequence(10, seed=0, gc=1.5)
