"""One way to say what to predict: enformer.inference.selection.

``select_tracks`` turns every accepted selection into output indices, each listed once in
the order given; ``track_sheet_for`` finds a head's sheet in a fixed order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enformer.data.tracks import TrackSheet, TrackSheetNotFound
from enformer.inference.selection import (
    HeadSelection,
    default_head,
    resolve_heads,
    resolve_selection,
    resolve_strand_pairs,
    resolve_tracks,
    select_for_weights,
    select_tracks,
    track_sheet_for,
)
from enformer.model.config import EnformerConfig

HEADER = "\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"
ROWS = [  # identifier, strand partner, description
    ("CNhs1+", 1, "CAGE:K562 ENCODE, biol_"),
    ("CNhs1-", 0, "CAGE:K562 ENCODE, biol_"),
    ("ENCFF001", 2, "DNASE:K562"),
    ("ENCFF002", 3, "DNASE:HepG2"),
    ("ENCFF003", 4, "CHIP:CTCF:K562"),
    ("ENCFF004", 5, "CHIP:CTCF:HepG2"),
    ("ENCFF005", 6, "ATAC:liver"),
    ("ENCFF006", 7, "CAGE:HepG2"),
]
TEXT = HEADER + "".join(
    f"{i}\t{ident}\tf{i}.w5\t32\t384\t1\tsum\t{pair}\t{desc}\n"
    for i, (ident, pair, desc) in enumerate(ROWS)
)


def sheet_text(n: int = len(ROWS)) -> str:
    return HEADER + "".join(TEXT.splitlines(keepends=True)[1 : n + 1])


@pytest.fixture(scope="module")
def config() -> EnformerConfig:
    return EnformerConfig.preset("tiny", heads={"human": 8, "mouse": 3})


@pytest.fixture(scope="module")
def sheet() -> TrackSheet:
    return TrackSheet.from_text(TEXT, head="human")


# spec -> indices, with the sheet ("sheet") or without one ("plain").
TABLE = [
    ("plain", None, list(range(8))),
    ("plain", "all", list(range(8))),
    ("plain", " * ", list(range(8))),
    ("plain", 3, [3]),
    ("plain", [5, 1], [5, 1]),  # order kept
    ("plain", np.array([2, 2, 0]), [2, 0]),  # duplicates listed once
    ("plain", "6,1-3,2", [6, 1, 2, 3]),  # ranges inclusive, repeats dropped
    ("plain", ["7", 0, "0-1"], [7, 0, 1]),
    ("plain", slice(None, None, 3), [0, 3, 6]),
    ("plain", np.arange(8) % 4 == 0, [0, 4]),  # boolean mask
    ("sheet", "all", list(range(8))),
    ("sheet", "5,0-1,5", [5, 0, 1]),
    ("sheet", "assay:dnase", [2, 3]),
    ("sheet", "search:hepg2", [3, 5, 7]),
    ("sheet", "desc:HepG2", [3, 5, 7]),
    ("sheet", "id:encff004", [5]),
    ("sheet", "ENCFF006,ENCFF001", [7, 2]),  # identifiers, in the order given
    ("sheet", "CAGE:K562", [0, 1]),  # ASSAY:text
    ("sheet", "CHIP:CTCF", [4, 5]),
    ("sheet", "strand:-", [1]),
    ("sheet", "K562", [0, 1, 2, 4]),  # free text in descriptions
    ("sheet", "assay:CAGE,search:K562", [0, 1, 7, 2, 4]),
    ("sheet", ["search:K562", 7, "ENCFF001"], [0, 1, 2, 4, 7]),
]


@pytest.mark.parametrize(("where", "spec", "expected"), TABLE)
def test_select_tracks_table(config, sheet, where, spec, expected):
    chosen = select_tracks(config, spec, head="human", sheet=sheet if where == "sheet" else None)
    assert chosen.indices == expected
    assert chosen.head == "human" and len(chosen) == len(expected)
    if where == "sheet":
        assert chosen.identifiers == [ROWS[i][0] for i in expected]
        assert chosen.descriptions == [ROWS[i][2] for i in expected]
        assert chosen.strand_pairs.tolist() == [1, 0, 2, 3, 4, 5, 6, 7]
    else:
        assert chosen.identifiers is None and chosen.strand_pairs is None
        assert chosen.names == [str(i) for i in expected]


ERRORS = [
    ("plain", 8, r"track index 8 is out of range for head 'human' \(0\.\.7\)"),
    ("plain", [0, -1], r"track index -1 is out of range"),
    ("plain", "2,9", r"track index 9 is out of range \(0\.\.7\)"),
    ("plain", "5-2", r"track range '5-2' is reversed"),
    ("plain", "assay:CAGE", r"'assay:CAGE' for head 'human' needs a track sheet"),
    ("plain", ["1", "K562"], r"'K562' for head 'human' needs a track sheet"),
    ("plain", np.ones(3, dtype=bool), r"boolean track mask for head 'human' must have shape"),
    ("plain", slice(9, None), r"the track selection for head 'human' is empty"),
    ("sheet", "12", r"track index 12 is out of range 0\.\.7"),
    ("sheet", "ENCFF00X", r"neither a track identifier.*did you mean"),
    ("sheet", "id:ENCFF999", r"no track has identifier 'ENCFF999'"),
    ("sheet", "assay:RNA", r"no track has assay 'RNA'; assays in this sheet: CAGE"),
    ("sheet", "search:", r"has nothing after the ':'"),
]


@pytest.mark.parametrize(("where", "spec", "message"), ERRORS)
def test_select_tracks_errors(config, sheet, where, spec, message):
    with pytest.raises(ValueError, match=message):
        select_tracks(config, spec, head="human", sheet=sheet if where == "sheet" else None)


def test_heads_and_sheet_size(config, sheet, tmp_path):
    assert default_head(config) == "human"
    assert select_tracks(config).head == "human"
    assert default_head(EnformerConfig.preset("tiny", heads={"fly": 2, "worm": 1})) == "fly"
    assert resolve_heads(None, config) == ["human", "mouse"]
    assert resolve_heads("mouse", config) == ["mouse"]
    with pytest.raises(ValueError, match="the model has no head 'fly'; it has human, mouse"):
        select_tracks(config, head="fly")
    with pytest.raises(ValueError, match="head names repeat"):
        resolve_heads(["human", "human"], config)
    with pytest.raises(ValueError, match="has 8 tracks but head 'mouse' outputs 3; pass the"):
        select_tracks(config, "0", head="mouse", sheet=sheet)
    with pytest.raises(TypeError, match="track indices must be integers"):
        select_tracks(config, [0.5], head="human")
    # A sheet may be given as its file.
    path = tmp_path / "targets_human.txt"
    path.write_text(TEXT)
    assert select_tracks(config, "assay:ATAC", sheet=path).indices == [6]
    # Several heads at once, per-head selections and sheets.
    indices, identifiers = resolve_tracks(
        config, ["human", "mouse"], {"human": "CAGE:HepG2", "mouse": [2, 2]}, {"human": sheet}
    )
    assert indices == {"human": [7], "mouse": [2]}
    assert identifiers == {"human": ["ENCFF006"]}


def _weights(tmp_path: Path, n: int | None) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir(exist_ok=True)
    if n is not None:
        (folder / "targets_human.txt").write_text(sheet_text(n))
    return folder


def test_track_sheet_for_search_order(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("ENFORMER_CACHE", str(cache))
    monkeypatch.setenv("ENFORMER_OFFLINE", "1")
    weights = _weights(tmp_path, 8)
    given = tmp_path / "given.txt"
    given.write_text(sheet_text(8))
    data = tmp_path / "data_targets.txt"
    data.write_text(sheet_text(8))
    (cache / "targets_human.txt").write_text(sheet_text(8))

    def found(**kw):
        sheet = track_sheet_for(weights, "human", n_tracks=8, **kw)
        return None if sheet is None else sheet.path

    # 1. --targets (file or folder) first, 2. `also` files, 3. beside the weights, 4. cache.
    assert found(targets=given, also=[data]) == given
    assert found(targets=weights) == weights / "targets_human.txt"
    assert found(also=[tmp_path / "missing.txt", data]) == data
    assert found() == weights / "targets_human.txt"
    (weights / "targets_human.txt").unlink()
    assert found() == cache / "targets_human.txt"
    # A sheet of another size is passed over (or refused when given or required).
    (weights / "targets_human.txt").write_text(sheet_text(5))
    assert found() == cache / "targets_human.txt"
    with pytest.raises(ValueError, match="has 5 tracks but head 'human' outputs 8"):
        found(required=True)
    with pytest.raises(ValueError, match="has 5 tracks but head 'human' outputs 8"):
        found(targets=weights)
    (cache / "targets_human.txt").unlink()
    assert found() is None
    (weights / "targets_human.txt").unlink()
    with pytest.raises(TrackSheetNotFound, match="ENFORMER_OFFLINE"):
        found(required=True, download=True)
    with pytest.raises(TrackSheetNotFound, match="not found"):
        found(targets=tmp_path / "nope.txt")


def test_select_for_weights_needs_a_sheet_only_for_names(config, tmp_path, monkeypatch):
    monkeypatch.setenv("ENFORMER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENFORMER_OFFLINE", "1")
    bare = tmp_path / "bare"
    bare.mkdir()
    chosen = select_for_weights(bare, config, "3,1")
    assert chosen.indices == [3, 1] and chosen.sheet is None
    with pytest.raises(TrackSheetNotFound):
        select_for_weights(bare, config, "assay:CAGE")
    weights = _weights(tmp_path, 8)
    chosen = select_for_weights(weights, config, "assay:CAGE")
    assert chosen.indices == [0, 1, 7] and chosen.sheet_path == str(weights / "targets_human.txt")
    # Indices use a local sheet when there is one (identifiers, strand pairs).
    assert select_for_weights(weights, config, "1").identifiers == ["CNhs1-"]
    # A mis-sized local sheet is ignored for indices, refused for names.
    (weights / "targets_human.txt").write_text(sheet_text(5))
    assert select_for_weights(weights, config, "1").sheet is None
    with pytest.raises(ValueError, match="has 5 tracks but head 'human' outputs 8"):
        select_for_weights(weights, config, "assay:CAGE")


def test_resolve_selection_is_the_three_resolvers_at_once(config, sheet):
    sel = resolve_selection(config, "human", "assay:CAGE", sheet, None)
    assert isinstance(sel, HeadSelection)
    assert sel.heads == ["human"]
    assert sel.indices == {"human": [0, 1, 7]}
    assert sel.identifiers == {"human": ["CNhs1+", "CNhs1-", "ENCFF006"]}
    # the sheet pairs tracks 0 and 1 (the rest with themselves)
    np.testing.assert_array_equal(sel.strand_pairs["human"], [1, 0, 2, 3, 4, 5, 6, 7])
    heads = resolve_heads(None, config)
    indices, identifiers = resolve_tracks(config, heads, {"mouse": [2, 0]}, None)
    pairs = resolve_strand_pairs(config, heads, None, None)
    both = resolve_selection(config, None, {"mouse": [2, 0]}, None, None)
    assert both.heads == heads == ["human", "mouse"]
    assert both.indices == indices and both.indices["mouse"] == [2, 0]
    assert both.identifiers == identifiers == {}
    assert both.strand_pairs == pairs == {"human": None, "mouse": None}


def test_engine_for_selection_keeps_the_request(config, sheet):
    import torch

    from enformer.inference.engine import Engine
    from enformer.model import Enformer

    model = Enformer(config)
    sel = resolve_selection(config, "human", [7, 1], sheet, None)
    engine = Engine.for_selection(model, sel, rc=True, shifts=(0, 1), batch_size=4)
    assert engine.heads == ["human"] and engine.rc and engine.shifts == (0, 1)
    assert engine.copies == 4 and engine.chunk_size == 1
    assert engine.device == torch.device("cpu")
    # The selection's strand pairs reach the engine: reverse-complement copies read track 1's
    # partner (track 0), so column 1 differs from an engine without pairs; track 7 is unpaired.
    torch.manual_seed(0)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (1, config.sequence_length + 2)), 4).float()
    unpaired = Engine(
        model, heads=["human"], tracks={"human": [7, 1]}, rc=True, shifts=(0, 1), batch_size=4
    )
    with engine:
        paired_out = engine.run(x)["human"]
    with unpaired:
        plain_out = unpaired.run(x)["human"]
    assert paired_out.shape == (1, config.target_length, 2)
    np.testing.assert_allclose(paired_out[..., 0], plain_out[..., 0], rtol=1e-6, atol=1e-6)
    assert np.abs(paired_out[..., 1] - plain_out[..., 1]).max() > 1e-4
