"""Inference: predictions for sequences, intervals, long regions and whole chromosomes.

* :func:`predict` -- arrays, strings or genome intervals in, a :class:`Prediction` out, with
  reverse-complement and shift averaging and on-device track selection.
* :func:`plan_tiles` / :func:`predict_tiles` -- tilings whose output bins abut exactly.
* :func:`predict_to_files` -- a resumable, optionally multi-process job writing BigWig, HDF5
  or NPZ files.
* :func:`embed` / :func:`embed_to_files` -- the trunk embedding (``model.embed``) at chosen
  bins or pooled, as arrays or as a resumable job writing one HDF5/NPZ/Parquet table.
* :func:`select_tracks` / :func:`track_sheet_for` -- the one way to say which tracks to keep
  (syntax in :mod:`enformer.inference.selection`) and to find the sheet that names them;
  :class:`PredictOptions` holds the prediction settings a command line gives.
"""

from .distributed import DistributedContext
from ..model.geometry import OutputGeometry, output_geometry
from .embed import EmbedInput, embed
from .embed_files import EmbeddingFiles, embed_to_files, read_embeddings
from .engine import Engine
from .options import PredictOptions
from .predict import Prediction, predict
from .selection import TrackSelection, select_for_weights, select_tracks, track_sheet_for
from .tiling import Tile, TiledRegion, TilePlan, plan_tiles, predict_tiles, whole_chromosomes
from .writers import OutputFile, PredictionFiles, predict_to_files

__all__ = [
    "DistributedContext",
    "EmbedInput",
    "EmbeddingFiles",
    "Engine",
    "OutputFile",
    "OutputGeometry",
    "Prediction",
    "PredictOptions",
    "PredictionFiles",
    "Tile",
    "TilePlan",
    "TiledRegion",
    "TrackSelection",
    "embed",
    "embed_to_files",
    "output_geometry",
    "plan_tiles",
    "predict",
    "predict_tiles",
    "predict_to_files",
    "read_embeddings",
    "select_for_weights",
    "select_tracks",
    "track_sheet_for",
    "whole_chromosomes",
]
