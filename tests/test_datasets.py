"""TFRecord reading, datasets and augmentation, checked against the real shared files.

The shared ``basenji_tiny_hg38`` folder holds 65 Baskerville records (45 train, 10 valid, 10
test; sequences as uint8 base indices, targets float16 (2048, 74) in 32-bp bins). The subset
genome carries each record's bases at ``[bed_start - 32768, bed_end + 32768)`` and six of the
74 tracks are in ``tracks/*.bw`` as 32-bp fixed-step bigWigs holding the records' target values.
"""

from __future__ import annotations

import csv
import logging
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from enformer.data.datasets import (
    ArrayDataset,
    AugmentedDataset,
    BigWigDataset,
    TFRecordDataset,
    augment,
    make_generator,
    pool_bins,
    reverse_complement_sample,
    shift_sequence,
    summarize_coverage,
    worker_init_fn,
)
from enformer.data.genome import Genome, Interval, read_bed
from enformer.data.sequence import decode, one_hot, reverse_complement_str
from enformer.data.tfrecord import (
    crc32c,
    decode_example,
    encode_example,
    encode_record,
    iter_tfrecord,
    masked_crc32c,
    parse_example,
    read_statistics,
    read_tfrecords,
    tfrecord_files,
    write_tfrecord,
)
from enformer.data.tracks import TrackSheet

SPLITS = {"train": 45, "valid": 10, "test": 10}
SEQ_LEN, CROP, BINS, TRACKS = 131_072, 32_768, 2048, 74


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(shared_data: Path) -> Path:
    return shared_data / "basenji_tiny_hg38"


@pytest.fixture(scope="module")
def fasta(shared_data: Path) -> Path:
    return shared_data / "genome" / "hg38_subset.fa.gz"


@pytest.fixture(scope="module")
def records(tiny_dir: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """All records of every split, read once."""
    out = {}
    for split in SPLITS:
        out[split] = list(read_tfrecords(tiny_dir / "tfrecords" / f"{split}-*.tfr"))
    return out


@pytest.fixture(scope="module")
def bed(tiny_dir: Path) -> dict[str, list[Interval]]:
    intervals = read_bed(tiny_dir / "sequences.bed")
    return {split: [iv for iv in intervals if iv.name == split] for split in SPLITS}


@pytest.fixture(scope="module")
def tracks_rows(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "tracks" / "tracks.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def tiny_sheet(tiny_dir: Path) -> TrackSheet:
    return TrackSheet.read(tiny_dir / "targets.txt")


@pytest.fixture(scope="module")
def valid_ds(tiny_dir: Path) -> TFRecordDataset:
    return TFRecordDataset(tiny_dir, "valid")


def _identity_sheet(rows: list[dict[str, str]], path: Path, files: list[str] | None = None) -> Path:
    """A Basenji sheet over the tracks.tsv bigWigs that passes their values through unchanged.

    The shared bigWigs already hold the records' processed targets, one value per 32-bp
    fixed-step entry. With ``sum_stat = mean`` over 32-bp bins, ``scale = 1`` and no clipping,
    summarize_coverage returns each entry's value (computed in float64, so exactly).
    """
    position = {int(r["target_index"]): i for i, r in enumerate(rows)}
    lines = ["\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription"]
    for i, row in enumerate(rows):
        pair = position.get(int(row["strand_pair_index"]), i)
        file = files[i] if files is not None else row["file"]
        lines.append(
            f"{i}\t{row['identifier']}\t{file}\t\t\t1.0\tmean\t{pair}\t"
            f"{row['assay']}:{row['description']}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# CRC-32C, protobuf, framing
# --------------------------------------------------------------------------------------------


def test_crc32c_known_values():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0
    # The chunk-parallel path agrees with the byte loop and chains like the plain CRC.
    data = np.random.default_rng(0).integers(0, 256, 70_001, dtype=np.uint8).tobytes()
    short = 0
    for start in range(0, len(data), 3000):  # each piece < 4096 bytes: byte loop
        short = crc32c(data[start : start + 3000], short)
    assert crc32c(data) == short
    assert crc32c(data[5000:], crc32c(data[:5000])) == short
    assert crc32c(bytearray(data)) == crc32c(memoryview(data)) == short
    crc = crc32c(b"abc")
    assert masked_crc32c(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_protobuf_features_roundtrip():
    floats = np.array([1.5, -2.25, 3e-5], dtype=np.float32)
    ints = np.array([0, 1, -1, 2**40, -(2**62)], dtype=np.int64)
    data = encode_example(
        {"name": b"abc", "many": [b"x", b"", b"yz"], "f": floats, "i": ints, "empty": []}
    )
    parsed = parse_example(data)
    assert parsed["name"] == [b"abc"] and parsed["many"] == [b"x", b"", b"yz"]
    np.testing.assert_array_equal(parsed["f"], floats)
    assert parsed["f"].dtype == np.float32
    np.testing.assert_array_equal(parsed["i"], ints)
    assert parsed["i"].dtype == np.int64
    assert parsed["empty"] == []


def test_protobuf_unpacked_lists_and_unknown_fields():
    # Hand-written Example: FloatList and Int64List *unpacked* (one tag per value), plus an
    # unknown varint field at every level, which must be skipped.
    def delim(number: int, payload: bytes) -> bytes:
        assert len(payload) < 128
        return bytes([number << 3 | 2, len(payload)]) + payload

    unknown = bytes([7 << 3 | 0, 42])
    float_list = b"".join(bytes([1 << 3 | 5]) + struct.pack("<f", v) for v in (0.5, -1.0))
    int_list = bytes([1 << 3 | 0, 5, 1 << 3 | 0]) + b"\xfe" + b"\xff" * 8 + b"\x01"  # 5, -2
    features = delim(1, delim(1, b"a") + delim(2, delim(2, float_list) + unknown) + unknown)
    features += delim(1, delim(1, b"b") + delim(2, delim(3, int_list)))
    example = delim(1, features + unknown) + unknown
    parsed = parse_example(example)
    np.testing.assert_array_equal(parsed["a"], [0.5, -1.0])
    np.testing.assert_array_equal(parsed["b"], [5, -2])


def test_protobuf_errors():
    with pytest.raises(ValueError, match="declares"):
        parse_example(b"\x0a\x05\x0a")  # length 5, 1 byte present
    with pytest.raises(ValueError, match="varint"):
        parse_example(b"\x08\xff")
    with pytest.raises(ValueError, match="wire type"):
        parse_example(b"\x0b")  # group start


# --------------------------------------------------------------------------------------------
# Real TFRecords
# --------------------------------------------------------------------------------------------


@pytest.mark.shared
def test_real_records_counts_and_shapes(records, tiny_dir: Path):
    assert {split: len(recs) for split, recs in records.items()} == SPLITS
    stats = read_statistics(tiny_dir)
    assert (stats.seq_length, stats.target_length, stats.num_targets) == (SEQ_LEN, BINS, TRACKS)
    assert (stats.pool_width, stats.crop_bp) == (32, CROP)
    assert stats.counts == SPLITS
    for recs in records.values():
        for rec in recs:
            assert rec["sequence"].shape == (SEQ_LEN, 4) and rec["sequence"].dtype == np.uint8
            assert rec["target"].shape == (BINS, TRACKS) and rec["target"].dtype == np.float32
            assert rec["sequence"].sum(axis=1).max() == 1  # one-hot, N rows all zero
            assert np.isfinite(rec["target"]).all() and rec["target"].min() >= 0
    # The one window with N: 1,000 N at chr12:7,083,650-7,084,650.
    n_counts = [int((r["sequence"].sum(1) == 0).sum()) for rs in records.values() for r in rs]
    assert sorted(n_counts)[-2:] == [0, 1000]
    # Files are taken in numeric order: train-10 after train-9.
    names = [p.name for p in tfrecord_files(tiny_dir / "tfrecords" / "train-*.tfr")]
    assert names == [f"train-{k}.tfr" for k in range(12)]


@pytest.mark.shared
def test_real_sequences_equal_genome(records, bed, fasta: Path):
    with Genome(fasta) as genome:
        for split, recs in records.items():
            assert len(bed[split]) == len(recs)
            for iv, rec in zip(bed[split], recs, strict=True):
                assert len(iv) == BINS * 32
                seq = genome.fetch(iv.chrom, iv.start - CROP, iv.end + CROP)
                np.testing.assert_array_equal(one_hot(seq, dtype=np.uint8), rec["sequence"])


@pytest.mark.shared
def test_real_targets_carry_the_signal(records, tiny_sheet: TrackSheet):
    # Weak sanity on values: CAGE is sparse, DNase broad; paired strands differ.
    target = np.concatenate([r["target"] for rs in records.values() for r in rs])
    cage = [t.index for t in tiny_sheet if t.assay == "CAGE"]
    dnase = [t.index for t in tiny_sheet if t.assay == "DNASE"]
    assert (target[:, cage] > 0).mean() < 0.1 < (target[:, dnase] > 0).mean()
    assert not np.array_equal(target[:, 0], target[:, 1])


@pytest.mark.shared
def test_bigwig_pipeline_reproduces_tfrecord_targets(
    records, bed, tiny_dir: Path, fasta: Path, shared_data: Path, tracks_rows, tmp_path: Path
):
    sheet = _identity_sheet(tracks_rows, tmp_path / "targets.txt")
    ds = BigWigDataset(
        tiny_dir / "sequences.bed",
        fasta,
        sheet,
        sequence_length=SEQ_LEN,
        bin_size=32,
        target_length=BINS,
        tracks_dir=shared_data / "tracks",
    )
    assert len(ds) == 65 and ds.target_length == BINS and ds.num_targets == len(tracks_rows)
    assert ds.crop_bp == CROP
    columns = [int(r["target_index"]) for r in tracks_rows]
    # sequences.bed interleaves the splits; records follow it within each split.
    position = {split: 0 for split in SPLITS}
    for i, iv in enumerate(ds.intervals):
        rec = records[iv.name][position[iv.name]]
        position[iv.name] += 1
        assert ds.windows[i] == Interval(iv.chrom, iv.start - CROP, iv.end + CROP, iv.name)
        item = ds[i]
        assert item["index"] == i
        np.testing.assert_array_equal(item["target"].numpy(), rec["target"][:, columns])
        np.testing.assert_array_equal(item["sequence"].numpy(), rec["sequence"])
    assert position == SPLITS
    # Strand pairs follow the sheet: CAGE +/- and RNA +/- swap, DNase stays.
    np.testing.assert_array_equal(ds.strand_pairs, [1, 0, 2, 3, 5, 4])


# --------------------------------------------------------------------------------------------
# TFRecordDataset
# --------------------------------------------------------------------------------------------


@pytest.mark.shared
def test_tfrecord_dataset_items(valid_ds: TFRecordDataset, records, bed, tiny_sheet):
    ds = valid_ds
    assert len(ds) == 10
    assert (ds.sequence_length, ds.target_length, ds.num_targets, ds.bin_size) == (
        SEQ_LEN, BINS, TRACKS, 32,
    )  # fmt: skip
    assert ds.intervals == bed["valid"]
    np.testing.assert_array_equal(ds.strand_pairs, tiny_sheet.strand_pair_permutation())
    for i in (0, 9, -1):
        item = ds[i]
        assert item["index"] == i % 10
        assert item["sequence"].dtype == torch.float32 and item["target"].dtype == torch.float32
        np.testing.assert_array_equal(item["sequence"].numpy(), records["valid"][i]["sequence"])
        np.testing.assert_array_equal(item["target"].numpy(), records["valid"][i]["target"])
    with pytest.raises(IndexError):
        ds[10]
    item = ds[0]
    item["target"].zero_()  # items are copies: the dataset is not changed
    assert ds[0]["target"].sum() > 0
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["sequence"].shape == (4, SEQ_LEN, 4)
    assert batch["target"].shape == (4, BINS, TRACKS)
    assert batch["index"].tolist() == [0, 1, 2, 3]


@pytest.mark.shared
def test_tfrecord_dataset_reextracts_centred_windows(
    tiny_dir: Path, fasta: Path, valid_ds: TFRecordDataset, bed
):
    width = 196_608
    ds = TFRecordDataset(tiny_dir, "valid", genome=fasta, sequence_length=width)
    assert ds.sequence_length == width and len(ds) == 10
    flank = (width - SEQ_LEN) // 2
    with Genome(fasta) as genome:
        for i in range(len(ds)):
            iv, window = bed["valid"][i], ds.windows[i]
            assert len(window) == width and window.center == iv.center
            assert (window.start, window.end) == (iv.start - CROP - flank, iv.end + CROP + flank)
            seq = ds[i]["sequence"]
            # The record sits exactly in the middle ...
            torch.testing.assert_close(seq[flank : flank + SEQ_LEN], valid_ds[i]["sequence"])
            # ... and the flanks are the genome's (here N: the subset genome is N there).
            expected = one_hot(genome.fetch(window.chrom, window.start, window.end))
            np.testing.assert_array_equal(seq.numpy(), expected)
    # Reading the whole window from the genome gives the same here (the genome holds the
    # records' bases).
    whole = TFRecordDataset(
        tiny_dir, "valid", genome=Genome(fasta), sequence_length=width, record_center=False
    )
    for i in (0, 5):
        torch.testing.assert_close(whole[i]["sequence"], ds[i]["sequence"])
    # Shorter lengths crop about the centre and need no genome.
    short = TFRecordDataset(tiny_dir, "valid", sequence_length=65_536)
    torch.testing.assert_close(short[3]["sequence"], valid_ds[3]["sequence"][CROP:-CROP])
    assert short.windows[3] == bed["valid"][3].resize(65_536)
    with pytest.raises(ValueError, match="genome="):
        TFRecordDataset(tiny_dir, "valid", sequence_length=width)


@pytest.mark.shared
def test_tfrecord_dataset_pooling(tiny_dir: Path, valid_ds: TFRecordDataset, tiny_sheet):
    pooled = TFRecordDataset(tiny_dir, "valid", pool=4)
    assert (pooled.target_length, pooled.bin_size) == (512, 128)
    assert (pooled.pool_stats[0], pooled.pool_stats[24], pooled.pool_stats[34]) == (
        "sum", "mean", "sum",
    )  # fmt: skip
    raw = valid_ds[2]["target"].numpy().astype(np.float64).reshape(512, 4, TRACKS)
    got = pooled[2]["target"].numpy()
    for track in tiny_sheet:
        if track.sum_stat == "mean":  # DNase: mean of the four 32-bp means
            want = raw[:, :, track.index].mean(axis=1)
        else:  # sum and sum_sqrt: summed
            assert track.sum_stat == "sum_sqrt"
            want = raw[:, :, track.index].sum(axis=1)
        np.testing.assert_allclose(got[:, track.index], want, rtol=1e-6)
    # Totals are kept for summed tracks.
    cage = [t.index for t in tiny_sheet if t.assay == "CAGE"]
    np.testing.assert_allclose(
        got[:, cage].sum(0), valid_ds[2]["target"].numpy()[:, cage].sum(0), rtol=1e-5
    )
    forced = TFRecordDataset(tiny_dir, "valid", pool=4, pool_stat="mean")
    np.testing.assert_allclose(forced[2]["target"].numpy(), raw.mean(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="divide"):
        TFRecordDataset(tiny_dir, "valid", pool=3)


def test_pool_bins_by_hand():
    target = np.arange(16, dtype=np.float32).reshape(8, 2)  # (bins, tracks)
    out = pool_bins(target, 4, ["sum", "mean"])
    np.testing.assert_array_equal(
        out, [[0 + 2 + 4 + 6, (1 + 3 + 5 + 7) / 4], [8 + 10 + 12 + 14, (9 + 11 + 13 + 15) / 4]]
    )
    np.testing.assert_array_equal(pool_bins(target, 2, "max"), target[1::2])
    np.testing.assert_array_equal(pool_bins(target[None], 1), target[None])
    with pytest.raises(ValueError):
        pool_bins(target, 3)
    with pytest.raises(ValueError):
        pool_bins(target, 2, ["sum"])


@pytest.mark.shared
def test_tfrecord_dataset_without_sheet_or_bed(tiny_dir: Path, tmp_path: Path):
    (tmp_path / "tfrecords").mkdir()
    for path in (tiny_dir / "tfrecords").glob("test-*.tfr"):
        (tmp_path / "tfrecords" / path.name).symlink_to(path)
    shutil.copy(tiny_dir / "statistics.json", tmp_path)
    ds = TFRecordDataset(tmp_path, "test")
    assert len(ds) == 10 and ds.intervals is None and ds.strand_pairs is None
    with pytest.raises(ValueError, match="pool_stat="):
        TFRecordDataset(tmp_path, "test", pool=4)
    assert TFRecordDataset(tmp_path, "test", pool=4, pool_stat="sum").target_length == 512
    with pytest.raises(ValueError, match="sequences.bed"):
        TFRecordDataset(tmp_path, "test", sequence_length=196_608, genome="unused.fa")
    with pytest.raises(FileNotFoundError, match="split 'nope'"):
        TFRecordDataset(tmp_path, "nope")


# --------------------------------------------------------------------------------------------
# Layouts, compression and corrupt files
# --------------------------------------------------------------------------------------------


@pytest.mark.shared
def test_enformer_onehot_layout_and_compressions(records, tmp_path: Path):
    recs = records["test"][:3]
    rng = np.random.default_rng(1)
    targets = [rng.random((896, 5)).astype(np.float16).astype(np.float32) for _ in recs]
    for compression in ("zlib", "gzip", "none"):
        for layout in ("onehot", "indices"):
            path = tmp_path / f"{layout}-{compression}.tfr"
            payloads = [
                encode_record(r["sequence"], t, layout=layout)
                for r, t in zip(recs, targets, strict=True)
            ]
            assert write_tfrecord(path, payloads, compression=compression) == 3
            size = 4 * SEQ_LEN if layout == "onehot" else SEQ_LEN
            assert len(parse_example(next(iter_tfrecord(path)))["sequence"][0]) == size
            # With the shapes given (as statistics.json would), and detected without them.
            for kwargs in ({"seq_length": SEQ_LEN, "target_length": 896}, {"num_targets": 5}):
                got = list(read_tfrecords(path, **kwargs))
                assert len(got) == 3
                for g, r, t in zip(got, recs, targets, strict=True):
                    np.testing.assert_array_equal(g["sequence"], r["sequence"])
                    np.testing.assert_array_equal(g["target"], t)
    with pytest.raises(ValueError, match="target shape"):
        next(read_tfrecords(tmp_path / "onehot-zlib.tfr", statistics=None, seq_length=SEQ_LEN))
    with pytest.raises(ValueError, match=r"onehot-zlib.tfr, record 0 .*expected 1,000"):
        next(read_tfrecords(tmp_path / "onehot-zlib.tfr", seq_length=1000, num_targets=5))


def test_decode_example_checks_sizes():
    onehot = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0, 0, 1, 2]]
    onehot[5] = 0  # N
    target = np.arange(6, dtype=np.float16).reshape(3, 2)
    features = parse_example(encode_record(onehot, target))
    out = decode_example(features, seq_length=8, target_length=3, num_targets=2)
    np.testing.assert_array_equal(out["sequence"], onehot)
    np.testing.assert_array_equal(out["target"], target.astype(np.float32))
    with pytest.raises(ValueError, match="expected 8"):
        decode_example(features, seq_length=8, target_length=2, num_targets=2)
    bad = encode_example({"sequence": bytes([0, 1, 7]), "target": target.tobytes()})
    with pytest.raises(ValueError, match="byte 2 is 7"):
        decode_example(parse_example(bad), num_targets=2)
    with pytest.raises(ValueError, match="no 'target'"):
        decode_example(parse_example(encode_example({"sequence": b"\x00"})), num_targets=2)
    # float32 targets are recognised by their byte length.
    f32 = encode_example({"sequence": bytes(8), "target": target.astype(np.float32).tobytes()})
    out = decode_example(parse_example(f32), seq_length=8, target_length=3, num_targets=2)
    np.testing.assert_array_equal(out["target"], target.astype(np.float32))


@pytest.mark.shared
def test_truncated_and_corrupt_files(tiny_dir: Path, tmp_path: Path):
    source = tiny_dir / "tfrecords" / "valid-2.tfr"
    raw = source.read_bytes()
    stream = zlib.decompress(raw)
    lengths = []
    pos = 0
    while pos < len(stream):
        (n,) = struct.unpack("<Q", stream[pos : pos + 8])
        lengths.append(n)
        pos += 16 + n
    assert pos == len(stream) and len(lengths) >= 2

    def expect(path: Path, pattern: str, **kwargs) -> None:
        with pytest.raises(ValueError, match=pattern) as info:
            list(read_tfrecords(path, statistics=tiny_dir / "statistics.json", **kwargs))
        assert path.name in str(info.value)

    # A compressed file cut in the middle of record 1.
    cut = tmp_path / "cut.tfr"
    cut.write_bytes(zlib.compress(stream[: 16 + lengths[0] + 1000]))
    expect(cut, r"record 1 \(0-based\): truncated file")
    # The compressed file itself cut short: its records run out early.
    cut2 = tmp_path / "cut2.tfr"
    cut2.write_bytes(raw[: len(raw) // 2])
    expect(cut2, r"record \d+ \(0-based\): truncated file")
    # Cut exactly at a record boundary, but without the stream's end: still an error.
    comp = zlib.compressobj()
    boundary = tmp_path / "boundary.tfr"
    boundary.write_bytes(comp.compress(stream[: 16 + lengths[0]]) + comp.flush(zlib.Z_SYNC_FLUSH))
    expect(boundary, "after record 0.*without its end marker")
    # A flipped bit inside record 1's data: CRC mismatch, or undecodable without checks.
    flipped = bytearray(stream)
    flipped[16 + lengths[0] + 12 + 100] ^= 0x40
    bad = tmp_path / "bad.tfr"
    bad.write_bytes(zlib.compress(bytes(flipped)))
    expect(bad, r"record 1 \(0-based\): corrupt record data \(CRC-32C mismatch\)")
    # A damaged length field.
    damaged = bytearray(stream)
    damaged[16 + lengths[0] + 1] ^= 0x01
    bad_len = tmp_path / "badlen.tfr"
    bad_len.write_bytes(zlib.compress(bytes(damaged)))
    expect(bad_len, r"record 1 \(0-based\): corrupt record header")
    # Damaged compressed bytes.
    garbled = bytearray(raw)
    garbled[len(raw) // 3 : len(raw) // 3 + 64] = bytes(64)
    bad_zlib = tmp_path / "garbled.tfr"
    bad_zlib.write_bytes(bytes(garbled))
    expect(bad_zlib, r"record \d+ \(0-based\)")
    # Uncompressed and truncated.
    plain = tmp_path / "plain.tfr"
    plain.write_bytes(stream[: 16 + lengths[0] + 5])
    expect(plain, r"record 1 \(0-based\): truncated file: \d+ bytes where a 12-byte")
    # Not a TFRecord at all.
    text = tmp_path / "text.tfr"
    text.write_bytes(b"chr1\t0\t100\n" * 10)
    expect(text, "not a TFRecord file")
    with pytest.raises(FileNotFoundError):
        list(iter_tfrecord(tmp_path / "missing.tfr"))
    # The intact file still reads, with and without checks.
    assert len(list(iter_tfrecord(source, verify=False))) == len(lengths)


# --------------------------------------------------------------------------------------------
# BigWig targets
# --------------------------------------------------------------------------------------------


def test_summarize_coverage_by_hand():
    cov = np.array([0, 1, 2, 3, 10, 10, 10, 10, 100, 100, 100, 100], dtype=np.float32)
    np.testing.assert_array_equal(summarize_coverage(cov, 4), [6, 40, 400])
    np.testing.assert_array_equal(summarize_coverage(cov, 4, sum_stat="mean"), [1.5, 10, 100])
    np.testing.assert_array_equal(summarize_coverage(cov, 4, sum_stat="max"), [3, 10, 100])
    # basenji: statistic, soft clip, hard clip, then scale; sum_sqrt is sum ** 0.75.
    out = summarize_coverage(cov, 4, sum_stat="sum", clip_soft=20, clip=30, scale=0.5)
    np.testing.assert_allclose(out, [3, (20 + np.sqrt(20)) / 2, 30 / 2], rtol=1e-6)
    out = summarize_coverage(cov, 4, sum_stat="sum", clip_soft=20, scale=0.5)
    np.testing.assert_allclose(out, [3, (20 + np.sqrt(20)) / 2, (20 + np.sqrt(380)) / 2])
    out = summarize_coverage(cov, 4, sum_stat="sum_sqrt")
    np.testing.assert_allclose(out, np.array([6, 40, 400]) ** 0.75, rtol=1e-6)
    # baskerville: scale first; sum_sqrt is sqrt(1 + x) - 1; soft clip keeps slope 1 at t.
    out = summarize_coverage(
        cov, 4, sum_stat="sum", scale=0.5, clip_soft=10, transform="baskerville"
    )
    np.testing.assert_allclose(out, [3, 9 + np.sqrt(11), 9 + np.sqrt(191)], rtol=1e-6)
    out = summarize_coverage(cov, 4, sum_stat="sum_sqrt", transform="baskerville", clip=10)
    np.testing.assert_allclose(out, [np.sqrt(7) - 1, np.sqrt(41) - 1, 10], rtol=1e-6)
    with pytest.raises(ValueError, match="sum_stat"):
        summarize_coverage(cov, 4, sum_stat="mode")
    with pytest.raises(ValueError, match="baskerville"):
        summarize_coverage(cov, 4, sum_stat="sum_exp75")
    with pytest.raises(ValueError, match="bins of 5"):
        summarize_coverage(cov, 5)


@pytest.mark.shared
def test_bigwig_dataset_filters(
    tiny_dir: Path, fasta: Path, shared_data: Path, tracks_rows, tmp_path: Path, caplog
):
    sheet = _identity_sheet(tracks_rows, tmp_path / "targets.txt")
    blacklist = shared_data / "annotations" / "hg38_blacklist_v2.bed"
    common = dict(
        sequence_length=SEQ_LEN, bin_size=32, target_length=BINS, tracks_dir=shared_data / "tracks"
    )
    intervals = read_bed(tiny_dir / "sequences.bed")
    # Three windows reach into the blacklist with their flanks, none with the target region.
    ds = BigWigDataset(intervals, fasta, sheet, blacklist=blacklist, **common)
    assert len(ds) == 65
    with caplog.at_level(logging.INFO, logger="enformer.data.datasets"):
        ds = BigWigDataset(
            intervals, fasta, sheet, blacklist=blacklist, blacklist_region="window", **common
        )
    assert len(ds) == 62 and "3 overlap the blacklist" in caplog.text
    dropped = sorted(set(range(65)) - set(ds.kept))
    assert [intervals[i].chrom for i in dropped] == ["chrX", "chr3", "chrX"]
    # An interval in the N part of the subset genome is dropped by the N filter, and it may be
    # given as the target region only: windows are centred on it.
    extra = [intervals[0], Interval("chr4", 5_000_000, 5_065_536), intervals[1]]
    ds = BigWigDataset(extra, fasta, sheet, **common)
    assert ds.kept == [0, 2]
    ds = BigWigDataset(extra, fasta, sheet, max_n_fraction=None, **common)
    assert ds.kept == [0, 1, 2]
    assert ds[1]["sequence"].sum() == 0 and ds[1]["target"].sum() == 0  # no data: zeros
    with pytest.raises(ValueError, match="no interval is left"):
        BigWigDataset(extra[1:2], fasta, sheet, **common)
    # Pickles (for spawn-started workers) and works again after unpickling.
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[0]["target"], ds[0]["target"])
    ds.close()


@pytest.mark.shared
def test_bigwig_dataset_errors(fasta: Path, shared_data: Path, tracks_rows, tmp_path: Path):
    pyBigWig = pytest.importorskip("pyBigWig")
    iv = [Interval("chr1", 100_000, 100_000 + 4096)]
    common = dict(sequence_length=8192, bin_size=32)
    # A missing bigWig names the track and where it looked.
    sheet = _identity_sheet(tracks_rows, tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match=r"track 0 \(CNhs10752\+\) not found"):
        BigWigDataset(iv, fasta, sheet, **common)
    # A bigWig with Ensembl-style names against UCSC-style intervals.
    path = tmp_path / "ensembl.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("1", 248_956_422)])
    bw.addEntries("1", 0, values=[1.0] * 10, span=32, step=32)
    bw.close()
    sheet = _identity_sheet(tracks_rows[:1], tmp_path / "one.txt", files=[path.name])
    with pytest.raises(ValueError, match=r"no chromosome 'chr1' \(it has '1'"):
        BigWigDataset(iv, fasta, sheet, **common)
    ds = BigWigDataset(iv, fasta, sheet, missing_chrom="zero", **common)
    assert ds[0]["target"].shape == (256, 1) and ds[0]["target"].sum() == 0
    (tmp_path / "text.bw").write_text("not a bigwig\n")
    bad_sheet = _identity_sheet(tracks_rows[:1], tmp_path / "bad.txt", files=["text.bw"])
    with pytest.raises(ValueError, match="text.bw is not a readable BigWig"):
        BigWigDataset(iv, fasta, bad_sheet, **common)
    # Unknown genome chromosome, bad geometry.
    with pytest.raises(ValueError, match="'1' is not in"):
        BigWigDataset([Interval("1", 0, 100)], fasta, sheet, **common)
    with pytest.raises(ValueError, match="do not fit"):
        BigWigDataset(iv, fasta, sheet, sequence_length=8192, bin_size=32, target_length=300)
    with pytest.raises(ValueError, match="disagrees"):
        BigWigDataset(iv, fasta, sheet, target_length=128, crop_bp=0, **common)


# --------------------------------------------------------------------------------------------
# Arrays and augmentation
# --------------------------------------------------------------------------------------------


def _random_sample(seed: int = 0, length: int = 64, bins: int = 8, tracks: int = 4):
    rng = np.random.default_rng(seed)
    seq = torch.from_numpy(np.eye(4, dtype=np.float32)[rng.integers(0, 4, length)])
    seq[5] = 0  # one N
    target = torch.from_numpy(rng.random((bins, tracks), dtype=np.float32))
    return {"sequence": seq, "target": target, "index": 0}


def test_array_dataset():
    ds = ArrayDataset(["ACGTN", "TTTTA"], np.ones((2, 3, 1)))
    assert len(ds) == 2
    item = ds[1]
    assert item["sequence"].dtype == torch.float32 and decode(item["sequence"]) == "TTTTA"
    assert item["target"].shape == (3, 1) and item["index"] == 1
    onehot = one_hot(["ACGT", "GGCC"])
    ds = ArrayDataset(torch.from_numpy(onehot))
    assert "target" not in ds[0] and decode(ds[0]["sequence"]) == "ACGT"
    with pytest.raises(ValueError, match="2 sequences but 3 targets"):
        ArrayDataset(onehot, np.zeros((3, 1, 1)))
    with pytest.raises(ValueError, match=r"\(N, L, 4\)"):
        ArrayDataset(np.zeros((2, 4)))


def test_shift_fills_with_n():
    x = _random_sample()["sequence"]
    right = shift_sequence(x, 2)
    assert right[:2].sum() == 0
    torch.testing.assert_close(right[2:], x[:-2])
    left = shift_sequence(x, -3)
    assert left[-3:].sum() == 0
    torch.testing.assert_close(left[:-3], x[3:])
    torch.testing.assert_close(shift_sequence(x, 0), x)
    assert (shift_sequence(x, 1, pad_value=0.25)[0] == 0.25).all()
    assert shift_sequence(x, 100).sum() == 0
    batch = torch.stack([x, x])  # (B, L, 4): the length axis is -2
    torch.testing.assert_close(shift_sequence(batch, 2)[1], right)


def test_reverse_complement_twice_is_identity():
    sample = _random_sample(tracks=6)
    perm = np.array([1, 0, 2, 3, 5, 4])
    twice = reverse_complement_sample(reverse_complement_sample(sample, perm), perm)
    torch.testing.assert_close(twice["sequence"], sample["sequence"])
    torch.testing.assert_close(twice["target"], sample["target"])
    aug = augment(augment(sample, 0, True, perm), 0, True, perm)
    torch.testing.assert_close(aug["target"], sample["target"])
    with pytest.raises(ValueError, match="permutation"):
        reverse_complement_sample(sample, [0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="twice"):
        reverse_complement_sample(sample, [1, 2, 0, 3, 4, 5])
    with pytest.raises(ValueError, match="6"):
        reverse_complement_sample(sample, [1, 0])


@pytest.mark.shared
def test_reverse_complement_real_sample(valid_ds: TFRecordDataset, tiny_sheet: TrackSheet):
    sample = valid_ds[4]
    rc = augment(sample, rc=True, strand_pairs=tiny_sheet)
    assert decode(rc["sequence"]) == reverse_complement_str(decode(sample["sequence"]))
    y, y_rc = sample["target"], rc["target"]
    # CAGE + / - (tracks 0, 1) swap and their bins reverse; DNase (24) only reverses.
    torch.testing.assert_close(y_rc[:, 0], y.flip(0)[:, 1])
    torch.testing.assert_close(y_rc[:, 1], y.flip(0)[:, 0])
    torch.testing.assert_close(y_rc[:, 24], y.flip(0)[:, 24])
    perm = tiny_sheet.strand_pair_permutation()
    torch.testing.assert_close(y_rc, y.flip(0)[:, torch.from_numpy(perm)])
    assert rc["index"] == sample["index"]
    torch.testing.assert_close(sample["target"], valid_ds[4]["target"])  # input untouched


def test_augmented_dataset_is_deterministic(caplog):
    rng = np.random.default_rng(0)
    seqs = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (12, 32))]
    targets = rng.random((12, 4, 2), dtype=np.float32)
    base = ArrayDataset(seqs, targets)
    with caplog.at_level(logging.WARNING):
        aug = AugmentedDataset(base, max_shift=3, rc=True, seed=7)
    assert "no strand pairs" in caplog.text
    again = AugmentedDataset(base, max_shift=3, rc=True, strand_pairs=[0, 1], seed=7)
    draws = [aug.draw(i) for i in range(len(aug))]
    assert draws == [again.draw(i) for i in range(len(aug))]
    assert draws == [aug.draw(i, epoch=0) for i in range(len(aug))]
    assert draws != [aug.draw(i, epoch=1) for i in range(len(aug))]
    assert draws != [AugmentedDataset(base, seed=8).draw(i) for i in range(len(aug))]
    # Every shift in -3..3 and both strands occur.
    many = [aug.draw(i, epoch=e) for i in range(12) for e in range(10)]
    assert {s for s, _ in many} == set(range(-3, 4)) and {r for _, r in many} == {False, True}
    for i in (0, 5, 11):
        a, b = aug[i], again[i]
        torch.testing.assert_close(a["sequence"], b["sequence"])
        torch.testing.assert_close(a["target"], b["target"])
        shift, rc = draws[i]
        assert (a["shift"], a["rc"]) == (shift, rc)
        want = augment(base[i], shift, rc)
        torch.testing.assert_close(a["sequence"], want["sequence"])
        torch.testing.assert_close(a["target"], want["target"])
    no_aug = AugmentedDataset(base, max_shift=0, rc=False)
    torch.testing.assert_close(no_aug[3]["sequence"], base[3]["sequence"])


def test_dataloader_workers_match_main_process():
    rng = np.random.default_rng(1)
    seqs = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (8, 16))]
    aug = AugmentedDataset(ArrayDataset(seqs, rng.random((8, 2, 2))), strand_pairs=[1, 0], seed=3)

    def run(workers: int) -> list[dict[int, torch.Tensor]]:
        loader = DataLoader(
            aug,
            batch_size=3,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            generator=make_generator(0),
            worker_init_fn=worker_init_fn,
        )
        out = []
        for epoch in range(2):
            aug.set_epoch(epoch)  # reaches persistent workers through shared memory
            items = {}
            for batch in loader:
                for i, seq, tgt in zip(
                    batch["index"].tolist(), batch["sequence"], batch["target"], strict=True
                ):
                    items[i] = torch.cat([seq.flatten(), tgt.flatten()])
            out.append(items)
        return out

    # The augmentation of an item depends on (seed, epoch, index) only, not on the workers.
    # (The shuffle order may differ: with workers, the DataLoader draws their base seed from
    # the same generator first.)
    single, multi = run(0), run(2)
    for a, b in zip(single, multi, strict=True):
        assert sorted(a) == sorted(b) == list(range(8))
        for i in a:
            torch.testing.assert_close(a[i], b[i])
    assert any(not torch.equal(single[0][i], single[1][i]) for i in range(8))
    assert aug.epoch == 1
    with pytest.raises(ValueError):
        aug.set_epoch(-1)
    # The same generator seed gives the same order run after run.
    order = [
        b["index"].tolist() for b in DataLoader(aug, 3, shuffle=True, generator=make_generator(5))
    ]
    assert order == [
        b["index"].tolist() for b in DataLoader(aug, 3, shuffle=True, generator=make_generator(5))
    ]
