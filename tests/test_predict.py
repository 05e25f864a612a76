"""enformer.inference.predict: inputs, geometry, augmentation, track selection, model state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.data.genome import Genome, GenomeWarning, Interval
from enformer.data.sequence import one_hot, random_sequence, reverse_complement
from enformer.data.tracks import TrackSheet
from enformer.inference import Prediction, output_geometry, predict

from .conftest import random_onehot, randomize_batch_norm

# Tiny human head: 10 tracks; 0<->5 and 1<->2 are strand pairs, the rest unstranded.
PAIRS = np.array([5, 2, 1, 3, 4, 0, 6, 7, 8, 9])
SHEET_TEXT = (
    "\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"
    + "".join(
        f"{i}\t{ident}\tf{i}.bw\t384\t64\t1.0\tsum\t{PAIRS[i]}\t{desc}\n"
        for i, (ident, desc) in enumerate(
            [
                ("CNhs1+", "CAGE:liver"),
                ("CNhs2+", "CAGE:brain"),
                ("CNhs2-", "CAGE:brain"),
                ("ENCFF003", "DNASE:K562"),
                ("ENCFF004", "DNASE:HepG2"),
                ("CNhs1-", "CAGE:liver"),
                ("ENCFF006", "CHIP:CTCF:K562"),
                ("ENCFF007", "CHIP:H3K27ac:K562"),
                ("ENCFF008", "ATAC:GM12878"),
                ("ENCFF009", "DNASE:GM12878"),
            ]
        )
    )
)


@pytest.fixture(scope="module")
def genome(shared_data):
    g = Genome(shared_data / "genome" / "hg38_subset.fa.gz")
    yield g
    g.close()


@pytest.fixture
def sheet() -> TrackSheet:
    return TrackSheet.from_text(SHEET_TEXT, head="human")


def direct(model: Enformer, x: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """The model's plain forward pass on one-hot ``(N, L, 4)``."""
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(x, dtype=torch.float32))
    return {k: v.numpy() for k, v in out.items()}


def shift_array(x: np.ndarray, s: int) -> np.ndarray:
    """``out[:, i] = x[:, i + s]``, N (zeros) where ``i + s`` is outside."""
    out = np.zeros_like(x)
    n = x.shape[1]
    if s >= 0:
        out[:, : n - s] = x[:, s:]
    else:
        out[:, -s:] = x[:, : n + s]
    return out


# ------------------------------------------------------------------------------ geometry


def test_output_geometry_tiny_and_official():
    g = output_geometry(EnformerConfig.tiny())
    assert (g.input_length, g.bin_size, g.n_bins, g.offset) == (2048, 16, 64, 512)
    off = output_geometry(EnformerConfig.official())
    assert (off.n_bins, off.bin_size, off.offset, off.output_span) == (896, 128, 40_960, 114_688)
    # The TF-Hub length is centre-cropped to 196,608 bp first.
    hub = output_geometry(EnformerConfig.official(), 393_216)
    assert (hub.n_bins, hub.offset) == (896, 98_304 + 40_960)
    # No crop: bins cover the whole input.
    nocrop = output_geometry(EnformerConfig.tiny(target_length=None), 3072)
    assert (nocrop.n_bins, nocrop.offset) == (192, 0)
    # Odd excess: the crop keeps one bin more, offset from the floor.
    odd = output_geometry(EnformerConfig.tiny(target_length=63))
    assert (odd.n_bins, odd.offset) == (64, 32 * 16)
    with pytest.raises(ValueError, match="multiple"):
        output_geometry(EnformerConfig.tiny(), 2050)
    with pytest.raises(ValueError, match="fewer"):
        output_geometry(EnformerConfig.tiny(), 512)


# ------------------------------------------------------------------------------ inputs


def test_arrays_strings_and_tensors_match_the_model(tiny_model):
    x = random_onehot(3, 2048, seed=1, n_frac=0.01).numpy()
    want = direct(tiny_model, x)
    p = predict(tiny_model, x, batch_size=2, progress=False)
    assert isinstance(p, Prediction)
    assert set(p.values) == {"human", "mouse"}
    for head in want:
        assert p.values[head].dtype == np.float32
        np.testing.assert_allclose(p.values[head], want[head], rtol=1e-5, atol=1e-6)
    assert p.tracks == {"human": list(range(10)), "mouse": list(range(6))}
    assert p.intervals == [None, None, None]
    starts, ends = p.bin_coordinates(0)
    assert starts[0] == 512 and ends[-1] == 512 + 64 * 16

    single = predict(tiny_model, torch.from_numpy(x[1]), head="mouse", progress=False)
    assert single.values["mouse"].shape == (1, 64, 6)
    np.testing.assert_allclose(single.values["mouse"][0], want["mouse"][1], rtol=1e-5, atol=1e-6)

    seqs = [random_sequence(2048, seed=i) for i in range(2)]
    p_str = predict(tiny_model, seqs, head="human", progress=False)
    np.testing.assert_allclose(
        p_str.values["human"], direct(tiny_model, one_hot(seqs))["human"], rtol=1e-5, atol=1e-6
    )
    p_one = predict(tiny_model, seqs[0], head="human", progress=False)
    np.testing.assert_allclose(p_one.values["human"][0], p_str.values["human"][0], rtol=1e-6)


def test_only_the_heads_asked_for_are_computed(tiny_model):
    """predict(head="mouse") runs the mouse head only: the human head is never called."""
    calls = {"human": 0, "mouse": 0}
    hooks = [tiny_model.heads[h].register_forward_hook(
        lambda *_, h=h: calls.__setitem__(h, calls[h] + 1)) for h in calls]  # fmt: skip
    try:
        predict(tiny_model, random_onehot(1, 2048, seed=4).numpy(), head="mouse", progress=False)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {"human": 0, "mouse": 1}


def test_genome_intervals_are_centred_windows_with_coordinates(tiny_model, genome):
    iv = Interval("chr1", 300_000, 300_100, name="locus")
    p = predict(
        tiny_model, [iv, "chr2:1,000,001-1,000,001"], genome=genome, head="human", progress=False
    )
    # Window of 2,048 bp centred on the interval: start = centre - 1,024.
    ws = iv.center - 1024
    want = direct(tiny_model, one_hot(genome.fetch("chr1", ws, ws + 2048))[None])["human"][0]
    np.testing.assert_allclose(p.values["human"][0], want, rtol=1e-5, atol=1e-6)
    out = p.intervals[0]
    assert (out.chrom, out.start, out.end, out.name) == ("chr1", ws + 512, ws + 512 + 1024, "locus")
    starts, ends = p.bin_coordinates(0)
    assert starts[0] == ws + 512 and ends[0] == ws + 528 and starts[-1] == ws + 512 + 63 * 16
    # The region string is 1-based: base 1,000,001 is 0-based 1,000,000.
    assert p.intervals[1].start == 1_000_000 - 1024 + 512
    assert p.names == ["locus", "chr2:1,000,001-1,000,001"]


def test_window_past_chromosome_start_is_padded_and_warned(tiny_model, genome):
    with pytest.warns(GenomeWarning, match="padded"):
        p = predict(tiny_model, Interval("chr1", 0, 10), genome=genome, progress=False)
    assert p.intervals[0].start == 5 - 1024 + 512


# ------------------------------------------------------------------------------ augmentation


def test_rc_equals_manual_average_with_strand_pairs(tiny_model, sheet):
    x = random_onehot(2, 2048, seed=3).numpy()
    chosen = [1, 5, 0, 7]
    p = predict(
        tiny_model, x, rc=True, head="human", tracks=chosen, strand_pairs=PAIRS, progress=False
    )
    fwd = direct(tiny_model, x)["human"]
    rev = direct(tiny_model, reverse_complement(x))["human"][:, ::-1][..., PAIRS]
    want = (fwd + rev)[..., chosen] / 2
    np.testing.assert_allclose(p.values["human"], want, rtol=1e-5, atol=1e-6)
    assert p.rc and p.tracks["human"] == chosen
    # The sheet's strand pairs are used by default, and names select tracks.
    q = predict(
        tiny_model,
        x,
        rc=True,
        head="human",
        tracks="CNhs2+,CNhs1-,0,id:ENCFF007",
        track_sheet=sheet,
        progress=False,
    )
    np.testing.assert_allclose(q.values["human"], want, rtol=1e-6, atol=1e-7)
    assert q.track_identifiers["human"] == ["CNhs2+", "CNhs1-", "CNhs1+", "ENCFF007"]
    # Without pairs, tracks are not swapped (and the answer differs for stranded tracks).
    plain = predict(tiny_model, x, rc=True, head="human", tracks=chosen, progress=False)
    rev_plain = direct(tiny_model, reverse_complement(x))["human"][:, ::-1]
    np.testing.assert_allclose(
        plain.values["human"], (fwd + rev_plain)[..., chosen] / 2, rtol=1e-5, atol=1e-6
    )


class _RCSymmetric(torch.nn.Module):
    """A model that is reverse-complement equivariant by construction.

    ``g(x) = (f(x) + P F f(rc(x))) / 2`` with F the bin flip and P the strand-pair swap, so
    ``g(rc(x)) = P F g(x)``: averaging in reverse-complement copies must change nothing.
    """

    def __init__(self, inner: Enformer, pairs: np.ndarray) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.register_buffer("pairs", torch.as_tensor(pairs))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.inner(x)["human"]
        b = self.inner(torch.flip(x, dims=(1, 2)))["human"]
        return {"human": (a + torch.flip(b, dims=(1,))[..., self.pairs]) / 2}


def test_rc_averaging_is_a_no_op_on_an_rc_symmetric_model(tiny_model):
    model = _RCSymmetric(tiny_model, PAIRS)
    x = random_onehot(2, 2048, seed=4, n_frac=0.02).numpy()
    plain = predict(model, x, head="human", progress=False).values["human"]
    averaged = predict(model, x, head="human", rc=True, strand_pairs=PAIRS, progress=False)
    np.testing.assert_allclose(averaged.values["human"], plain, rtol=1e-5, atol=1e-6)
    # Swapping with the wrong permutation (identity) breaks it: the test has teeth.
    wrong = predict(model, x, head="human", rc=True, progress=False).values["human"]
    assert np.abs(wrong - plain).max() > 1e-4


def test_shifts_equal_manual_average_on_arrays(tiny_model):
    x = random_onehot(2, 2048, seed=5).numpy()
    p = predict(tiny_model, x, shifts=(-2, 0, 3), head="mouse", progress=False)
    want = np.mean([direct(tiny_model, shift_array(x, s))["mouse"] for s in (-2, 0, 3)], axis=0)
    np.testing.assert_allclose(p.values["mouse"], want, rtol=1e-5, atol=1e-6)
    assert p.shifts == (-2, 0, 3)


def test_shifts_and_rc_on_genome_intervals_read_shifted_windows(tiny_model, genome):
    iv = Interval("chr2", 500_000, 500_001)
    p = predict(
        tiny_model,
        iv,
        genome=genome,
        shifts=(-1, 0, 1),
        rc=True,
        head="human",
        strand_pairs=PAIRS,
        progress=False,
    )
    ws = iv.center - 1024
    copies = []
    for s in (-1, 0, 1):
        x = one_hot(genome.fetch("chr2", ws + s, ws + s + 2048))[None]
        copies.append(direct(tiny_model, x)["human"])
        copies.append(direct(tiny_model, reverse_complement(x))["human"][:, ::-1][..., PAIRS])
    np.testing.assert_allclose(p.values["human"], np.mean(copies, axis=0), rtol=1e-5, atol=1e-6)


def test_results_do_not_depend_on_batch_size(tiny_model):
    x = random_onehot(5, 2048, seed=6).numpy()
    runs = [
        predict(tiny_model, x, batch_size=b, rc=True, shifts=(-1, 0, 1), progress=False)
        for b in (1, 4, 7, 64)
    ]
    for other in runs[1:]:
        for head in ("human", "mouse"):
            np.testing.assert_allclose(
                other.values[head], runs[0].values[head], rtol=1e-5, atol=1e-6
            )


# ------------------------------------------------------------------------------ model state


def test_model_mode_and_device_are_restored(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.train()
    predict(tiny_model, random_onehot(1, 2048).numpy(), progress=False)
    assert tiny_model.training
    assert all(m.training for m in tiny_model.modules())
    tiny_model.eval()
    predict(tiny_model, random_onehot(1, 2048).numpy(), device="cpu", progress=False)
    assert not tiny_model.training
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched
    assert tiny_model.device.type == "cpu"


def test_model_mode_restored_after_an_error(tiny_model):
    class Boom(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config
            self.seen_training = None

        def forward(self, x):
            self.seen_training = self.training
            raise RuntimeError("boom")

    model = Boom(tiny_model).train()
    with pytest.raises(RuntimeError, match="boom"):
        predict(model, random_onehot(1, 2048).numpy(), progress=False)
    assert model.seen_training is False  # predicted in eval mode
    assert model.training and tiny_model.training  # ... and restored


def test_model_still_trains_after_predict(tiny_model):
    # Nothing cached under inference_mode may leak into a later training step.
    predict(tiny_model, random_onehot(1, 2048).numpy(), progress=False)
    tiny_model.train()
    loss = tiny_model(random_onehot(2, 2048, seed=9))["human"].sum()
    loss.backward()
    assert tiny_model.heads["human"].linear.weight.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_restored_after_running_on_cuda(tiny_model):  # pragma: no cover - GPU only
    x = random_onehot(2, 2048).numpy()
    p = predict(tiny_model, x, device="cuda", progress=False)
    assert tiny_model.device.type == "cpu"
    np.testing.assert_allclose(p.values["human"], direct(tiny_model, x)["human"], atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bfloat16_autocast_on_cuda(tiny_model):  # pragma: no cover - GPU only
    x = random_onehot(2, 2048).numpy()
    full = predict(tiny_model, x, device="cuda", progress=False).values["human"]
    bf = predict(tiny_model, x, device="cuda", dtype=torch.bfloat16, progress=False)
    assert bf.values["human"].dtype == np.float32 and tiny_model.device.type == "cpu"
    np.testing.assert_allclose(bf.values["human"], full, rtol=0.05, atol=0.05)


def test_cpu_autocast_when_asked(tiny_model):
    x = random_onehot(1, 2048, seed=2).numpy()
    full = predict(tiny_model, x, head="human", progress=False).values["human"]
    low = predict(tiny_model, x, head="human", dtype=torch.bfloat16, progress=False)
    assert low.values["human"].dtype == np.float32
    np.testing.assert_allclose(low.values["human"], full, rtol=0.1, atol=0.05)


def test_other_models_work_too():
    torch.manual_seed(1)
    cfg = EnformerConfig.tiny(target_length=32, heads={"only": 3}, description="mini")
    model = Enformer(cfg).eval()
    randomize_batch_norm(model, seed=1)
    x = random_onehot(2, 2048, seed=7).numpy()
    p = predict(model, x, progress=False)
    assert p.values["only"].shape == (2, 32, 3)
    assert p.offset == (128 - 32) // 2 * 16 and p.metadata["description"] == "mini"
    np.testing.assert_allclose(p.values["only"], direct(model, x)["only"], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ errors


def test_bad_inputs_give_clear_errors(tiny_model, genome):
    x = random_onehot(1, 2048).numpy()
    with pytest.raises(ValueError, match="need a genome"):
        predict(tiny_model, "chr1:1,001-2,000", progress=False)
    with pytest.raises(ValueError, match="cannot parse region"):
        predict(tiny_model, ["chr1:abc-def"], genome=genome, progress=False)
    with pytest.raises(ValueError, match="not in hg38_subset"):
        predict(tiny_model, "chrUn_nope:1-100", genome=genome, progress=False)
    with pytest.raises(ValueError, match="UCSC-style|Ensembl-style"):
        predict(tiny_model, Interval("1", 100_000, 100_001), genome=genome, progress=False)
    with pytest.raises(ValueError, match="outside chr1"):
        predict(tiny_model, "chr1:300,000,000-300,000,010", genome=genome, progress=False)
    with pytest.raises(ValueError, match="no head"):
        predict(tiny_model, x, head="fly", progress=False)
    with pytest.raises(ValueError, match="out of range"):
        predict(tiny_model, x, head="human", tracks=[10], progress=False)
    with pytest.raises(ValueError, match="needs a track sheet"):
        predict(tiny_model, x, head="human", tracks="assay:CAGE", progress=False)
    with pytest.raises(ValueError, match="shape"):
        predict(tiny_model, np.zeros((2048, 5), np.float32), progress=False)
    with pytest.raises(ValueError, match="multiple"):
        predict(tiny_model, "ACG" * 700, progress=False)
    with pytest.raises(ValueError, match="same length"):
        predict(tiny_model, ["A" * 2048, "C" * 2032], progress=False)
    with pytest.raises(ValueError, match="permutation"):
        predict(tiny_model, x, head="human", rc=True, strand_pairs=[0, 0, 1], progress=False)
    with pytest.raises(ValueError, match="repeat"):
        predict(tiny_model, x, shifts=(0, 0), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        predict(tiny_model, x, batch_size=0, progress=False)
