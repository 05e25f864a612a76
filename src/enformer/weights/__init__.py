"""Weights in and out: conversion tables, loading and saving checkpoints."""

from ..io.cache import default_cache_dir
from .bundled import BUNDLED_MODELS, bundled_path, model_card, weights_dir
from .convert import (
    WeightsError,
    config_from_hf,
    config_from_tf_variables,
    state_dict_from_hf,
    state_dict_from_tf,
)
from .formats import WeightsNotFound, read_tf_savedmodel
from .hub import hub_download
from .io import convert_weights, load_pretrained, save_pretrained

__all__ = [
    "BUNDLED_MODELS",
    "bundled_path",
    "model_card",
    "weights_dir",
    "WeightsError",
    "WeightsNotFound",
    "config_from_hf",
    "config_from_tf_variables",
    "convert_weights",
    "default_cache_dir",
    "hub_download",
    "load_pretrained",
    "read_tf_savedmodel",
    "save_pretrained",
    "state_dict_from_hf",
    "state_dict_from_tf",
]
