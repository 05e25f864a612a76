"""Adapting a pretrained Enformer: new heads, frozen parts, LoRA adapters.

Each option is a small function acting on a model in place; :func:`prepare_finetune` applies
the ones a :class:`~enformer.train.config.FinetuneConfig` asks for.

* :func:`add_heads` puts new ``Linear(2C -> n) + softplus`` heads (``"name:n_tracks"``) on the
  trunk and updates ``model.config.heads`` (a new frozen config via ``dataclasses.replace``),
  so the model saves and loads with :func:`enformer.weights.save_pretrained` /
  :func:`~enformer.weights.load_pretrained`.
* :func:`freeze_trunk` stops gradients to every trunk parameter;
  :func:`train_last_layers` leaves only the last ``N`` transformer blocks (and the final
  pointwise block after them) trainable.
* :func:`freeze_batchnorm` keeps every BatchNorm in eval mode, even under ``model.train()``:
  normalisation uses the loaded running statistics and they are never updated.
* :func:`apply_lora` wraps the attention's q/k/v/output projections and the MLP's two linears
  in :class:`LoRALinear` (``W x + b + (alpha / r) · B A x``, ``B = 0`` at the start, so the
  model is unchanged until it trains); :func:`merge_lora` folds ``(alpha / r) · B A`` into
  ``W`` and puts plain ``nn.Linear`` modules back, after which the model is an ordinary
  Enformer again; :func:`export_model` saves a merged copy, leaving the model as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..io.jobs import write_bytes_atomic
from ..model.enformer import Enformer, Head
from .distributed import unwrap

if TYPE_CHECKING:
    from .config import FinetuneConfig

__all__ = [
    "LORA_TARGETS",
    "FinetuneSummary",
    "LoRALinear",
    "add_heads",
    "apply_lora",
    "export_model",
    "freeze_batchnorm",
    "freeze_trunk",
    "has_lora",
    "lora_parameters",
    "merge_lora",
    "parse_head_spec",
    "prepare_finetune",
    "train_last_layers",
    "unfreeze_batchnorm",
]

log = logging.getLogger(__name__)

# Short name -> (sub-block, attribute) of a transformer block.
LORA_TARGETS: dict[str, tuple[str, str]] = {
    "q": ("mha.attention", "q_layer"),
    "k": ("mha.attention", "k_layer"),
    "v": ("mha.attention", "v_layer"),
    "embedding": ("mha.attention", "embedding_layer"),
    "linear1": ("mlp", "linear1"),
    "linear2": ("mlp", "linear2"),
}

# Borzoi / Flashzoi: the same short names on their transformer blocks. Flashzoi projects
# queries, keys and values with one fused linear, so q, k and v all name ``Wqkv``.
_BORZOI_LORA = {
    "relative": {"q": ("attention", "q"), "k": ("attention", "k"), "v": ("attention", "v"),
                 "embedding": ("attention", "out"), "linear1": ("", "dense1"),
                 "linear2": ("", "dense2")},
    "rotary": {"q": ("attention", "Wqkv"), "k": ("attention", "Wqkv"),
               "v": ("attention", "Wqkv"), "embedding": ("attention", "out_proj"),
               "linear1": ("", "dense1"), "linear2": ("", "dense2")},
}  # fmt: skip


def _is_borzoi(model: nn.Module) -> bool:
    return getattr(model.config, "family", "enformer") == "borzoi"


def _transformer(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of either family."""
    return model.transformer if _is_borzoi(model) else model.trunk.transformer


def _trunk_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Every parameter outside the heads, by name."""
    if _is_borzoi(model):
        return ((n, p) for n, p in model.named_parameters() if not n.startswith("heads."))
    return model.trunk.named_parameters()


def _lora_target(model: nn.Module, target: str) -> tuple[str, str]:
    if _is_borzoi(model):
        return _BORZOI_LORA[model.config.attention][target]
    return LORA_TARGETS[target]


_HEAD_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(\d+)\s*$")


# ===================================================================== heads


def parse_head_spec(spec: str) -> tuple[str, int]:
    """Parse ``"name:n_tracks"`` (e.g. ``"k562:12"``).

    Parameters
    ----------
    spec
        Head name (a Python identifier) and a positive track count.

    Returns
    -------
    tuple of (str, int)
        The name and the number of tracks.
    """
    match = _HEAD_RE.match(spec)
    if not match or int(match.group(2)) < 1:
        raise ValueError(
            f"head spec {spec!r} is not NAME:N_TRACKS with N_TRACKS >= 1 (e.g. 'k562:12')"
        )
    return match.group(1), int(match.group(2))


def add_heads(
    model: Enformer,
    specs: Iterable[str | tuple[str, int]],
    *,
    keep_existing: bool = True,
    seed: int | None = None,
) -> Enformer:
    """Add new heads to ``model`` (in place) and record them in ``model.config.heads``.

    Parameters
    ----------
    model
        The model.
    specs
        ``"name:n_tracks"`` strings or ``(name, n_tracks)`` pairs. A name that already exists
        is replaced by a freshly initialised head.
    keep_existing
        Keep the heads the model already has; false drops them (less compute per step).
    seed
        Seed of the new heads' initialisation (``None``: the global RNG).

    Returns
    -------
    Enformer
        ``model``, whose config now lists the heads in order.
    """
    parsed = [parse_head_spec(s) if isinstance(s, str) else (str(s[0]), int(s[1])) for s in specs]
    if not parsed:
        raise ValueError("add_heads needs at least one head spec")
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate head names in {names}")
    param = next(model.parameters())
    width = model.config.embedding_size if _is_borzoi(model) else model.config.embedding_dim
    heads = dict(model.config.heads) if keep_existing else {}
    if not keep_existing:
        for name in list(model.heads.keys()):
            del model.heads[name]
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    for name, n in parsed:
        # Borzoi's heads are a Dense (softplus in the model's forward); Enformer's a Head.
        head = nn.Linear(width, n) if _is_borzoi(model) else Head(width, n)
        if generator is not None:
            bound = 1.0 / math.sqrt(width)
            linear = getattr(head, "linear", head)
            with torch.no_grad():
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.uniform_(-bound, bound, generator=generator)
        model.heads[name] = head.to(device=param.device, dtype=param.dtype)
        heads[name] = n
    _set_config(model, dataclasses.replace(model.config, heads=heads))
    log.info("heads now %s", heads)
    return model


def _set_config(model: Enformer, config: object) -> None:
    model.config = config  # type: ignore[assignment]
    if hasattr(model, "trunk"):
        model.trunk.config = config  # type: ignore[assignment]


# ==================================================================== freezing


def freeze_trunk(model: Enformer) -> Enformer:
    """Stop gradients to every trunk parameter (heads and LoRA adapters stay trainable)."""
    for name, param in _trunk_parameters(model):
        if not _is_lora_param(name):
            param.requires_grad_(False)
    return model


def train_last_layers(model: Enformer, n: int, *, include_final_pointwise: bool = True) -> Enformer:
    """Freeze the trunk except its last ``n`` transformer blocks.

    Parameters
    ----------
    model
        The model.
    n
        Number of trailing transformer blocks left trainable (0: none).
    include_final_pointwise
        Also leave the final pointwise block (after the transformer) trainable.

    Returns
    -------
    Enformer
        ``model``.
    """
    blocks = _transformer(model)
    layers = len(blocks)
    if not 0 <= n <= layers:
        raise ValueError(f"train_last_layers must be between 0 and {layers}, got {n}")
    freeze_trunk(model)
    trainable = list(blocks[layers - n :]) if n else []
    if include_final_pointwise:  # Borzoi: its final conv_nac
        trainable.append(model.final if _is_borzoi(model) else model.trunk.final_pointwise)
    for module in trainable:
        for name, param in module.named_parameters():
            if not isinstance(_owner(module, name), LoRALinear) or _is_lora_param(name):
                param.requires_grad_(True)
    return model


def _owner(root: nn.Module, param_name: str) -> nn.Module:
    module = root
    for part in param_name.split(".")[:-1]:
        module = getattr(module, part)
    return module


def _keep_eval(module: nn.Module, args: object) -> None:
    module.training = False


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Keep every BatchNorm in eval mode, whatever ``model.train()`` says.

    Normalisation then uses the running statistics, which are no longer updated. The
    BatchNorms' affine parameters still train unless frozen separately. Undo with
    :func:`unfreeze_batchnorm`.

    Returns
    -------
    nn.Module
        ``model``.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not getattr(
            module, "_enformer_bn_frozen", None
        ):
            module.eval()
            module._enformer_bn_frozen = module.register_forward_pre_hook(_keep_eval)
    return model


def unfreeze_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`freeze_batchnorm` (BatchNorms follow ``model.train()`` again)."""
    for module in model.modules():
        handle = getattr(module, "_enformer_bn_frozen", None)
        if handle is not None:
            handle.remove()
            del module._enformer_bn_frozen
            module.train(True)
    return model


def frozen_batchnorm_names(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules frozen by :func:`freeze_batchnorm`."""
    return [n for n, m in model.named_modules() if getattr(m, "_enformer_bn_frozen", None)]


# ======================================================================= LoRA


class LoRALinear(nn.Linear):
    """A linear layer plus a trainable low-rank update: ``W x + b + (alpha / r) · B A x``.

    ``weight`` and ``bias`` keep their names (so base checkpoints load into it) and are frozen;
    ``lora_A`` ``(r, in)`` starts Kaiming-uniform and ``lora_B`` ``(out, r)`` at zero, so the
    layer starts as the base layer exactly.

    Parameters
    ----------
    base
        The linear layer to adapt (its weight and bias tensors are shared, not copied).
    rank
        Rank ``r`` of the update.
    alpha
        Scale numerator; the update is multiplied by ``alpha / rank``.
    dropout
        Dropout on the adapter branch's input.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 16.0, dropout: float = 0.0):
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        nn.Module.__init__(self)
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scaling = self.alpha / self.rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(self.rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in) -> (..., out)``."""
        base = F.linear(x, self.weight, self.bias)
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)  # (..., out)
        return base + self.scaling * update

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + (alpha / r) · B A``."""
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling  # (out, in)
            linear.weight.copy_((self.weight.float() + delta).to(self.weight.dtype))
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        """Shapes, rank and alpha."""
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha}"


def _is_lora_param(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in ("lora_A", "lora_B")


def apply_lora(
    model: Enformer,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    targets: Sequence[str] = tuple(LORA_TARGETS),
    layers: Iterable[int] | None = None,
) -> Enformer:
    """Wrap the transformer's linears in :class:`LoRALinear` (in place).

    Parameters
    ----------
    model
        The model.
    rank, alpha, dropout
        As for :class:`LoRALinear`.
    targets
        Which linears of each block: any of ``q``, ``k``, ``v``, ``embedding`` (the attention
        output), ``linear1``, ``linear2`` (the MLP).
    layers
        Transformer block indices to adapt (default: all).

    Returns
    -------
    Enformer
        ``model``; the wrapped base weights are frozen, the adapters trainable.
    """
    unknown = sorted(set(targets) - set(LORA_TARGETS))
    if unknown:
        raise ValueError(f"unknown LoRA target(s) {unknown}; choose from {sorted(LORA_TARGETS)}")
    blocks = _transformer(model)
    indices = range(len(blocks)) if layers is None else list(layers)
    count = 0
    for j in indices:
        for target in targets:
            path, attr = _lora_target(model, target)
            parent = blocks[j].get_submodule(path)
            linear = getattr(parent, attr)
            if isinstance(linear, LoRALinear):
                continue
            setattr(parent, attr, LoRALinear(linear, rank, alpha, dropout))
            count += 1
    log.info("LoRA rank %d (alpha %g) on %d linears", rank, alpha, count)
    return model


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` holds any :class:`LoRALinear`."""
    return any(isinstance(m, LoRALinear) for m in model.modules())


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (``lora_A``, ``lora_B``) of every :class:`LoRALinear`."""
    return [p for n, p in model.named_parameters() if _is_lora_param(n)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weight and put a plain ``nn.Linear`` back (in place).

    The merged linears' parameters are trainable (``requires_grad=True``), as in a freshly
    built model; outputs equal the adapted model's up to float rounding.

    Returns
    -------
    nn.Module
        ``model``, now free of :class:`LoRALinear` and saveable as an ordinary Enformer.
    """
    replacements = [
        (name, module) for name, module in model.named_modules() if isinstance(module, LoRALinear)
    ]
    for name, module in replacements:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        merged = module.merged()
        merged.train(module.training)
        setattr(parent, attr, merged)
    if replacements:
        log.info("merged %d LoRA adapters", len(replacements))
    return model


def export_model(
    model: nn.Module,
    directory: str | Path,
    *,
    track_sheet_text: str | None = None,
    head: str | None = None,
) -> Path:
    """Save ``model`` with :func:`enformer.weights.save_pretrained`, LoRA adapters merged.

    The model itself is left untouched (a merged copy is saved). The head's track sheet, when
    given, is written beside the weights as ``targets_{head}.txt``, where
    :func:`enformer.data.tracks.find_track_sheet` looks for it.

    Returns
    -------
    Path
        The directory.
    """
    from ..weights import save_pretrained

    net = unwrap(model)
    if has_lora(net):
        net = merge_lora(copy.deepcopy(net))
    out = save_pretrained(net, directory)
    if track_sheet_text is not None and head is not None:
        sheet = Path(directory) / f"targets_{head}.txt"
        write_bytes_atomic(sheet, track_sheet_text.encode("utf-8"))
    return out


# ============================================================= orchestration


@dataclass(frozen=True)
class FinetuneSummary:
    """What :func:`prepare_finetune` did.

    Attributes
    ----------
    heads
        The model's heads afterwards (name -> tracks).
    trainable
        Trainable parameter count.
    total
        Total parameter count.
    lora_linears
        Number of linears wrapped with LoRA.
    frozen_batchnorm
        Whether BatchNorms are kept in eval mode.
    """

    heads: dict[str, int]
    trainable: int
    total: int
    lora_linears: int
    frozen_batchnorm: bool


def prepare_finetune(
    model: Enformer, config: FinetuneConfig, *, seed: int | None = None
) -> FinetuneSummary:
    """Apply the options of ``config`` to ``model`` in place.

    Order: new heads, then trunk freezing / last-N layers, then LoRA (whose adapters stay
    trainable on a frozen trunk; with ``train_last_layers`` only the blocks before the last N
    get adapters, the last N train fully), then BatchNorm freezing.

    Parameters
    ----------
    model
        The (pretrained) model.
    config
        The fine-tuning section of a :class:`~enformer.train.config.TrainConfig`.
    seed
        Seed of the new heads' initialisation.

    Returns
    -------
    FinetuneSummary
        Heads and parameter counts afterwards.
    """
    if config.heads:
        add_heads(model, config.heads, keep_existing=config.keep_heads, seed=seed)
    if config.train_last_layers is not None:
        train_last_layers(model, config.train_last_layers)
    elif config.freeze_trunk:
        freeze_trunk(model)
    if config.lora_rank:
        # With train_last_layers, the last N blocks train fully and the others get adapters.
        n_blocks = len(_transformer(model))
        last = config.train_last_layers or 0
        apply_lora(
            model,
            rank=config.lora_rank,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
            targets=config.lora_targets,
            layers=range(n_blocks - last),
        )
        if config.train_last_layers is None and not config.freeze_trunk:
            log.warning(
                "LoRA without freeze_trunk: the rest of the trunk (convolutions, norms) still "
                "trains; set finetune.freeze_trunk=true to train only adapters and heads"
            )
    if config.freeze_batchnorm:
        freeze_batchnorm(model)
    summary = FinetuneSummary(
        heads=dict(model.config.heads),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        lora_linears=sum(isinstance(m, LoRALinear) for m in model.modules()),
        frozen_batchnorm=config.freeze_batchnorm,
    )
    log.info(
        "fine-tuning %d of %d parameters (heads %s)",
        summary.trainable,
        summary.total,
        summary.heads,
    )
    return summary
