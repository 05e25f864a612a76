"""The curated public API: each package's ``__all__`` is pinned here, so that making a name
public (or dropping one) is a decision taken in review, and every public name is importable
and documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = {
    "enformer": {
        "Enformer", "EnformerConfig", "Prediction", "__version__", "embed", "predict",
    },
    "enformer.model": {
        "Borzoi", "BorzoiConfig", "Enformer", "EnformerConfig", "MultiheadAttention", "OutputGeometry", "crop_to_target",
        "exponential_linspace_int", "gelu", "output_geometry", "relative_positional_features",
        "relative_shift",
    },
    "enformer.io": {
        "DownloadError", "JobDir", "JobLock", "JobLockedError", "atomic_path",
        "default_cache_dir", "download", "file_fingerprint", "genome_fingerprint",
        "model_fingerprint", "offline_reason", "progress_bar", "resolve_cache_dir",
        "sequence_digest", "settings_digest", "shard_units", "write_bytes_atomic",
        "write_json_atomic",
    },
    "enformer.weights": {
        "BUNDLED_MODELS", "WeightsError", "WeightsNotFound", "bundled_path", "config_from_hf",
        "config_from_tf_variables", "convert_weights", "default_cache_dir", "hub_download",
        "load_pretrained", "model_card", "read_tf_savedmodel", "save_pretrained",
        "state_dict_from_hf", "state_dict_from_tf", "weights_dir",
    },
    "enformer.inference": {
        "DistributedContext", "EmbedInput", "EmbeddingFiles", "Engine", "OutputFile",
        "OutputGeometry", "PredictOptions", "Prediction", "PredictionFiles", "Tile", "TilePlan",
        "TiledRegion", "TrackSelection", "embed", "embed_to_files", "output_geometry",
        "plan_tiles", "predict", "predict_tiles", "predict_to_files", "read_embeddings",
        "select_for_weights", "select_tracks", "track_sheet_for", "whole_chromosomes",
    },
    "enformer.variants": {
        "AllelePredictions", "AlleleWindows", "PLACEMENT", "Placement", "RefMismatchError",
        "SCORE_FORMULAS", "SkippedVariant", "Variant", "allele_sequences", "chunked",
        "compute_scores", "group_variants", "iter_records", "make_allele_windows",
        "parse_variant", "predict_alleles", "predict_alleles_reuse", "read_tsv",
        "read_variants", "read_vcf", "score_variants", "write_scores",
    },
    "enformer.interpret": {
        "AttentionMaps", "Attribution", "ISM", "METHODS", "Motif", "Target",
        "capture_attention", "contribution_scores", "gene_target", "plant_motif", "read_ism",
        "read_meme", "saturation_mutagenesis", "tss_bins", "write_attributions", "write_bigwig",
        "write_ism",
    },
    "enformer.train": {
        "DataConfig", "EvalResult", "FinetuneConfig", "FitResult", "LoRALinear", "ModelSpec",
        "OptimConfig", "PearsonR", "TrainConfig", "Trainer", "add_heads", "apply_lora",
        "build_dataset", "build_optimizer", "build_scheduler", "dump_config", "evaluate",
        "export_model", "fit", "freeze_batchnorm", "freeze_trunk", "get_loss", "load_config",
        "make_eval_loader", "make_train_loader", "merge_lora", "poisson_loss",
        "poisson_multinomial_loss", "prepare_finetune", "run_training", "train_last_layers",
        "train_step", "unfreeze_batchnorm",
    },
    "enformer.demo": {
        "Construct", "DEMO_VARIANTS", "DemoVariant", "Element", "ExampleVariant",
        "MINI_DEMO_TRACKS", "MOTIFS", "TRANSVERSION", "build_construct", "construct_length",
        "demo_tracks", "demo_variants", "model_window", "nearest_real_base", "next_steps",
        "run_demo", "write_construct", "write_vcf",
    },
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_are_pinned(package):
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package], (
        "the public API changed: update tests/test_public_api.py if that is intended"
    )
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_public_names_import_and_are_documented(package):
    module = importlib.import_module(package)
    assert inspect.getdoc(module), f"{package} has no docstring"
    for name in module.__all__:
        obj = getattr(module, name)  # AttributeError: listed but not importable
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{package}.{name} has no docstring"


def test_train_exports_what_users_call_not_its_internals():
    import enformer.train as train

    assert len(train.__all__) <= 40
    for internal in ("wrap_ddp", "DistEnv", "capture_rng_state", "lr_factor", "TrainState"):
        assert internal not in train.__all__
