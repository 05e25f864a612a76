"""Start/end columns of BED and GTF lines: one reader, one error naming file, line and values."""

from __future__ import annotations

import pytest

from enformer.data.annotation import read_gtf
from enformer.data.genome import parse_start_end, read_bed


def test_parse_start_end_reads_integers_and_names_the_bad_ones():
    assert parse_start_end("10", "20", "x.bed, line 1") == (10, 20)
    with pytest.raises(ValueError) as err:
        parse_start_end("10", "2O", "x.bed, line 3")
    assert str(err.value) == "x.bed, line 3: start and end must be integers, got '10' and '2O'"


def test_bed_with_a_non_integer_end_fails_on_its_line(tmp_path):
    path = tmp_path / "regions.bed"
    path.write_text("chr1\t0\t100\nchr1\t100\tabc\n")
    want = r"line 2: start and end must be integers, got '100' and 'abc'"
    with pytest.raises(ValueError, match=want):
        read_bed(path)


def test_gtf_with_a_non_integer_start_fails_on_its_line(tmp_path):
    path = tmp_path / "genes.gtf"
    attrs = 'gene_id "G1"; gene_name "A"; gene_type "protein_coding";'
    path.write_text(f"chr1\tsrc\tgene\tx1\t200\t.\t+\t.\t{attrs}\n")
    want = r"line 1: start and end must be integers, got 'x1' and '200'"
    with pytest.raises(ValueError, match=want):
        read_gtf(path)
