"""Where a model's output bins lie in its input: the one place that knows.

For an input of ``L`` bp the model yields ``bins = config.output_bins(L)`` bins of
``bin_size = config.bin_size`` bp, centred: bin ``i`` covers input positions
``[offset + i * bin_size, offset + (i + 1) * bin_size)`` with
``offset = (L // bin_size - bins) // 2 * bin_size`` (40,960 for the published model's
196,608-bp input; the crop removes ``(L // bin_size - bins) // 2`` bins from each side, so an
odd excess keeps one extra bin at the end, as DeepMind's code does). An input of exactly
``2 * config.sequence_length`` bp (the TF-Hub interface) is first centre-cropped by the model,
which adds ``(L - sequence_length) // 2`` to the offset. Everything that maps bins to
positions (prediction files, variant windows, TSS bins, attribution, ``enformer info``) asks
:func:`output_geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import EnformerConfig

__all__ = ["OutputGeometry", "output_geometry"]


@dataclass(frozen=True)
class OutputGeometry:
    """Where a model's output bins lie within its input.

    Attributes
    ----------
    input_length : int
        Input length in bp.
    bin_size : int
        Base pairs per output bin.
    n_bins : int
        Number of output bins.
    offset : int
        Input position (0-based) where bin 0 starts.
    """

    input_length: int
    bin_size: int
    n_bins: int
    offset: int

    @property
    def output_span(self) -> int:
        """Base pairs covered by all output bins, ``n_bins * bin_size``."""
        return self.n_bins * self.bin_size


def output_geometry(config: EnformerConfig, length: int | None = None) -> OutputGeometry:
    """Compute the output bins' placement for an input of ``length`` bp.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration.
    length : int, optional
        Input length in bp; default ``config.sequence_length``.

    Returns
    -------
    OutputGeometry
        Bin size, number of bins and the input position of bin 0.

    Raises
    ------
    ValueError
        If the model cannot take inputs of this length (not a multiple of the bin size, or
        too short for the crop).
    """
    length = config.sequence_length if length is None else int(length)
    pre = 0
    effective = length
    if length == 2 * config.sequence_length and getattr(config, "crops_double_input", True):
        pre = (length - config.sequence_length) // 2
        effective = config.sequence_length
    bin_size = config.bin_size
    if effective <= 0 or effective % bin_size:
        raise ValueError(
            f"input length {length} bp is not a positive multiple of the model's bin size "
            f"({bin_size} bp); the model was trained on {config.sequence_length} bp"
        )
    total = effective // bin_size
    if config.target_length is not None and total < config.target_length:
        raise ValueError(
            f"input length {length} bp gives {total} bins, fewer than the model's "
            f"{config.target_length} output bins; use at least "
            f"{config.target_length * bin_size} bp"
        )
    bins = config.output_bins(effective)
    return OutputGeometry(
        input_length=length,
        bin_size=bin_size,
        n_bins=bins,
        offset=pre + (total - bins) // 2 * bin_size,
    )
