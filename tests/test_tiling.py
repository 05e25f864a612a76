"""enformer.inference.tiling: tiles whose output bins abut exactly, predicted in a stream."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.data.genome import Genome, Interval
from enformer.data.sequence import one_hot
from enformer.inference import (
    Engine,
    output_geometry,
    plan_tiles,
    predict,
    predict_tiles,
    whole_chromosomes,
)

from .conftest import randomize_batch_norm

TINY = output_geometry(EnformerConfig.tiny())  # 2,048 bp in, 64 bins of 16 bp from 512
SIZES = {"chrA": 10_000, "chrB": 3_000}


@pytest.fixture(scope="module")
def genome(shared_data):
    g = Genome(shared_data / "genome" / "hg38_subset.fa.gz")
    yield g
    g.close()


def direct(model, seq: str) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(one_hot(seq))[None])["human"][0].numpy()


def collect(model, genome, tiles, **kwargs):
    """Run predict_tiles; return {tile.index: (tile, human values)} and the call order."""
    got: dict = {}
    order: list[int] = []
    engine = Engine(model, heads=["human"], tracks={"human": list(range(10))}, **kwargs)

    def writer(tile, arrays):
        got[tile.index] = (tile, arrays["human"])
        order.append(tile.index)

    with engine:
        predict_tiles(engine, genome, tiles, writer, progress=False)
    return got, order


# ------------------------------------------------------------------------------ planning


def test_tiles_abut_and_cover_the_region():
    plan = plan_tiles([Interval("chrA", 1_000, 4_500)], TINY, chrom_sizes=SIZES)
    assert plan.step == 1024 and len(plan) == 4 and plan.total_bins == math.ceil(3500 / 16)
    tiles = list(plan)
    for k, tile in enumerate(tiles):
        assert tile.out_start == 1_000 + k * 1024
        assert tile.window_start == tile.out_start - 512
        assert tile.window_end - tile.window_start == 2048
        assert tile.bin_offset == 64 * k
    assert [t.n_keep for t in tiles] == [64, 64, 64, 219 - 192]
    last = tiles[-1]
    assert last.out_start + last.n_keep * 16 >= 4_500 > last.out_start + (last.n_keep - 1) * 16


def test_alignment_start_or_grid():
    region = Interval("chrA", 1_003, 2_000)
    start = plan_tiles([region], TINY, chrom_sizes=SIZES, align="start")
    grid = plan_tiles([region], TINY, chrom_sizes=SIZES, align="grid")
    assert start.tile(0).out_start == 1_003
    assert grid.tile(0).out_start == 992 and grid.regions[0].n_bins == math.ceil(1008 / 16)
    with pytest.raises(ValueError, match="align"):
        plan_tiles([region], TINY, chrom_sizes=SIZES, align="centre")


def test_official_geometry_steps_by_114688():
    geometry = output_geometry(EnformerConfig.official())
    plan = plan_tiles(
        [Interval("chr1", 0, 248_956_422)], geometry, chrom_sizes={"chr1": 248_956_422}
    )
    assert plan.step == 114_688 and len(plan) == math.ceil(248_956_422 / 114_688)
    t = plan.tile(1)
    assert (t.out_start, t.window_start, t.window_end) == (114_688, 114_688 - 40_960, 270_336)
    assert plan.tile(0).window_start == -40_960  # padded with N before the chromosome start


def test_whole_chromosome_plans_are_lazy_and_tiny(genome):
    regions = whole_chromosomes(genome, ["chr1"])
    plan = plan_tiles(regions, TINY, chrom_sizes=genome.chrom_sizes)
    n = math.ceil(248_956_422 / 1024)
    assert len(plan) == n  # ~243k tiles, none of them stored
    last = plan.tile(n - 1)
    assert last.out_start == (n - 1) * 1024
    assert last.out_start + last.n_keep * 16 >= 248_956_422
    with pytest.raises(IndexError):
        plan.tile(n)


def test_region_checks_and_clipping(caplog):
    with pytest.raises(ValueError, match="not in the genome"):
        plan_tiles([Interval("chrZ", 0, 10)], TINY, chrom_sizes=SIZES)
    with pytest.raises(ValueError, match="starts outside"):
        plan_tiles([Interval("chrB", 3_000, 3_010)], TINY, chrom_sizes=SIZES)
    with pytest.raises(ValueError, match="empty"):
        plan_tiles([Interval("chrB", 10, 10)], TINY, chrom_sizes=SIZES)
    plan = plan_tiles([Interval("chrB", 2_000, 5_000)], TINY, chrom_sizes=SIZES)
    assert plan.regions[0].end == 3_000 and plan.total_bins == 63
    assert "clipped" in caplog.text


def test_merge_sorts_and_joins_overlapping_regions():
    regions = [
        Interval("chrB", 100, 200),
        Interval("chrA", 5_000, 6_000),
        Interval("chrA", 1_000, 2_000),
        Interval("chrA", 1_990, 3_000),  # starts inside the last bin of the previous one
        Interval("chrA", 3_008, 3_100),  # starts after the previous bins end: kept apart
    ]
    plan = plan_tiles(regions, TINY, chrom_sizes=SIZES, merge=True)
    got = [(r.chrom, r.start, r.end) for r in plan.regions]
    assert got == [
        ("chrA", 1_000, 3_000),
        ("chrA", 3_008, 3_100),
        ("chrA", 5_000, 6_000),
        ("chrB", 100, 200),
    ]


# ------------------------------------------------------------------------------ predicting


def test_tiles_equal_the_model_on_their_windows_and_abut(tiny_model, genome):
    # chr1:10,000-13,000 is real sequence; tiles 0|1 and 1|2 meet at 11,024 and 12,048.
    plan = plan_tiles([Interval("chr1", 10_000, 13_000)], TINY, chrom_sizes=genome.chrom_sizes)
    got, order = collect(tiny_model, genome, plan, batch_size=2)
    assert order == [0, 1, 2]
    for tile, values in got.values():
        want = direct(tiny_model, genome.fetch("chr1", tile.window_start, tile.window_end))
        np.testing.assert_allclose(values, want[: tile.n_keep], rtol=1e-5, atol=1e-6)
    # Stitch the bins: consecutive genomic positions, no gap, no overlap.
    starts = np.concatenate(
        [t.out_start + 16 * np.arange(t.n_keep) for t, _ in (got[i] for i in range(3))]
    )
    assert np.array_equal(starts, 10_000 + 16 * np.arange(plan.total_bins))


def test_two_tilings_give_identical_bins(tiny_model, genome):
    long = plan_tiles([Interval("chr2", 100_000, 106_000)], TINY, chrom_sizes=genome.chrom_sizes)
    sub = plan_tiles(
        [Interval("chr2", 100_000 + 2 * 1024, 100_000 + 4 * 1024 + 100)],
        TINY,
        chrom_sizes=genome.chrom_sizes,
    )
    a, _ = collect(tiny_model, genome, long, batch_size=4)
    b, _ = collect(tiny_model, genome, sub, batch_size=1)
    for k in range(len(sub)):
        tile_b, values_b = b[k]
        tile_a, values_a = a[k + 2]
        assert tile_b.out_start == tile_a.out_start
        n = tile_b.n_keep
        np.testing.assert_allclose(values_b, values_a[:n], rtol=1e-5, atol=1e-6)


def test_tiled_equals_untiled_on_a_local_model(genome):
    """A model without transformer layers sees ~100 bp: tiles must equal one long input."""
    torch.manual_seed(3)
    cfg = EnformerConfig.tiny(num_transformer_layers=0)
    tiled_model = Enformer(cfg).eval()
    randomize_batch_norm(tiled_model, seed=3)
    # Same weights, no crop, 6,144-bp input: bins cover the whole input.
    long_cfg = EnformerConfig.tiny(
        num_transformer_layers=0, target_length=None, sequence_length=6144
    )
    long_model = Enformer(long_cfg).eval()
    long_model.load_state_dict(tiled_model.state_dict())

    region = Interval("chr1", 500_000, 500_000 + 3 * 1024)
    plan = plan_tiles([region], TINY, chrom_sizes=genome.chrom_sizes)
    got, _ = collect(tiled_model, genome, plan, batch_size=3)
    tiled = np.concatenate([got[i][1] for i in range(len(plan))])  # (192, 10)

    untiled = predict(long_model, region, genome=genome, head="human", progress=False)
    out = untiled.intervals[0]
    first = (region.start - out.start) // 16
    np.testing.assert_allclose(
        untiled.values["human"][0, first : first + len(tiled)], tiled, rtol=1e-4, atol=1e-5
    )


def test_rc_and_shifts_in_tiles_match_predict(tiny_model, genome):
    plan = plan_tiles([Interval("chr1", 20_000, 22_048)], TINY, chrom_sizes=genome.chrom_sizes)
    got, _ = collect(tiny_model, genome, plan, rc=True, shifts=(-1, 1), batch_size=3)
    for tile, values in got.values():
        centre = Interval(tile.chrom, tile.window_start + 1024, tile.window_start + 1025)
        p = predict(
            tiny_model,
            centre,
            genome=genome,
            head="human",
            rc=True,
            shifts=(-1, 1),
            progress=False,
        )
        assert p.intervals[0].start == tile.out_start
        np.testing.assert_allclose(values, p.values["human"][0], rtol=1e-5, atol=1e-6)


def test_streaming_consumes_tiles_lazily(tiny_model, genome):
    plan = plan_tiles(whole_chromosomes(genome, ["chr1"]), TINY, chrom_sizes=genome.chrom_sizes)
    pulled = []

    def source():
        for tile in itertools.islice(iter(plan), 9, 14):
            pulled.append(tile.index)
            yield tile

    seen = []
    engine = Engine(tiny_model, heads=["human"], tracks={"human": [0]}, batch_size=2)

    def writer(tile, arrays):
        # When tile k arrives, at most one more chunk (2 tiles) has been read from the source.
        assert len(pulled) <= len(seen) + 2
        seen.append(tile.index)
        assert arrays["human"].shape == (64, 1)

    with engine:
        n = predict_tiles(engine, genome, source(), writer, progress=False)
    assert n == 5 and seen == [9, 10, 11, 12, 13]
