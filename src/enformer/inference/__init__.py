"""Inference: predictions for sequences, intervals, long regions and whole chromosomes.

* :func:`predict` -- arrays, strings or genome intervals in, a :class:`Prediction` out, with
  reverse-complement and shift averaging and on-device track selection.
* :func:`plan_tiles` / :func:`predict_tiles` -- tilings whose output bins abut exactly.
* :func:`predict_to_files` -- a resumable, optionally multi-process job writing BigWig, HDF5
  or NPZ files.
"""

from .distributed import DistributedContext
from ..model.geometry import OutputGeometry, output_geometry
from .predict import Engine, Prediction, predict
from .tiling import Tile, TiledRegion, TilePlan, plan_tiles, predict_tiles, whole_chromosomes
from .writers import OutputFile, PredictionFiles, predict_to_files

__all__ = [
    "DistributedContext",
    "Engine",
    "OutputFile",
    "OutputGeometry",
    "Prediction",
    "PredictionFiles",
    "Tile",
    "TilePlan",
    "TiledRegion",
    "output_geometry",
    "plan_tiles",
    "predict",
    "predict_tiles",
    "predict_to_files",
    "whole_chromosomes",
]
