"""Genome access: intervals, regions, BED, FASTA reading, N-padding and chromosome names.

Real-data tests read ``../shared/data/genome/hg38_subset.fa.gz`` (bgzip + .fai + .gzi) and check
it against an independent decompression of the chr1 block with :mod:`gzip`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from enformer.data.genome import (
    Genome,
    GenomeWarning,
    Interval,
    Window,
    chrom_sizes,
    parse_region,
    read_bed,
    read_fasta_sequences,
)

ENFORMER_WIDTH = 196_608
CHR1_LENGTH = 248_956_422
CHR1_HEAD = 1_000_000  # chr1:0-1,000,000 is the real hg38 block of the subset genome


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def genome_path(shared_data: Path) -> Path:
    return shared_data / "genome" / "hg38_subset.fa.gz"


@pytest.fixture(scope="module")
def genome(genome_path: Path):
    with Genome(genome_path) as g:
        yield g


@pytest.fixture(scope="module")
def chr1_head(genome_path: Path) -> str:
    """chr1:0-1,000,000 read independently: gzip-decompress the FASTA text and join lines."""
    n_lines = CHR1_HEAD // 60 + 1
    with gzip.open(genome_path, "rt") as fh:
        assert fh.readline().strip() == ">chr1"
        seq = "".join(fh.readline().rstrip("\n") for _ in range(n_lines))
    return seq[:CHR1_HEAD]


def write_fasta(path: Path, records: dict[str, str], width: int = 60) -> Path:
    with open(path, "w") as fh:
        for name, seq in records.items():
            fh.write(f">{name} some description\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i : i + width] + "\n")
    return path


def random_dna(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("ACGT") for _ in range(n))


# --------------------------------------------------------------------------------------------
# Interval
# --------------------------------------------------------------------------------------------


def test_interval_basics():
    iv = Interval("chr1", 1000, 2000, name="x", strand="+")
    assert len(iv) == iv.length == 1000
    assert iv.center == 1500
    assert iv.to_ucsc() == "chr1:1,001-2,000"
    assert str(iv) == "chr1:1,001-2,000"
    # numpy integers are accepted and stored as int
    iv2 = Interval("chr1", np.int64(5), np.int32(9))
    assert type(iv2.start) is int and type(iv2.end) is int and iv2.length == 4
    with pytest.raises(ValueError, match="before its start"):
        Interval("chr1", 10, 5)
    with pytest.raises(ValueError, match="strand"):
        Interval("chr1", 1, 5, strand="x")
    with pytest.raises(TypeError):
        Interval("chr1", 1.5, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chrom"):
        Interval("", 1, 5)


def test_interval_center_odd_and_even():
    # odd length: the middle base; [10, 15) -> bases 10..14, middle 12
    assert Interval("c", 10, 15).center == 12
    # even length: the right-hand one of the two middle bases; [10, 14) -> 11, 12 -> 12
    assert Interval("c", 10, 14).center == 12


@pytest.mark.parametrize(
    ("start", "end", "width", "new_start", "new_end"),
    [
        (100, 110, 4, 103, 107),  # even in even: symmetric
        (100, 111, 5, 103, 108),  # odd in odd: symmetric
        (100, 110, 5, 103, 108),  # odd around even: extra base on the right
        (100, 111, 4, 103, 107),  # even around odd: extra base on the left
        (0, 10, 20, -5, 15),  # may run off the start
    ],
)
def test_interval_resize(start, end, width, new_start, new_end):
    iv = Interval("c", start, end, name="n", strand="-").resize(width)
    assert (iv.start, iv.end) == (new_start, new_end)
    assert (iv.name, iv.strand) == ("n", "-")
    # the old centre is at index width // 2 of the new interval
    assert iv.start + width // 2 == Interval("c", start, end).center


def test_interval_resize_rejects_bad_width():
    with pytest.raises(ValueError, match="positive"):
        Interval("c", 0, 10).resize(0)


# --------------------------------------------------------------------------------------------
# parse_region
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chr1:1,001-2,000", Interval("chr1", 1000, 2000)),
        ("chr1:1001-2000", Interval("chr1", 1000, 2000)),
        ("  chrX:1-1  ", Interval("chrX", 0, 1)),
        ("chr1:1,500", Interval("chr1", 1499, 1500)),
        ("1:100-200", Interval("1", 99, 200)),
        ("HLA-A*01:01:1-10", Interval("HLA-A*01:01", 0, 10)),
    ],
)
def test_parse_region(text, expected):
    assert parse_region(text) == expected


def test_parse_region_round_trips_to_ucsc():
    iv = Interval("chr2", 123_455, 234_567)
    assert parse_region(iv.to_ucsc()) == iv


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("chr1", "no coordinates"),
        ("chr1:", "cannot parse"),
        ("chr1:abc-def", "cannot parse"),
        ("chr1:10-", "cannot parse"),
        (":10-20", "cannot parse"),
        ("chr1:-5-10", "cannot parse"),
        ("chr1:0-100", "must be >= 1"),
        ("chr1:2,000-1,000", "after end"),
    ],
)
def test_parse_region_errors(text, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_region(text)
    message = str(info.value)
    assert repr(text) in message
    assert "chr1:1,001-2,000" in message  # shows the right form


# --------------------------------------------------------------------------------------------
# BED, chrom sizes, user FASTA
# --------------------------------------------------------------------------------------------

BED_TEXT = (
    "browser position chr1:1-100\n"
    'track name="test"\n'
    "# a comment\n"
    "\n"
    "chr1\t10\t20\n"
    "chr1\t30\t45\tpeak1\n"
    "chr2\t0\t5\tpeak2\t900\t-\textra\n"
    "chr3\t7\t9\t.\t0\t.\n"
)


def test_read_bed(tmp_path):
    plain = tmp_path / "a.bed"
    plain.write_text(BED_TEXT)
    expected = [
        Interval("chr1", 10, 20),
        Interval("chr1", 30, 45, "peak1"),
        Interval("chr2", 0, 5, "peak2", "-"),
        Interval("chr3", 7, 9, None, "."),
    ]
    assert read_bed(plain) == expected
    gz = tmp_path / "a.bed.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(BED_TEXT)
    assert read_bed(gz) == expected
    spaced = tmp_path / "s.bed"
    spaced.write_text("chr1 1 2\n")
    assert read_bed(spaced) == [Interval("chr1", 1, 2)]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("chr1\t10", "at least 3 columns"),
        ("chr1\tten\t20", "integers"),
        ("chr1\t20\t10", "start <= end"),
        ("chr1\t-1\t10", "start <= end"),
        ("chr1\t1\t10\tn\t0\tx", "strand"),
    ],
)
def test_read_bed_malformed_line(tmp_path, line, match):
    path = tmp_path / "bad.bed"
    path.write_text("track name=x\nchr1\t1\t2\n" + line + "\n")
    with pytest.raises(ValueError, match=match) as info:
        read_bed(path)
    assert f"{path}, line 3" in str(info.value)


def test_read_bed_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bed"):
        read_bed(tmp_path / "nope.bed")


@pytest.mark.shared
def test_read_bed_real(shared_data):
    intervals = read_bed(shared_data / "basenji_tiny_hg38" / "sequences.bed")
    assert len(intervals) == 65
    assert intervals[0] == Interval("chrX", 132_332_645, 132_398_181, "train")
    assert all(len(iv) == 65_536 for iv in intervals)


@pytest.mark.shared
def test_chrom_sizes_files_agree(shared_data, genome):
    folder = shared_data / "genome"
    from_fai = chrom_sizes(folder / "hg38_subset.fa.gz.fai")
    from_sizes = chrom_sizes(folder / "hg38_subset.chrom.sizes")
    from_fasta = chrom_sizes(folder / "hg38_subset.fa.gz")  # uses the .fai beside it
    assert from_fai == from_sizes == from_fasta == genome.chrom_sizes
    assert list(from_fai) == list(from_sizes) == list(genome.chrom_sizes)  # FASTA order
    assert len(from_fai) == 21
    assert list(from_fai)[:3] == ["chr1", "chr2", "chr3"]
    assert from_fai["chr1"] == CHR1_LENGTH
    assert from_fai["chrX"] == 156_040_895


def test_chrom_sizes_errors(tmp_path):
    bad = tmp_path / "x.chrom.sizes"
    bad.write_text("chr1\t100\nchr2\tlots\n")
    with pytest.raises(ValueError, match=r"line 2.*integer"):
        chrom_sizes(bad)
    bad.write_text("chr1\t100\nchr1\t100\n")
    with pytest.raises(ValueError, match="listed twice"):
        chrom_sizes(bad)
    bad.write_text("")
    with pytest.raises(ValueError, match="no chromosomes"):
        chrom_sizes(bad)
    with pytest.raises(FileNotFoundError):
        chrom_sizes(tmp_path / "missing.chrom.sizes")


def test_read_fasta_sequences(tmp_path):
    text = ">seq1 first one\nACGTacgt\nNNAC\n\n>seq2\r\nggcc\r\n;comment\n>seq3\nRYKM\n"
    plain = tmp_path / "s.fa"
    plain.write_text(text)
    expected = [("seq1", "ACGTACGTNNAC"), ("seq2", "GGCC"), ("seq3", "RYKM")]
    assert read_fasta_sequences(plain) == expected
    gz = tmp_path / "s.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    assert read_fasta_sequences(gz) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no FASTA records"),
        ("\n\n", "no FASTA records"),
        ("ACGT\n>s\nACGT\n", r"line 1: text before the first '>'"),
        (">s\nACGT\n>t\n>u\nAC\n", r"line 3: record 't' has no sequence"),
        (">s\nACGT\nAC1T\n", r"line 3: .*not nucleotide codes.*'1'"),
        (">\nACGT\n", "no sequence name"),
    ],
)
def test_read_fasta_sequences_errors(tmp_path, text, match):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        read_fasta_sequences(path)
    assert str(path) in str(info.value)


def test_read_fasta_sequences_binary_and_missing(tmp_path):
    path = tmp_path / "bin.fa"
    path.write_bytes(b">s\n\xff\xfe\x00ACGT\n")
    with pytest.raises(ValueError, match="not a text file"):
        read_fasta_sequences(path)
    trunc = tmp_path / "t.fa.gz"
    trunc.write_bytes(gzip.compress(b">s\n" + b"ACGT" * 1000)[:40])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_fasta_sequences(trunc)
    with pytest.raises(FileNotFoundError):
        read_fasta_sequences(tmp_path / "missing.fa")


# --------------------------------------------------------------------------------------------
# Genome on the real hg38 subset
# --------------------------------------------------------------------------------------------


@pytest.mark.shared
def test_genome_known_sequence(genome):
    # hg38 chr1 is N up to 10,000, then the telomeric repeat begins
    assert genome.fetch("chr1", 9_995, 10_020) == "NNNNN" + "TAACCC" * 3 + "TA"
    assert "chr1" in genome and "chrX" in genome
    assert "1" not in genome and "chrY" not in genome and 1 not in genome


@pytest.mark.shared
def test_genome_matches_independent_read(genome, chr1_head):
    assert len(chr1_head) == CHR1_HEAD
    rng = random.Random(0)
    for _ in range(50):
        start = rng.randrange(0, CHR1_HEAD - 5_000)
        end = start + rng.randrange(1, 5_000)
        assert genome.fetch("chr1", start, end) == chr1_head[start:end]
    # a whole Enformer window from the real block
    start = 500_000 - ENFORMER_WIDTH // 2
    seq = genome.fetch("chr1", start, start + ENFORMER_WIDTH)
    assert seq == chr1_head[start : start + ENFORMER_WIDTH]
    assert set(seq) == set("ACGTN")  # upper-case; this window holds a 50-kb assembly gap


@pytest.mark.shared
def test_genome_eqtl_ref_alleles(genome, shared_data):
    """The 8 GTEx SNPs (VCF, 1-based) have their REF base at 0-based pos - 1."""
    records = [
        line.split("\t")
        for line in (shared_data / "variants" / "gtex_eqtl_chr1.vcf").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(records) == 8
    for chrom, pos, _id, ref, *_ in records:
        assert genome.fetch(chrom, int(pos) - 1, int(pos) - 1 + len(ref)) == ref
        # the centred window has the SNP base at index width // 2
        win = genome.window(chrom, int(pos) - 1, ENFORMER_WIDTH) if int(pos) > 98_304 else None
        if win is not None:
            assert win.sequence[ENFORMER_WIDTH // 2] == ref


@pytest.mark.shared
@pytest.mark.parametrize(("start", "end"), [(500_000, 500_101), (500_000, 500_100)])
def test_window_centred(genome, chr1_head, start, end):
    region = Interval("chr1", start, end)
    win = genome.window("chr1", region.center, ENFORMER_WIDTH)
    assert isinstance(win, Window)
    interval, seq = win  # unpacks like a tuple
    assert interval == region.resize(ENFORMER_WIDTH)
    assert interval.start == region.center - 98_304 and len(interval) == ENFORMER_WIDTH
    assert len(seq) == ENFORMER_WIDTH
    assert seq[ENFORMER_WIDTH // 2] == chr1_head[region.center]
    assert seq == genome.fetch_interval(interval)
    assert seq == chr1_head[interval.start : interval.end]


@pytest.mark.shared
def test_window_at_chromosome_start_is_n_padded(genome, chr1_head):
    center = 50_000
    with pytest.warns(GenomeWarning, match="runs off the chromosome end") as record:
        win = genome.window("chr1", center, ENFORMER_WIDTH)
    assert len(record) == 1
    n_left = ENFORMER_WIDTH // 2 - center
    assert win.interval.start == -n_left
    assert win.sequence == "N" * n_left + chr1_head[: win.interval.end]
    assert win.sequence[ENFORMER_WIDTH // 2] == chr1_head[center]


@pytest.mark.shared
def test_fetch_pads_chromosome_end(genome):
    with pytest.warns(GenomeWarning, match=r"padded with 0 N on the left and 7 N on the right"):
        seq = genome.fetch("chr1", CHR1_LENGTH - 3, CHR1_LENGTH + 7)
    assert seq == "N" * 10
    with pytest.raises(ValueError, match="entirely outside"):
        genome.fetch("chr1", CHR1_LENGTH + 10, CHR1_LENGTH + 20)
    with pytest.raises(ValueError, match="outside chr1"):
        genome.window("chr1", CHR1_LENGTH, 100)
    with pytest.raises(ValueError, match="before start"):
        genome.fetch("chr1", 20, 10)
    assert genome.fetch("chr1", 20, 20) == ""


@pytest.mark.shared
def test_chrom_name_mismatch_message(genome):
    with pytest.raises(ValueError) as info:
        genome.fetch("1", 10_000, 10_010)
    message = str(info.value)
    assert "chromosome '1' is not in hg38_subset.fa.gz; it has 'chr1'" in message
    assert "Ensembl-style" in message and "UCSC-style" in message
    assert "add 'chr'" in message and "chrom_aliases=True" in message and "--chrom-alias" in message
    with pytest.raises(ValueError, match=r"'chrZ' is not in .*It has: chr1, chr2"):
        genome.resolve_chrom("chrZ")
    with pytest.raises(ValueError, match=r"did you mean 'chr1'"):
        genome.resolve_chrom("Chr1")


@pytest.mark.shared
def test_chrom_aliases_opt_in(genome_path, genome):
    with Genome(genome_path, chrom_aliases=True) as aliased:
        assert aliased.resolve_chrom("1") == "chr1"
        assert aliased.resolve_chrom("chr1") == "chr1"
        assert "1" in aliased and "X" in aliased
        assert aliased.fetch("1", 10_000, 10_500) == genome.fetch("chr1", 10_000, 10_500)
        win = aliased.window("2", 1_000_000, 1_000)
        assert win.interval.chrom == "chr2"
        with pytest.raises(ValueError, match="'Y' is not in"):
            aliased.resolve_chrom("Y")


def test_aliases_ensembl_genome_and_mito(tmp_path):
    path = write_fasta(tmp_path / "ens.fa", {"1": "ACGT" * 5, "MT": "GGCC" * 5})
    with Genome(path) as g:
        with pytest.raises(ValueError, match=r"has '1' — your input uses UCSC-style.*remove 'chr'"):
            g.fetch("chr1", 0, 4)
        with pytest.raises(ValueError, match="has 'MT'"):
            g.resolve_chrom("chrM")
    with Genome(path, chrom_aliases=True) as g:
        assert g.fetch("chr1", 0, 4) == "ACGT"
        assert g.resolve_chrom("chrM") == "MT"


@pytest.mark.shared
def test_genome_pickles(genome):
    clone = pickle.loads(pickle.dumps(genome))
    try:
        assert clone.chrom_sizes == genome.chrom_sizes
        assert clone.fetch("chr2", 100_000, 100_050) == genome.fetch("chr2", 100_000, 100_050)
    finally:
        clone.close()


# --------------------------------------------------------------------------------------------
# Genome on small files made here
# --------------------------------------------------------------------------------------------


def test_padding_values_and_silencing(tmp_path):
    path = write_fasta(tmp_path / "s.fa", {"s1": "ACGTACGTAC", "s2": "acgtn"}, width=4)
    with Genome(path) as g:
        assert g.chrom_sizes == {"s1": 10, "s2": 5}
        with pytest.warns(GenomeWarning, match="3 N on the left and 0 N on the right"):
            assert g.fetch("s1", -3, 4) == "NNNACGT"
        with pytest.warns(GenomeWarning, match="0 N on the left and 3 N on the right"):
            assert g.fetch("s1", 8, 13) == "ACNNN"
        with pytest.warns(GenomeWarning) as record:
            assert g.fetch("s1", -2, 12) == "NNACGTACGTACNN"
        assert len(record) == 1
        assert g.fetch("s2", 0, 5) == "ACGTN"  # upper-cased
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GenomeWarning)
            assert g.fetch("s1", -1, 1) == "NA"
    # pytest turns warnings into errors here, so no warning may escape
    with Genome(path, warn_padding=False) as quiet:
        assert quiet.fetch("s1", -1, 1) == "NA"


def test_fetch_interval_stranded(tmp_path):
    path = write_fasta(tmp_path / "s.fa", {"s1": "AACGTTTG"})
    with Genome(path) as g:
        iv = Interval("s1", 1, 5, strand="-")
        assert g.fetch_interval(iv) == "ACGT"
        assert g.fetch_interval(iv, stranded=True) == "ACGT"  # its own reverse complement
        assert g.fetch_interval(Interval("s1", 0, 3, strand="-"), stranded=True) == "GTT"
        assert g.fetch_interval(Interval("s1", 0, 3, strand="+"), stranded=True) == "AAC"


def test_builds_missing_index_and_backends_agree(tmp_path):
    records = {"a": random_dna(5_000, 1), "b": random_dna(777, 2)}
    path = write_fasta(tmp_path / "r.fa", records, width=70)
    assert not (tmp_path / "r.fa.fai").exists()
    with Genome(path, backend="pysam") as g:
        assert (tmp_path / "r.fa.fai").exists()
        assert g.chrom_sizes == {"a": 5_000, "b": 777}
        with Genome(path, backend="pyfaidx") as h:
            assert h.chrom_sizes == g.chrom_sizes
            rng = random.Random(3)
            for _ in range(30):
                name = rng.choice(["a", "b"])
                start = rng.randrange(0, len(records[name]))
                end = rng.randrange(start, len(records[name]) + 1)
                expected = records[name][start:end]
                assert g.fetch(name, start, end) == h.fetch(name, start, end) == expected


def test_bgzip_fasta_gets_both_indexes(tmp_path):
    pysam = pytest.importorskip("pysam")
    seq = random_dna(200_000, 4)  # several 64-kb BGZF blocks
    plain = write_fasta(tmp_path / "r.fa", {"chr9": seq})
    packed = tmp_path / "r.fa.gz"
    pysam.tabix_compress(str(plain), str(packed))
    with Genome(packed) as g:
        assert g.fetch("chr9", 65_000, 140_000) == seq[65_000:140_000]
    assert (tmp_path / "r.fa.gz.fai").exists() and (tmp_path / "r.fa.gz.gzi").exists()

    cut = tmp_path / "cut.fa.gz"  # a bgzip file cut short: cannot be indexed
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cannot open genome FASTA .*cut.fa.gz.*missing index"):
        Genome(cut)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="genome FASTA not found: .*absent.fa"):
        Genome(tmp_path / "absent.fa")


def test_corrupt_fasta_files(tmp_path):
    garbage = tmp_path / "garbage.fa.gz"
    garbage.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4_000, dtype=np.uint8)))
    with pytest.raises(ValueError, match="does not look like a FASTA file"):
        Genome(garbage)

    not_fasta = tmp_path / "notes.fa"
    not_fasta.write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="does not look like a FASTA file"):
        Genome(not_fasta)

    plain_gzip = tmp_path / "plain.fa.gz"
    plain_gzip.write_bytes(gzip.compress(b">s\nACGT\n"))
    with pytest.raises(ValueError, match="plain gzip, not bgzip"):
        Genome(plain_gzip)

    truncated = tmp_path / "trunc.fa.gz"
    bgzf_block = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
    truncated.write_bytes(bgzf_block + b"\x00\x01\x02")  # a BGZF header, then junk
    with pytest.raises(ValueError, match="corrupt or truncated"):
        Genome(truncated)

    ragged = tmp_path / "ragged.fa"
    ragged.write_text(">s\nACGTACGT\nACG\nACGTACGT\n")
    with pytest.raises(ValueError, match="cannot open genome FASTA .*ragged.fa"):
        Genome(ragged)


def test_stale_index_is_reported(tmp_path):
    path = write_fasta(tmp_path / "s.fa", {"s": "ACGT" * 50}, width=40)
    Genome(path).close()  # builds s.fa.fai
    mtime = os.stat(tmp_path / "s.fa.fai").st_mtime
    path.write_text(">s\nACGT\n")  # the index now promises 200 bases
    os.utime(tmp_path / "s.fa.fai", (mtime + 10, mtime + 10))
    with Genome(path) as g, pytest.raises(ValueError, match="samtools faidx"):
        g.fetch("s", 100, 150)


def test_closed_genome(tmp_path):
    path = write_fasta(tmp_path / "s.fa", {"s": "ACGT"})
    with Genome(path) as g:
        assert g.fetch("s", 0, 2) == "AC"
    with pytest.raises(ValueError, match="closed"):
        g.fetch("s", 0, 2)
    g.close()  # idempotent
    assert "closed" in repr(g)


def test_fetch_names_a_non_nucleotide_by_its_coordinate(tmp_path):
    """A FASTA letter that is no nucleotide code stops a fetch with the file, the character and
    its 1-based coordinate (not its index in some window); IUPAC codes and lower case pass."""
    fasta = tmp_path / "odd.fa"
    fasta.write_text(">s\nACGTRYacgtZZACGT\n")
    with Genome(fasta) as genome:
        assert genome.fetch("s", 0, 10) == "ACGTRYACGT"
        with pytest.raises(ValueError, match=r"odd\.fa has 'Z' at s:11 \(1-based\)"):
            genome.fetch("s", 2, 14)
        with pytest.raises(ValueError, match=r"'Z' at s:11 "):
            genome.fetch("s", -5, 20)  # padded windows report the same coordinate
