"""Track sheets: reading both layouts, selection, strand pairs, locating and downloading."""

from __future__ import annotations

import csv
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from enformer.data import track_files
from enformer.data.tracks import (
    Track,
    TrackSheet,
    TrackSheetNotFound,
    assay_of,
    default_cache_dir,
    find_track_sheet,
)

TINY_HEADER = "\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"
ENF_HEADER = "index\tgenome\tidentifier\tfile\tclip\tscale\tsum_stat\tdescription\n"


@pytest.fixture(scope="module")
def human_path(shared_data: Path) -> Path:
    return shared_data / "targets" / "targets_human.txt"


@pytest.fixture(scope="module")
def mouse_path(shared_data: Path) -> Path:
    return shared_data / "targets" / "targets_mouse.txt"


@pytest.fixture(scope="module")
def tiny_path(shared_data: Path) -> Path:
    return shared_data / "basenji_tiny_hg38" / "targets.txt"


@pytest.fixture(scope="module")
def human(human_path: Path) -> TrackSheet:
    return TrackSheet.read(human_path)


@pytest.fixture(scope="module")
def mouse(mouse_path: Path) -> TrackSheet:
    return TrackSheet.read(mouse_path)


@pytest.fixture(scope="module")
def tiny(tiny_path: Path) -> TrackSheet:
    return TrackSheet.read(tiny_path)


# ----------------------------------------------------------------------------- reading
def test_human_sheet(human: TrackSheet, human_path: Path):
    assert len(human) == 5313
    assert human.head == "human"
    assert human.path == human_path
    assert human.assay_counts() == {"CHIP": 3991, "DNASE": 674, "CAGE": 638, "ATAC": 10}
    first = human[0]
    assert first == Track(
        index=0,
        identifier="ENCFF833POA",
        description="DNASE:cerebellum male adult (27 years) and male adult (35 years)",
        assay="DNASE",
        strand=".",
        strand_pair=0,
        clip=32.0,
        clip_soft=None,
        scale=2.0,
        sum_stat="mean",
        file="/home/drk/tillage/datasets/human/dnase/encode/ENCSR000EIJ/summary/coverage.w5",
    )
    ctcf = human[684]
    assert (ctcf.identifier, ctcf.description, ctcf.assay) == (
        "ENCFF991NDB",
        "CHIP:CTCF:MCF-7",
        "CHIP",
    )
    assert ctcf.label == "CTCF:MCF-7"
    atac = human[674]
    assert atac.identifier == "GSM2543089"
    assert atac.description == "ATAC:BM0106-Day0-MCP-A / Bone Marrow CD34+ / pDC"
    assert (atac.clip, atac.scale, atac.sum_stat) == (64.0, 1.0, "sum")
    last = human[-1]
    assert last.index == 5312
    assert last.identifier == "CNhs14245"
    assert last.description == "CAGE:lung adenocarcinoma, papillary cell line:NCI-H441"
    assert (last.clip, last.sum_stat) == (384.0, "sum")
    assert all(t.strand == "." and not t.stranded for t in human)
    np.testing.assert_array_equal(human.strand_pair_permutation(), np.arange(5313))
    assert human["ENCFF991NDB"] is ctcf


def test_human_sheet_matches_csv_reading(human: TrackSheet, human_path: Path):
    """Row i of the file is track i, and every field is read unchanged."""
    with human_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == len(human)
    for i in (0, 1, 1000, 2500, 4675, 5312):
        assert human[i].identifier == rows[i]["identifier"]
        assert human[i].description == rows[i]["description"]
        assert human[i].file == rows[i]["file"]
        assert int(rows[i]["index"]) == i
    assert human.identifiers == [r["identifier"] for r in rows]


def test_mouse_sheet_uses_row_position_not_index_column(mouse: TrackSheet):
    assert len(mouse) == 1643
    assert mouse.head == "mouse"
    assert mouse.assay_counts() == {"CHIP": 1058, "CAGE": 357, "ATAC": 127, "DNASE": 101}
    assert mouse[0].index == 0
    assert mouse[0].identifier == "ENCFF866ZTV"
    assert mouse[0].description == "DNASE:B6D2F1/J 416B"
    assert mouse[1].identifier == "ENCFF695LHM"
    assert mouse[1642].index == 1642
    with pytest.raises(ValueError, match="subtract 5313"):
        mouse.select(5313)


def test_tiny_sheet(tiny: TrackSheet):
    assert len(tiny) == 74
    assert tiny.head is None
    assert tiny.assay_counts() == {"RNA": 30, "CAGE": 24, "DNASE": 10, "RNA3": 10}
    t0 = tiny[0]
    assert (t0.identifier, t0.strand, t0.strand_pair) == ("CNhs10752+", "+", 1)
    assert t0.description == "CAGE:oral squamous cell carcinoma cell line:Ca9-22"
    assert (t0.clip, t0.clip_soft, t0.scale, t0.sum_stat) == (384.0, 64.0, 1.0, "sum_sqrt")
    assert tiny[1].strand == "-" and tiny[1].strand_pair == 0
    assert tiny[24].identifier == "ENCFF890OGQ" and tiny[24].strand == "."
    assert tiny[40].identifier == "ENCFF946ZPT" and not tiny[40].stranded
    assert tiny[64].scale == pytest.approx(0.3059869193359048, rel=0, abs=0)
    assert tiny[73].assay == "RNA3"
    assert tiny.read(tiny.path, head="tiny").head == "tiny"


def test_tiny_sheet_agrees_with_tracks_tsv(tiny: TrackSheet, shared_data: Path):
    with (shared_data / "tracks" / "tracks.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows
    for row in rows:
        track = tiny[int(row["target_index"])]
        assert track.identifier == row["identifier"]
        assert track.assay == row["assay"]
        assert track.strand == row["strand"]
        assert track.strand_pair == int(row["strand_pair_index"])
        assert track.label == row["description"]
        assert track.sum_stat == row["sum_stat"]
        assert track.clip == float(row["clip"])
        assert track.clip_soft == float(row["clip_soft"])
        assert track.scale == float(row["scale"])


def test_strand_pair_permutation_tiny(tiny: TrackSheet):
    perm = tiny.strand_pair_permutation()
    n = len(tiny)
    assert perm.dtype == np.int64 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))  # a permutation
    np.testing.assert_array_equal(perm[perm], np.arange(n))  # an involution
    stranded = np.flatnonzero(perm != np.arange(n))
    assert len(stranded) == 24 + 20 + 10  # CAGE, stranded ENCODE RNA, Tabula RNA3
    for i in stranded:
        a, b = tiny[int(i)], tiny[int(perm[i])]
        assert {a.strand, b.strand} == {"+", "-"}
        assert a.identifier[:-1] == b.identifier[:-1]
        assert a.identifier.endswith(a.strand)
        assert a.description == b.description
    for i in np.flatnonzero(perm == np.arange(n)):
        assert tiny[int(i)].strand == "."
    # Swapping twice restores a fake prediction.
    y = np.random.default_rng(0).random((5, n))
    np.testing.assert_array_equal(y[:, perm][:, perm], y)
    assert set(tiny.select("strand:+")) == {int(i) for i in stranded if tiny[int(i)].strand == "+"}


def test_to_records_and_dataframe(tiny: TrackSheet):
    records = tiny.to_records()
    assert len(records) == 74
    assert records[1] == {
        "index": 1,
        "identifier": "CNhs10752-",
        "description": "CAGE:oral squamous cell carcinoma cell line:Ca9-22",
        "assay": "CAGE",
        "strand": "-",
        "strand_pair": 0,
        "clip": 384.0,
        "clip_soft": 64.0,
        "scale": 1.0,
        "sum_stat": "sum_sqrt",
        "file": "/home/drk/tillage/datasets/human/cage/fantom/CNhs10752/summary/coverage-.w5",
    }
    pytest.importorskip("pandas")
    frame = tiny.to_dataframe()
    assert frame.shape == (74, 10)
    assert frame.loc[35, "identifier"] == "ENCFF520NFI-"


def test_container_protocol(tiny: TrackSheet):
    assert [t.index for t in tiny] == list(range(74))
    assert tiny[2:4] == [tiny[2], tiny[3]]
    assert tiny["cnhs10752+".upper().replace("CNHS", "CNhs")].index == 0
    with pytest.raises(KeyError, match="did you mean CNhs10752"):
        tiny["CNhs10752"]
    with pytest.raises(IndexError):
        tiny[74]
    assert "n_tracks=74" in repr(tiny)
    assert tiny.tracks[5] is tiny[5]
    assert tiny.descriptions[24] == "DNASE:GM03348"


# ----------------------------------------------------------------------------- selection
def test_select_indices_and_ranges(human: TrackSheet):
    assert human.select(7) == [7]
    assert human.select(np.int64(7)) == [7]
    assert human.select([3, 1, 2]) == [3, 1, 2]
    assert human.select("0,5,10-20") == [0, 5, *range(10, 21)]
    assert human.select(" 10 - 12 , 3 ") == [10, 11, 12, 3]
    assert human.select("5,5,4-6") == [5, 4, 6]  # each index once, first position kept
    assert human.select("all") == list(range(5313))
    assert human.select("*") == list(range(5313))
    assert human.select(np.array([4, 2])) == [4, 2]
    mask = np.zeros(5313, dtype=bool)
    mask[[1, 9]] = True
    assert human.select(mask) == [1, 9]
    assert human.select(slice(0, 6, 2)) == [0, 2, 4]
    assert human.select([0, "5-6", "ENCFF110QGM"]) == [0, 5, 6, 1]
    assert human.select("5312") == [5312]


def test_select_identifiers_and_searches(human: TrackSheet):
    assert human.select("ENCFF833POA") == [0]
    assert human.select("encff833poa") == [0]
    assert human.select("id:ENCFF991NDB") == [684]
    assert human.select("ENCFF833POA,ENCFF991NDB") == [0, 684]

    cage = human.select("assay:CAGE")
    assert len(cage) == 638 and all(human[i].assay == "CAGE" for i in cage)
    assert human.select("assay:cage") == cage
    assert len(human.select("assay:ATAC")) == 10
    assert len(human.select("assay:DNASE")) == 674
    assert len(human.select("assay:CHIP")) == 3991

    k562 = human.select("search:K562")
    assert k562 == sorted(k562)
    assert k562 == [i for i, t in enumerate(human) if "k562" in t.description.lower()]
    assert 33 in k562  # DNASE:K562 treated with 1 uM vorinostat for 72 hours
    assert human.select("search:k562") == k562
    assert human.select("desc:K562") == k562
    assert human.select("K562") == k562  # free text falls back to descriptions

    assert human.select("CAGE:K562") == [i for i in cage if i in k562]
    assert [human[i].identifier for i in human.select("cage:k562")] == ["CNhs11250", "CNhs12336"]
    ctcf = human.select("CHIP:CTCF:")
    assert 684 in ctcf
    assert ctcf == [i for i in human.select("assay:CHIP") if "ctcf:" in human[i].label.lower()]
    assert human.select("ATAC:") == human.select("assay:ATAC")
    assert human.select("DNASE:cerebellum male adult (27 years)") == [0]
    with pytest.raises(ValueError, match="neither a track identifier"):
        human.select("ATAC:K562")

    assert human.select("assay:ATAC,assay:CAGE")[:10] == human.select("assay:ATAC")
    assert human.select(["search:lung adenocarcinoma, papillary"]) == [5312]


def test_select_errors(human: TrackSheet, tiny: TrackSheet):
    with pytest.raises(ValueError, match=r"'ENCFF833POB'.*did you mean ENCFF833POA"):
        human.select("ENCFF833POB")
    with pytest.raises(ValueError, match="no track has identifier 'ENCFF833POB'; did you mean"):
        human.select("id:ENCFF833POB")
    with pytest.raises(ValueError, match=r"track index 5313 is out of range 0\.\.5312"):
        human.select(5313)
    with pytest.raises(ValueError, match="out of range"):
        human.select(-1)
    with pytest.raises(ValueError, match="out of range"):
        human.select("5300-5400")
    with pytest.raises(ValueError, match="reversed; write 3-12"):
        human.select("12-3")
    with pytest.raises(ValueError, match="no track has assay 'RNA'; assays in this sheet: CHIP"):
        human.select("assay:RNA")
    with pytest.raises(ValueError, match="no track description contains 'zzzz'"):
        human.select("search:zzzz")
    with pytest.raises(ValueError, match="nothing after"):
        human.select("search:")
    with pytest.raises(ValueError, match="empty track selection"):
        human.select(" , ")
    with pytest.raises(ValueError, match="strand must be"):
        tiny.select("strand:x")
    with pytest.raises(ValueError, match="boolean track mask"):
        human.select(np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="cannot select tracks"):
        human.select(1.5)
    with pytest.raises(TypeError):
        human.select(True)


# ----------------------------------------------------------------------------- malformed
def _write(tmp_path: Path, text: str, name: str = "targets.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_truncated_real_sheet(human_path: Path, tmp_path: Path):
    lines = human_path.read_text().splitlines(keepends=True)
    partial = "".join(lines[:101]) + lines[101][:40]  # header + 100 rows + a cut row
    path = _write(tmp_path, partial, "targets_human.txt")
    with pytest.raises(ValueError) as info:
        TrackSheet.read(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 102" in message
    assert "expected 8 tab-separated fields" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty track sheet"),
        ("\n\n", "empty track sheet"),
        (ENF_HEADER, "header but no tracks"),
        ("identifier\tfile\n", "lacks column.*description"),
        ("just one column\n", "header has 1 column"),
        (ENF_HEADER + "0\t0\tA1\tf\tlarge\t2\tmean\tDNASE:x\n", "line 2: column 'clip'"),
        (ENF_HEADER + "0\t0\tA1\tf\t32\t2\tmean\tDNASE:x\n1\t0\tA2\tf\n", "line 3: expected 8"),
        (ENF_HEADER + "0\t0\t\tf\t32\t2\tmean\tDNASE:x\n", "line 2: empty identifier"),
        (TINY_HEADER + "0\tA+\tf\t1\t1\t1\tsum\t5\tCAGE:x\n", "line 2: strand_pair 5 is outside"),
        (TINY_HEADER + "0\tA+\tf\t1\t1\t1\tsum\tone\tCAGE:x\n", "'strand_pair' should be"),
        (
            TINY_HEADER
            + "0\tA+\tf\t1\t1\t1\tsum\t1\tCAGE:x\n"
            + "1\tA-\tf\t1\t1\t1\tsum\t2\tCAGE:x\n"
            + "2\tB\tf\t1\t1\t1\tsum\t2\tCAGE:y\n",
            "line 2: track 0 pairs with 1, but track 1 pairs with 2",
        ),
    ],
)
def test_malformed_sheets(tmp_path: Path, text: str, match: str):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        TrackSheet.read(path)
    assert str(path) in str(info.value)


def test_not_utf8(tmp_path: Path):
    path = tmp_path / "targets.txt"
    path.write_bytes(ENF_HEADER.encode() + b"0\t0\tA\tf\t1\t1\tsum\tDNASE:\xff\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        TrackSheet.read(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        TrackSheet.read(tmp_path / "nope.txt")


def test_crlf_blank_lines_and_implicit_index(tmp_path: Path):
    text = "identifier\tclip\tdescription\r\n7\tX1\t3\tdnase:foo\r\n\r\n8\tX2\t\tno prefix here\r\n"
    sheet = TrackSheet.read(_write(tmp_path, text))
    assert sheet.identifiers == ["X1", "X2"]
    assert sheet[0].assay == "DNASE" and sheet[0].clip == 3.0
    assert sheet[1].assay == "UNKNOWN" and sheet[1].clip is None
    assert sheet[1].label == "no prefix here"
    assert sheet[1].file is None and sheet[1].sum_stat is None


def test_strand_fallbacks(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    text = (
        TINY_HEADER
        + "0\tP\tcov-.w5\t1\t1\t1\tsum\t1\tRNA:a\n"  # file name says '-'
        + "1\tQ\tcov.w5\t1\t1\t1\tsum\t0\tRNA:a\n"
        + "2\tR\tcov.w5\t1\t1\t1\tsum\t3\tRNA:b\n"  # no hint: lower index is '+'
        + "3\tS\tcov.w5\t1\t1\t1\tsum\t2\tRNA:b\n"
        + "4\tT\tcov.w5\t1\t1\t1\tsum\t5\tRNA:c (-)\n"  # description says '-'
        + "5\tU\tcov.w5\t1\t1\t1\tsum\t4\tRNA:c (+)\n"
        + "6\tV+\tcov.w5\t1\t1\t1\tsum\t7\tRNA:d\n"  # conflicting hints
        + "7\tW+\tcov.w5\t1\t1\t1\tsum\t6\tRNA:d\n"
    )
    with caplog.at_level("WARNING", logger="enformer.data.tracks"):
        sheet = TrackSheet.read(_write(tmp_path, text))
    assert [t.strand for t in sheet] == ["-", "+", "+", "-", "-", "+", "+", "-"]
    assert "strand-paired tracks 6 (V+) and 7 (W+)" in caplog.text


def test_track_and_sheet_validation():
    assert assay_of("chip:CTCF:K562") == "CHIP"
    assert assay_of("plain") == "UNKNOWN"
    assert assay_of(":x") == "UNKNOWN"
    with pytest.raises(ValueError, match="strand must be"):
        Track(0, "a", "b", "C", strand="x")
    assert Track(3, "a", "b", "C").strand_pair == 3
    with pytest.raises(ValueError, match="has index 1; expected 0"):
        TrackSheet([Track(1, "a", "b", "C")])
    with pytest.raises(ValueError, match="outside"):
        TrackSheet([Track(0, "a", "b", "C", strand="+", strand_pair=4)])
    with pytest.raises(ValueError, match="not symmetric"):
        TrackSheet(
            [
                Track(0, "a", "b", "C", strand="+", strand_pair=1),
                Track(1, "c", "d", "C", strand="+", strand_pair=1),
            ]
        )
    sheet = TrackSheet.from_text(ENF_HEADER + "0\t0\tA\tf\t1\t1\tsum\tCAGE:x\n", head="h")
    assert sheet.head == "h" and sheet.path is None and len(sheet) == 1


# ----------------------------------------------------------------------------- locating
class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, list]]:
    """Serve a temporary folder on 127.0.0.1; yields (base URL, folder, request log)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ENFORMER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    root = tmp_path / "served"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("ENFORMER_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ENFORMER_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "enformer"


def test_find_user_path(human_path: Path, tmp_path: Path):
    assert find_track_sheet("human", path=human_path) == human_path
    assert find_track_sheet("human", path=human_path.parent) == human_path
    with pytest.raises(TrackSheetNotFound, match="missing.txt"):
        find_track_sheet("human", path=tmp_path / "missing.txt", download=False)
    with pytest.raises(ValueError, match="plain name"):
        find_track_sheet("../human")


def test_find_beside_weights_and_in_cache(
    human_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ENFORMER_OFFLINE", "1")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"")
    shutil.copy(human_path, weights / "targets_human.txt")
    cache = tmp_path / "cache"
    assert find_track_sheet("human", weights_dir=weights, cache_dir=cache) == (
        weights / "targets_human.txt"
    )
    assert find_track_sheet("human", weights_dir=weights / "model.safetensors") == (
        weights / "targets_human.txt"
    )
    cache.mkdir()
    shutil.copy(human_path, cache / "targets_human.txt")
    monkeypatch.setenv("ENFORMER_CACHE", str(cache))
    assert find_track_sheet("human", weights_dir=tmp_path / "elsewhere") == (
        cache / "targets_human.txt"
    )
    assert len(TrackSheet.read(find_track_sheet("human"), head="human")) == 5313


def test_download_into_cache(server, human_path: Path, tmp_path: Path):
    base, root, requests = server
    shutil.copy(human_path, root / "targets_human.txt")
    cache = tmp_path / "cache"
    url = base + "/targets_{head}.txt"
    found = find_track_sheet("human", cache_dir=cache, url=url)
    assert found == cache / "targets_human.txt"
    assert found.read_bytes() == human_path.read_bytes()
    assert requests == ["/targets_human.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["targets_human.txt"]  # no temp files
    # A second call uses the cache and does not ask the server.
    assert find_track_sheet("human", cache_dir=cache, url=url) == found
    assert requests == ["/targets_human.txt"]
    sheet = TrackSheet.read(find_track_sheet("human", cache_dir=cache, url=url), head="human")
    assert len(sheet) == 5313 and sheet.head == "human"


def test_download_404(server, tmp_path: Path):
    base, _, requests = server
    cache = tmp_path / "cache"
    with pytest.raises(TrackSheetNotFound) as info:
        find_track_sheet(
            "mouse", cache_dir=cache, weights_dir=tmp_path / "w", url=base + "/targets_{head}.txt"
        )
    message = str(info.value)
    assert "HTTP 404" in message
    assert str(tmp_path / "w" / "targets_mouse.txt") in message
    assert str(cache / "targets_mouse.txt") in message
    assert base + "/targets_mouse.txt" in message
    assert "path=" in message and "ENFORMER_CACHE" in message
    assert requests == ["/targets_mouse.txt"]
    assert isinstance(info.value, FileNotFoundError)
    assert not (cache / "targets_mouse.txt").exists()


def test_download_rejects_invalid_content(server, tmp_path: Path):
    base, root, _ = server
    (root / "targets_human.txt").write_text("<html><body>rate limited</body></html>\n")
    cache = tmp_path / "cache"
    with pytest.raises(TrackSheetNotFound, match="not a valid track sheet"):
        find_track_sheet("human", cache_dir=cache, url=base + "/targets_human.txt")
    assert not cache.exists() or not any(cache.iterdir())


def test_download_checks_official_track_count(
    server, tiny_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    base, root, _ = server
    shutil.copy(tiny_path, root / "targets_human.txt")
    monkeypatch.setattr(track_files, "DEFAULT_URL", base + "/targets_{head}.txt")
    cache = tmp_path / "cache"
    with pytest.raises(TrackSheetNotFound, match="74 tracks; the official human head has 5313"):
        find_track_sheet("human", cache_dir=cache)
    assert not (cache / "targets_human.txt").exists()
    # Another head name has no official count, so the same content is accepted.
    shutil.copy(tiny_path, root / "targets_tiny.txt")
    assert find_track_sheet("tiny", cache_dir=cache).name == "targets_tiny.txt"


def test_offline_env_and_download_false(server, human_path: Path, tmp_path: Path, monkeypatch):
    base, root, requests = server
    shutil.copy(human_path, root / "targets_human.txt")
    url = base + "/targets_{head}.txt"
    monkeypatch.setenv("ENFORMER_OFFLINE", "1")
    with pytest.raises(TrackSheetNotFound, match="ENFORMER_OFFLINE is set") as info:
        find_track_sheet("human", cache_dir=tmp_path / "cache", url=url)
    assert "targets_human.txt" in str(info.value)
    monkeypatch.setenv("ENFORMER_OFFLINE", "0")
    with pytest.raises(TrackSheetNotFound, match="download=False"):
        find_track_sheet("human", cache_dir=tmp_path / "cache", url=url, download=False)
    assert requests == []


def test_hf_hub_offline_also_stops_the_download(
    server, human_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """HF_HUB_OFFLINE is the other offline switch: the sheet is not fetched, and the message
    names the switch, the address and how to provide the file."""
    base, root, requests = server
    shutil.copy(human_path, root / "targets_human.txt")
    url = base + "/targets_{head}.txt"
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrackSheetNotFound) as info:
        find_track_sheet("human", cache_dir=cache, url=url)
    message = str(info.value)
    assert f"{base}/targets_human.txt: not downloaded (HF_HUB_OFFLINE is set" in message
    assert "path=" in message and str(cache / "targets_human.txt") in message
    assert requests == [] and not cache.exists()
    # Turned off again, the same call downloads.
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert find_track_sheet("human", cache_dir=cache, url=url) == cache / "targets_human.txt"
    assert requests == ["/targets_human.txt"]


def test_unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ENFORMER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # Bind and close a socket to get a port that nothing listens on.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TrackSheetNotFound, match="download failed"):
        find_track_sheet(
            "human", cache_dir=tmp_path / "cache", url=f"http://127.0.0.1:{port}/x.txt", timeout=5
        )


def test_parse_index_spec_without_a_sheet():
    from enformer.data.tracks import is_index_spec, parse_index_spec

    assert parse_index_spec("0,5,10-12,5", 20) == [0, 5, 10, 11, 12]
    assert parse_index_spec("all", 3) == [0, 1, 2]
    assert is_index_spec(" 1 - 3 , 7") and not is_index_spec("assay:CAGE")
    with pytest.raises(ValueError, match="out of range"):
        parse_index_spec("3", 3)
    with pytest.raises(ValueError, match="reversed"):
        parse_index_spec("5-2", 9, "bin")
    with pytest.raises(ValueError, match="cannot parse bin"):
        parse_index_spec("K562", 9, "bin")
