"""Does the attention work? A synthetic long-range enhancer -> promoter task.

The paper's core claim (Avsec et al. 2021) is that attention lets Enformer use regulatory
elements far beyond a convolutional receptive field. This benchmark tests exactly that on a
task that only a long-range model can solve:

* **Sequences**: 131,072 bp of uniform random DNA (1,024 bins of 128 bp).
* **Promoter**: the consensus of a TATA-box motif (JASPAR MA0108.3 TBP, ``TATAAAA``) planted
  in the centre bin (bin 512) of every sequence.
* **Enhancer** (half of the sequences, the *positives*): a cluster of ``--copies`` (32)
  copies of the consensus of JASPAR MA0139.2 CTCF (``GCCACCAGGGGGCGC``), forward strand, one
  copy at a random offset in each of 32 consecutive 128-bp bins (a 4-kb cluster), whose
  centre lies at a uniformly drawn distance from the promoter, up- or downstream (random
  side), chosen so that **every copy lies 20-60 kb from the promoter**.
* **Decoy** (every sequence, positives and negatives): a cluster of the same shape made of
  the consensus of a different motif (JASPAR MA0138.3 REST), also at 20-60 kb (random side,
  never overlapping the enhancer). A model cannot solve the task by noticing "some planted
  cluster far away"; it has to recognise the enhancer motif.
* **Clean background**: exact matches of the enhancer and decoy consensus (either strand)
  are removed from the random background before planting, so the enhancer motif never
  occurs anywhere except in the planted cluster, and in particular never within 20 kb of
  the promoter. The target therefore depends only on enhancer presence at 20-60 kb (our
  answer to "does an enhancer < 20 kb away count?": it never occurs).
* **Target**: count tracks over all 1,024 bins. Track 0 (the "CAGE" track that is
  evaluated): the promoter bin is Poisson(``--high``=20) if the enhancer is present, else
  Poisson(``--low``=2); every other bin is Poisson(``--noise``=0.2). Track 1 (auxiliary, an
  enhancer-factor "ChIP" track, ``--aux-high``; 0 drops it): Poisson(10) at the bins of the
  enhancer copies, Poisson(0.2) elsewhere. It mirrors real Enformer training, where ChIP-seq
  tracks of the factors tell the trunk what the motifs are, and it serves as a local positive
  control: a model that cannot predict the promoter may still detect the enhancer where it is.
  It is not used to score the promoter.
* **Models** (same stem and conv tower: channels 64, 7 halvings -> 128-bp bins):
  (a) a small Enformer with ``--layers`` transformer layers (relative positions, 4 heads);
  (b) a conv-only model: the same stem/tower with ``num_transformer_layers=0`` followed by a
  Basenji-style stack of dilated residual convolutions at 128-bp resolution in place of the
  transformer, whose receptive field is ~20 kb (computed from the kernel sizes, poolings and
  dilations, printed, and checked from the input gradient). The Enformer stem and conv tower
  alone see only 646 bp, so the dilated stack is what gives the conv-only model its ~20 kb.
* **Training**: identical for both: the same stream of freshly generated batches (no
  example is seen twice), Poisson loss per track (track 0 over its central
  ``--promoter-bins``=32 bins, track 1 over all bins; the two means summed), Adam at 2e-3,
  20 warm-up steps then constant, global-norm clipping at 5, 200 steps of batch 4, via
  ``enformer.train.train_step`` (``build_optimizer``, ``build_scheduler``, ``poisson_loss``).
* **Evaluation**: a held-out test set with ``--test-per-bucket`` positives and as many
  negatives in each distance bucket (20-30, 30-40, 40-50, 50-60 kb; a negative's distance is
  where its enhancer would have been, so buckets are balanced). The score is the predicted
  promoter-bin signal. We report AUROC per bucket and accuracy at the threshold that
  maximises accuracy on a separate validation set. For the Enformer we also report how much
  attention the promoter bin pays to the enhancer bins compared with the decoy bins and with
  a uniform spread.

How the defaults were reached (seed 0, Enformer only, validation AUROC of the promoter):
8 copies, promoter track only (32 central bins), lr 1e-3, clip 1: chance after 175 steps.
Adding the auxiliary track (loss averaged over all 1,024 bins x 2 tracks): the enhancer was
detected at its own bins by step 75, but not routed to the promoter by step 175. The
per-track loss: same. 32 copies, lr 2e-3, clip 5: promoter AUROC 1.000 from step 100 on.
See benchmarks/results/attention_distance.md.

Run (about 20 minutes on one CPU thread with the defaults)::

    python benchmarks/attention_distance.py --seed 0 --out benchmarks/results/attention_distance.md
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from enformer.interpret.attention import capture_attention
from enformer.interpret.motifs import plant_motif, read_meme
from enformer.model import Enformer, EnformerConfig
from enformer.model.enformer import Head, Trunk
from enformer.model.layers import gelu
from enformer.train import build_optimizer, build_scheduler, poisson_loss, train_step

HERE = Path(__file__).resolve().parent
MOTIFS = (
    HERE.parent.parent
    / "shared"
    / "data"
    / "motifs"
    / "JASPAR2024_CORE_vertebrates_nonredundant.meme"
)
BUCKETS = [(20_000, 30_000), (30_000, 40_000), (40_000, 50_000), (50_000, 60_000)]
BIN = 128
COMPLEMENT = str.maketrans("ACGT", "TGCA")
LUT = np.frombuffer(b"ACGT", dtype=np.uint8)


def revcomp(s: str) -> str:
    return s.translate(COMPLEMENT)[::-1]


# ====================================================================== data


@dataclass
class TaskSpec:
    length: int
    promoter: str
    enhancer: str
    decoy: str
    copies: int
    target_bins: int
    high: float
    low: float
    noise: float
    aux_high: float = 0.0

    @property
    def centre(self) -> int:
        return self.length // 2

    @property
    def promoter_pos(self) -> int:
        # Inside the centre bin (bin length/256), away from its edges.
        return self.centre + (BIN - len(self.promoter)) // 2

    @property
    def cluster_bp(self) -> int:
        return self.copies * BIN

    def distance_range(self) -> tuple[int, int]:
        """Allowed cluster-centre distances so that every copy lies within 20-60 kb."""
        half = self.cluster_bp // 2
        return 20_000 + half, 60_000 - half


def _scrub(seq: np.ndarray, patterns: list[bytes], rng: np.random.Generator) -> None:
    """Mutate random background until none of ``patterns`` occurs (in place)."""
    while True:
        text = LUT[seq].tobytes()
        hits = []
        for p in patterns:
            start = text.find(p)
            while start >= 0:
                hits.append(start + len(p) // 2)
                start = text.find(p, start + 1)
        if not hits:
            return
        for h in hits:
            seq[h] = (seq[h] + rng.integers(1, 4)) % 4


def _cluster_positions(spec: TaskSpec, distance: int, side: int, rng, width: int) -> list[int]:
    """Start positions of the copies of a cluster centred ``distance`` bp from the promoter."""
    c = spec.centre + BIN // 2  # centre of the promoter bin
    first = c + side * distance - spec.cluster_bp // 2  # left edge of the cluster
    first = (first // BIN) * BIN  # align slots to bins: one copy per bin
    return [first + k * BIN + int(rng.integers(0, BIN - width + 1)) for k in range(spec.copies)]


def make_example(
    spec: TaskSpec, rng: np.random.Generator, positive: bool, distance: int | None = None
):
    """One sequence (uint8 0..3), its target (bins,) and metadata."""
    lo, hi = spec.distance_range()
    if distance is None:
        distance = int(rng.integers(lo, hi + 1))
    side = int(rng.choice([-1, 1]))
    seq = rng.integers(0, 4, spec.length, dtype=np.uint8)
    pats = [m.encode() for m in (spec.enhancer, spec.decoy)]
    pats += [revcomp(m).encode() for m in (spec.enhancer, spec.decoy)]
    _scrub(seq, pats, rng)
    text = LUT[seq].tobytes().decode()
    text = plant_motif(text, spec.promoter, spec.promoter_pos)
    enh = _cluster_positions(spec, distance, side, rng, len(spec.enhancer))
    enh_span = (min(enh), max(enh) + len(spec.enhancer))
    if positive:
        for p in enh:
            text = plant_motif(text, spec.enhancer, p)
    # Decoy cluster: independent distance and side, not overlapping the enhancer cluster
    # (its would-be position in negatives, so both classes look alike apart from the motif).
    while True:
        dd = int(rng.integers(lo, hi + 1))
        ds = int(rng.choice([-1, 1]))
        dec = _cluster_positions(spec, dd, ds, rng, len(spec.decoy))
        dec_span = (min(dec), max(dec) + len(spec.decoy))
        if dec_span[1] + BIN <= enh_span[0] or dec_span[0] >= enh_span[1] + BIN:
            break
    for p in dec:
        text = plant_motif(text, spec.decoy, p)
    seq = np.frombuffer(text.encode(), dtype=np.uint8)
    seq = np.searchsorted(LUT, seq).astype(np.uint8)  # A,C,G,T -> 0..3 (LUT is sorted)
    # Target over the central bins: track 0 = promoter signal ("CAGE"); with aux_high > 0,
    # track 1 = binding of the enhancer factor ("ChIP") at the enhancer copies' own bins.
    tb = spec.target_bins
    offset = (spec.length // BIN - tb) // 2
    n_tracks = 2 if spec.aux_high > 0 else 1
    target = rng.poisson(spec.noise, (tb, n_tracks)).astype(np.float32)
    prom_bin = spec.promoter_pos // BIN - offset
    target[prom_bin, 0] = rng.poisson(spec.high if positive else spec.low)
    if positive and spec.aux_high > 0:
        for b in sorted({p // BIN for p in enh}):
            if not 0 <= b - offset < tb:
                raise ValueError("the auxiliary track needs target bins covering +-60 kb")
            target[b - offset, 1] = rng.poisson(spec.aux_high)
    meta = {
        "positive": positive,
        "distance": distance,
        "side": side,
        "enhancer_bins": sorted({p // BIN for p in enh}),
        "decoy_bins": sorted({p // BIN for p in dec}),
        "promoter_bin": prom_bin,
    }
    return seq, target, meta


def onehot(idx: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.eye(4, dtype=np.float32)[idx])


def train_batch(spec: TaskSpec, seed: int, step: int, batch_size: int) -> dict:
    """Batch ``step`` of the training stream: a function of (seed, step) only."""
    rng = np.random.default_rng([seed, 1, step])
    seqs, targets = [], []
    for i in range(batch_size):
        seq, target, _ = make_example(spec, rng, positive=bool(i % 2 == (step % 2)))
        seqs.append(seq)
        targets.append(target)
    return {
        "sequence": onehot(np.stack(seqs)),
        "target": torch.from_numpy(np.stack(targets)),
    }


def fixed_set(spec: TaskSpec, seed: int, stream: int, per_bucket: int):
    """Balanced set: ``per_bucket`` positives and negatives in each distance bucket."""
    rng = np.random.default_rng([seed, stream])
    lo, hi = spec.distance_range()
    seqs, metas = [], []
    for b_lo, b_hi in BUCKETS:
        a, b = max(b_lo, lo), min(b_hi, hi)
        for positive in (True, False):
            for _ in range(per_bucket):
                d = int(rng.integers(a, b))
                seq, target, meta = make_example(spec, rng, positive, distance=d)
                meta["target"] = target
                seqs.append(seq)
                metas.append(meta)
    return np.stack(seqs), metas


# ==================================================================== models


class DilatedResidual(nn.Module):
    """Basenji-style: x + Dropout(Conv1x1(GELU(BN(Conv_k,d(GELU(BN(x)))))))."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv1 = nn.Conv1d(
            channels, channels // 2, kernel, dilation=dilation, padding=dilation * (kernel // 2)
        )
        self.bn2 = nn.BatchNorm1d(channels // 2)
        self.conv2 = nn.Conv1d(channels // 2, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(gelu(self.bn1(x)))
        return x + self.conv2(gelu(self.bn2(h)))


class ConvOnly(nn.Module):
    """The Enformer trunk with no transformer; a dilated conv stack stands in for it."""

    def __init__(self, config: EnformerConfig, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        assert config.num_transformer_layers == 0
        self.config = config
        self.trunk = Trunk(config)
        self.dilated = nn.ModuleList(DilatedResidual(config.channels, kernel, d) for d in dilations)
        self.heads = nn.ModuleDict(
            {n: Head(config.embedding_dim, k) for n, k in config.heads.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk.conv(x).transpose(1, 2)  # (B, C, T)
        for block in self.dilated:
            h = block(h)
        h = self.trunk.finish(h.transpose(1, 2))
        return {n: head(h) for n, head in self.heads.items()}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def tower_receptive_field(cfg: EnformerConfig, dil_kernel: int = 0, dilations=()) -> int:
    """Receptive field (bp) of one output bin from the kernel sizes, poolings, dilations.

    r = 1, j = 1; a conv of width k and dilation d adds (k-1)*d*j; a pool by 2 adds j and
    doubles j. Stem: conv(15) + pool; each tower block: conv(5) + pointwise + pool.
    """
    r, j = 1, 1
    r += (cfg.stem_kernel_size - 1) * j
    r += j
    j *= 2
    for _ in cfg.filters:
        r += (cfg.tower_kernel_size - 1) * j
        r += j
        j *= 2
    for d in dilations:
        r += (dil_kernel - 1) * d * j
    return r


def empirical_receptive_field(model: nn.Module, spec: TaskSpec, head: str) -> tuple[int, int]:
    """Input positions with a non-zero gradient of the promoter-bin output: (first, last)."""
    model.eval()
    rng = np.random.default_rng(123)
    x = onehot(rng.integers(0, 4, spec.length, dtype=np.uint8))[None].requires_grad_(True)
    with torch.enable_grad():
        out = model(x)[head]
        prom = spec.promoter_pos // BIN - (spec.length // BIN - out.shape[1]) // 2
        out[0, prom, 0].backward()
    nz = np.nonzero(x.grad[0].abs().sum(-1).numpy() > 0)[0]
    return int(nz.min()), int(nz.max())


# ================================================================ evaluation


def _poisson(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred - y * np.log(pred + 1e-7)))


def predict(
    model: nn.Module,
    seqs: np.ndarray,
    spec: TaskSpec,
    head: str,
    batch: int = 8,
    metas=None,
    promoter_bins: int = 32,
):
    """Predicted promoter-bin signal (track 0) per sequence.

    With ``metas``, also the mean predicted track-1 signal over the bins of the enhancer
    cluster (where it would be in negatives; empty without an auxiliary track) and, when the
    metas carry targets, the test loss per track (as in training) of the model and of an
    oracle that predicts the true Poisson means.
    """
    model.eval()
    out, aux = [], []
    losses = {"model": [], "oracle": []}
    with torch.inference_mode():
        for i in range(0, len(seqs), batch):
            y = model(onehot(seqs[i : i + batch]))[head].float()
            offset = (spec.length // BIN - y.shape[1]) // 2
            prom = spec.promoter_pos // BIN - offset
            out.append(y[:, prom, 0].numpy())
            if metas is None:
                continue
            for k in range(y.shape[0]):
                meta = metas[i + k]
                bins = [b - offset for b in meta["enhancer_bins"]]
                if y.shape[-1] > 1:
                    aux.append(float(y[k, bins, 1].mean()))
                if "target" not in meta:
                    continue
                t = meta["target"]
                mean = np.full(t.shape, spec.noise, dtype=np.float64)
                mean[prom, 0] = spec.high if meta["positive"] else spec.low
                if t.shape[-1] > 1 and meta["positive"]:
                    mean[bins, 1] = spec.aux_high
                n = t.shape[0]
                a = (n - promoter_bins) // 2 if 0 < promoter_bins < n else 0
                pk = y[k].numpy().astype(np.float64)
                for key, pr in (("model", pk), ("oracle", mean)):
                    row = [_poisson(pr[a : n - a, 0], t[a : n - a, 0])]
                    if t.shape[-1] > 1:
                        row.append(_poisson(pr[:, 1], t[:, 1]))
                    losses[key].append(row)
    if metas is not None:
        losses = {k: np.array(v).mean(0) if v else None for k, v in losses.items()}
        return np.concatenate(out), np.array(aux), losses
    return np.concatenate(out)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUROC of positives over negatives (the package's, ties count one half)."""
    from enformer.variants.benchmark import auroc as package_auroc

    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return package_auroc(np.concatenate([pos, neg]), labels)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold maximising accuracy (predict positive when score > threshold)."""
    cand = np.unique(scores)
    mids = np.concatenate([[cand[0] - 1], (cand[:-1] + cand[1:]) / 2, [cand[-1] + 1]])
    accs = [((scores > t) == labels).mean() for t in mids]
    return float(mids[int(np.argmax(accs))])


def bucket_table(scores, metas, threshold):
    labels = np.array([m["positive"] for m in metas])
    dist = np.array([m["distance"] for m in metas])
    rows = []
    for lo, hi in BUCKETS:
        sel = (dist >= lo) & (dist < hi)
        s, y = scores[sel], labels[sel]
        rows.append(
            {
                "bucket": f"{lo // 1000}-{hi // 1000} kb",
                "n": int(sel.sum()),
                "auroc": auroc(s[y], s[~y]),
                "acc": float(((s > threshold) == y).mean()),
                "pos_mean": float(s[y].mean()),
                "neg_mean": float(s[~y].mean()),
            }
        )
    rows.append(
        {
            "bucket": "all",
            "n": len(scores),
            "auroc": auroc(scores[labels], scores[~labels]),
            "acc": float(((scores > threshold) == labels).mean()),
            "pos_mean": float(scores[labels].mean()),
            "neg_mean": float(scores[~labels].mean()),
        }
    )
    return rows


def attention_mass(model: Enformer, seqs, metas, n: int):
    """Mean attention of the promoter bin on enhancer / decoy bins, per layer (heads averaged)."""
    res = {}
    t = model.config.sequence_length // BIN
    picked = [i for i, m in enumerate(metas) if m["positive"]][:n]
    for i in picked:
        maps = capture_attention(model, onehot(seqs[i])[None], average_heads=True)
        q = metas[i]["promoter_bin"] + maps.crop
        for li, layer in enumerate(maps.layers):
            row = maps.weights[li, 0, q]
            e = row[metas[i]["enhancer_bins"]].sum()
            d = row[metas[i]["decoy_bins"]].sum()
            res.setdefault(layer, []).append((e, d))
    uniform = len(metas[picked[0]]["enhancer_bins"]) / t
    return {k: np.array(v).mean(0) for k, v in res.items()}, uniform, len(picked)


# ===================================================================== main


def make_loss(promoter_bins: int):
    """Poisson loss, per track: track 0 (promoter) over the central ``promoter_bins`` bins,
    the auxiliary track (if any) over every bin; the sum of the two means.

    Averaging the promoter track over all 1,024 bins would give its one informative bin a
    weight of 1/2,048 of the loss, drowned by the noise bins.
    """

    def loss_fn(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = pred.shape[1]
        a = (n - promoter_bins) // 2 if 0 < promoter_bins < n else 0
        b = n - a
        loss = poisson_loss(pred[:, a:b, :1], target[:, a:b, :1])
        if pred.shape[-1] > 1:
            loss = loss + poisson_loss(pred[..., 1:], target[..., 1:])
        return loss

    return loss_fn


def train(model, name, spec, args, head, log):
    torch.manual_seed(args.seed)
    loss_fn = make_loss(args.promoter_bins)
    opt = build_optimizer(model, name="adam", lr=args.lr)
    sched = build_scheduler(opt, warmup_steps=args.warmup, schedule="constant")
    t0 = time.time()
    running = []
    for step in range(args.steps):
        model.train()
        batch = train_batch(spec, args.seed, step, args.batch_size)
        r = train_step(
            model, batch, opt, head=head, loss_fn=loss_fn, scheduler=sched, clip_norm=args.clip
        )
        running.append(r.loss)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            msg = (
                f"[{name}] step {step + 1}/{args.steps} loss {np.mean(running):.4f} "
                f"grad-norm {r.grad_norm:.3f} {time.time() - t0:.0f}s"
            )
            if args.val_every and ((step + 1) % args.val_every == 0 or step + 1 == args.steps):
                s, a, _ = predict(model, log["val_seqs"], spec, head, metas=log["val_metas"])
                y = np.array([m["positive"] for m in log["val_metas"]])
                msg += f" | val AUROC promoter {auroc(s[y], s[~y]):.3f}"
                if len(a):
                    msg += f", enhancer bins (aux track) {auroc(a[y], a[~y]):.3f}"
            print(msg, flush=True)
            running = []
    return time.time() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", type=int, default=131_072)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--tower-filters", default="32,32,48,48,64,64")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--key-size", type=int, default=16)
    p.add_argument(
        "--pos-features", type=int, default=24, help="relative positional features (multiple of 6)"
    )
    p.add_argument("--dil-kernel", type=int, default=3)
    p.add_argument("--dilations", default="1,2,4,8,16,32,12")
    p.add_argument("--copies", type=int, default=32)
    p.add_argument("--target-bins", type=int, default=1024)
    p.add_argument(
        "--promoter-bins",
        type=int,
        default=32,
        help="central bins of the promoter track that enter the loss",
    )
    p.add_argument("--high", type=float, default=20.0)
    p.add_argument("--low", type=float, default=2.0)
    p.add_argument("--noise", type=float, default=0.2)
    p.add_argument(
        "--aux-high",
        type=float,
        default=10.0,
        help="mean of the auxiliary enhancer-binding track at enhancer bins (0: no track)",
    )
    p.add_argument("--promoter", default="MA0108.3", help="JASPAR ID (TBP)")
    p.add_argument("--enhancer", default="MA0139.2", help="JASPAR ID (CTCF)")
    p.add_argument("--decoy", default="MA0138.3", help="JASPAR ID (REST)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--test-per-bucket", type=int, default=48)
    p.add_argument("--val-per-bucket", type=int, default=8)
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--attention-examples", type=int, default=16)
    p.add_argument("--models", default="enformer,conv", help="which to train, comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the report (markdown) here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    motifs = read_meme(MOTIFS)
    prom, enh, dec = motifs[args.promoter], motifs[args.enhancer], motifs[args.decoy]
    spec = TaskSpec(
        args.length,
        prom.consensus,
        enh.consensus,
        dec.consensus,
        args.copies,
        args.target_bins,
        args.high,
        args.low,
        args.noise,
        args.aux_high,
    )
    lo, hi = spec.distance_range()
    say("# Attention over distance: synthetic enhancer -> promoter task")
    say()
    say(f"command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`")
    say(f"torch {torch.__version__}, {platform.machine()} CPU, {torch.get_num_threads()} thread(s)")
    say()
    say(
        f"- input {args.length:,} bp = {args.length // BIN} bins of {BIN} bp; "
        f"target: central {args.target_bins} bins"
    )
    say(
        f"- promoter {prom.motif_id} {prom.name} `{prom.consensus}` at {spec.promoter_pos:,} "
        f"(bin {spec.promoter_pos // BIN})"
    )
    say(
        f"- enhancer {enh.motif_id} {enh.name} `{enh.consensus}` x{args.copies} (one per bin), "
        f"cluster centre {lo:,}-{hi:,} bp from the promoter, random side; in 50% of sequences"
    )
    say(
        f"- decoy {dec.motif_id} {dec.name} `{dec.consensus}` x{args.copies}, same range, "
        f"in every sequence"
    )
    say(
        f"- promoter-bin target Poisson({args.high:g}) with enhancer, Poisson({args.low:g}) "
        f"without; other bins Poisson({args.noise:g}); the loss sees the central "
        f"{args.promoter_bins} bins of this track"
    )
    if args.aux_high > 0:
        say(
            f"- auxiliary track 1 (enhancer-factor 'ChIP'): Poisson({args.aux_high:g}) at the "
            f"enhancer copies' own bins, Poisson({args.noise:g}) elsewhere; not evaluated"
        )
    say(
        f"- training: {args.steps} steps x batch {args.batch_size} of fresh sequences "
        f"({args.steps * args.batch_size:,} examples), Adam lr {args.lr:g}, warm-up "
        f"{args.warmup}, clip {args.clip:g}, Poisson loss; seed {args.seed}"
    )

    t = time.time()
    val_seqs, val_metas = fixed_set(spec, args.seed, 2, args.val_per_bucket)
    test_seqs, test_metas = fixed_set(spec, args.seed, 3, args.test_per_bucket)
    say(
        f"- held-out: validation {len(val_seqs)} (threshold), test {len(test_seqs)} "
        f"({args.test_per_bucket} positives + {args.test_per_bucket} negatives per bucket); "
        f"generated in {time.time() - t:.0f}s"
    )
    say()

    filters = tuple(int(v) for v in args.tower_filters.split(","))
    dilations = [int(v) for v in args.dilations.split(",")] if args.dilations else []
    common = dict(
        channels=args.channels,
        num_heads=args.heads,
        key_size=args.key_size,
        num_relative_position_features=args.pos_features,
        num_pooling=7,
        tower_filters=filters,
        target_length=args.target_bins,
        sequence_length=args.length,
        heads={"synthetic": 2 if args.aux_high > 0 else 1},
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        positional_dropout_rate=0.0,
        final_dropout_rate=0.0,
    )
    cfg_a = EnformerConfig(
        num_transformer_layers=args.layers, description="attention benchmark", **common
    )
    cfg_c = EnformerConfig(num_transformer_layers=0, description="conv-only benchmark", **common)
    rf_tower = tower_receptive_field(cfg_c)
    rf_conv = tower_receptive_field(cfg_c, args.dil_kernel, dilations)
    say("## Receptive fields")
    say()
    say(
        f"- stem + conv tower (stem conv {cfg_c.stem_kernel_size}, {len(filters)} tower blocks of "
        f"conv {cfg_c.tower_kernel_size}, 7 poolings by 2): {rf_tower:,} bp"
    )
    say(
        f"- conv-only model (+ {len(dilations)} dilated convs, kernel {args.dil_kernel}, "
        f"dilations {dilations} at {BIN}-bp bins): {rf_conv:,} bp = +-{rf_conv // 2:,} bp "
        f"around a bin; the nearest enhancer copy is >= 20,000 bp from the promoter"
    )

    torch.manual_seed(args.seed)
    models: dict[str, nn.Module] = {}
    wanted = args.models.split(",")
    if "enformer" in wanted:
        models["enformer"] = Enformer(cfg_a)
    if "conv" in wanted:
        torch.manual_seed(args.seed)
        models["conv"] = ConvOnly(cfg_c, args.dil_kernel, dilations)
    for name, m in models.items():
        first, last = empirical_receptive_field(m, spec, "synthetic")
        say(
            f"- {name}: promoter-bin output has a non-zero input gradient over "
            f"[{first:,}, {last:,}] = {last - first + 1:,} bp"
        )
    say()

    results = {}
    log = {"val_seqs": val_seqs, "val_metas": val_metas}
    for name, m in models.items():
        n_par = sum(p.numel() for p in m.parameters())
        print(f"\n== training {name} ({n_par:,} parameters)", flush=True)
        secs = train(m, name, spec, args, "synthetic", log)
        t = time.time()
        val_s = predict(m, val_seqs, spec, "synthetic")
        val_y = np.array([v["positive"] for v in val_metas])
        thr = best_threshold(val_s, val_y)
        test_s, test_aux, test_loss = predict(
            m, test_seqs, spec, "synthetic", metas=test_metas, promoter_bins=args.promoter_bins
        )
        test_y = np.array([v["positive"] for v in test_metas])
        aux_auc = auroc(test_aux[test_y], test_aux[~test_y]) if len(test_aux) else float("nan")
        results[name] = (
            n_par,
            secs,
            time.time() - t,
            thr,
            bucket_table(test_s, test_metas, thr),
            aux_auc,
            test_loss,
        )

    say("## Test accuracy by enhancer distance")
    say()
    say(
        "Score = predicted promoter-bin signal. AUROC: positives vs negatives in the bucket. "
        "acc: accuracy at the threshold that maximises validation accuracy (chance = 0.5)."
    )
    say()
    for name, (n_par, secs, esecs, thr, rows, aux_auc, test_loss) in results.items():
        label = (
            f"Enformer ({args.layers} transformer layers)"
            if name == "enformer"
            else f"conv-only (receptive field {rf_conv:,} bp)"
        )
        say(
            f"**{label}**: {n_par:,} parameters, trained {secs:.0f}s, evaluated {esecs:.0f}s, "
            f"threshold {thr:.3g}"
        )
        say()
        say("| distance | n | AUROC | acc | mean score +enh | mean score -enh |")
        say("|---|---|---|---|---|---|")
        for r in rows:
            say(
                f"| {r['bucket']} | {r['n']} | {r['auroc']:.3f} | {r['acc']:.3f} | "
                f"{r['pos_mean']:.3g} | {r['neg_mean']:.3g} |"
            )
        say()
        if not math.isnan(aux_auc):
            say(
                f"Local control: AUROC of the auxiliary track at the enhancer bins themselves "
                f"(is the enhancer motif detected where it is?): {aux_auc:.3f}"
            )
            say()
        if test_loss["model"] is not None:
            names = ["promoter track (central bins)", "auxiliary track (all bins)"]
            parts = [
                f"{names[j]} {test_loss['model'][j]:.4f} (oracle {test_loss['oracle'][j]:.4f})"
                for j in range(len(test_loss["model"]))
            ]
            say("Test Poisson loss per track, model vs true means: " + "; ".join(parts))
            say()

    if "enformer" in models and args.attention_examples and args.layers:
        masses, uniform, n = attention_mass(
            models["enformer"], test_seqs, test_metas, args.attention_examples
        )
        say("## Where the promoter bin attends (Enformer)")
        say()
        say(
            f"Attention weight of the promoter bin's query on the {args.copies} enhancer bins and "
            f"on the {args.copies} decoy bins, heads averaged, mean over {n} test positives "
            f"(uniform attention would give {uniform:.4f})."
        )
        say()
        say("| layer | enhancer bins | decoy bins | enhancer / uniform |")
        say("|---|---|---|---|")
        for layer, (e, d) in masses.items():
            say(f"| {layer} | {e:.4f} | {d:.4f} | {e / uniform:.1f}x |")
        say()
    say(f"Total run time: {time.time() - t_start:.0f}s")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
