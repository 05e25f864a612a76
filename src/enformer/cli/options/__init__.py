"""The command line's shared options, each defined once, and the glue that reads them.

Every command module imports this package only (``from . import options as opt``), never
another command. ``common``: one ``add_*`` function per option shared by several commands
(commands whose help says something of their own pass ``help=``) and their parsers;
``glue``: parsed options to :class:`~enformer.inference.options.PredictOptions`, the model,
the track selection, the settings file and the closing report; ``interpret``: the options of
``attribute`` and ``ism``; ``run``: those of ``train`` and ``finetune``; ``scoring``: the
calibration options of ``score``.
"""

from __future__ import annotations

from .common import (
    ATTENTION_CHOICES,
    DTYPE_CHOICES,
    HEAD_HELP,
    SHIFTS_HELP,
    TARGETS_HELP,
    add_attention_option,
    add_batch_size_option,
    add_chrom_alias_option,
    add_command,
    add_device_option,
    add_genomic_inputs,
    add_dtype_option,
    add_head_option,
    add_no_download_option,
    add_rc_option,
    add_shifts_option,
    add_targets_option,
    add_tracks_option,
    add_weights_option,
    apply_attention_option,
    check_positive,
    parse_shard,
    parse_shifts,
)
from .scoring import (
    add_background_arguments,
    add_plot_arguments,
    make_background_from_args,
    plot_variants_from_args,
)
from .glue import (
    finish_summary,
    load_model,
    predict_options,
    render_files,
    select_from_args,
    write_settings,
)
from .interpret import (
    add_array_format_option,
    add_interpret_arguments,
    add_window_region_option,
    read_out_from_args,
)
from .run import (
    add_run_arguments,
    execute_run,
    resolve_run_config,
)

__all__ = [
    "add_background_arguments",
    "add_plot_arguments",
    "make_background_from_args",
    "plot_variants_from_args",
    "ATTENTION_CHOICES",
    "DTYPE_CHOICES",
    "HEAD_HELP",
    "SHIFTS_HELP",
    "TARGETS_HELP",
    "add_array_format_option",
    "add_attention_option",
    "add_batch_size_option",
    "add_chrom_alias_option",
    "add_command",
    "add_device_option",
    "add_genomic_inputs",
    "add_dtype_option",
    "add_head_option",
    "add_interpret_arguments",
    "add_no_download_option",
    "add_rc_option",
    "add_run_arguments",
    "add_shifts_option",
    "add_targets_option",
    "add_tracks_option",
    "add_weights_option",
    "add_window_region_option",
    "apply_attention_option",
    "check_positive",
    "execute_run",
    "finish_summary",
    "load_model",
    "parse_shard",
    "parse_shifts",
    "predict_options",
    "read_out_from_args",
    "render_files",
    "resolve_run_config",
    "select_from_args",
    "write_settings",
]
