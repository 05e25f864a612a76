"""Weights in and out: conversion tables, loading and saving checkpoints."""

from .convert import (
    WeightsError,
    config_from_hf,
    config_from_tf_variables,
    state_dict_from_hf,
    state_dict_from_tf,
)

__all__ = [
    "WeightsError",
    "config_from_hf",
    "config_from_tf_variables",
    "state_dict_from_hf",
    "state_dict_from_tf",
]
