"""Evaluation feeds an encoder as it was trained: its own saved preprocessing, mismatches refused."""

from dataclasses import replace

import pytest

from neurossl.config import ConfigError, load_config, to_dict
from neurossl.evaluate.backbones import encoder_preprocess, random_twin, resolve_encoder
from neurossl.models import build_encoder, save_encoder


def export(tmp_path, *overrides, objective_section=None):
    """A tiny encoder exported with the smoke profile's resolved config (plus ``overrides``)."""
    trained = to_dict(load_config("smoke", overrides=list(overrides)))
    if objective_section is not None:
        trained["objective"] = objective_section
    encoder = build_encoder("vit_tiny", img_size=(32, 32, 32), patch_size=8, tubelet_size=8,
                            embed_dim=32, depth=1, num_heads=2)
    meta = {"objective": "mae", "steps": 1, "data": None, "git_commit": None, "config": trained}
    return save_encoder(encoder, tmp_path / "run" / "encoder.safetensors", meta)


def test_the_encoders_own_preprocessing_is_used(tmp_path):
    spec = resolve_encoder(export(tmp_path, "preprocess.eval_axis=coronal").parent)
    evaluating = load_config("smoke")
    assert evaluating.preprocess.eval_axis == "axial"
    assert encoder_preprocess(spec, evaluating).eval_axis == "coronal"
    assert encoder_preprocess(random_twin(spec), evaluating).eval_axis == "coronal"


@pytest.mark.parametrize("key, evaluating", [("preprocess.crop_size", 48), ("preprocess.depth", 16),
                                             ("model.patch_size", 4), ("model.tubelet_size", 4)])
def test_an_input_mismatch_is_refused_naming_the_file_the_key_and_both_values(tmp_path, key, evaluating):
    path = export(tmp_path)
    own = {"preprocess.crop_size": 32, "preprocess.depth": 32, "model.patch_size": 8,
           "model.tubelet_size": 8}[key]
    cfg = load_config("smoke", overrides=[f"{key}={evaluating}"])
    with pytest.raises(ConfigError) as caught:
        encoder_preprocess(resolve_encoder(path), cfg)
    message = str(caught.value)
    assert str(path) in message
    assert f"trained with {key}={own}" in message and f"evaluating config has {key}={evaluating}" in message


def test_an_export_without_a_config_takes_the_evaluating_preprocessing(tmp_path):
    path = export(tmp_path)
    spec = replace(resolve_encoder(path), trained=None)
    cfg = load_config("smoke", overrides=["preprocess.crop_size=48"])
    assert encoder_preprocess(spec, cfg) is cfg.preprocess


def test_embedding_modalities_are_read_under_the_old_and_the_new_name(tmp_path):
    new = export(tmp_path / "new", "objective.embedding_modalities=[FLAIR, T1w]")
    old = export(tmp_path / "old", objective_section={"modalities": ["T2w"]})
    assert resolve_encoder(new).modalities == ("FLAIR", "T1w")
    assert resolve_encoder(old).modalities == ("T2w",)
