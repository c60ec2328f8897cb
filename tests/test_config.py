"""Config: profiles resolve, overrides are typed, bad keys are named."""

import pytest

from neurossl.config import ConfigError, load_config, parse_overrides, save_config


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_profiles_load(profile):
    cfg = load_config(profile)
    assert cfg.profile == profile
    assert cfg.preprocess.margin == 6


def test_paper_profile_holds_the_papers_settings():
    cfg = load_config("paper")
    assert (cfg.preprocess.crop_size, cfg.preprocess.depth) == (160, 160)
    assert cfg.preprocess.clip_percentiles == (1.0, 99.0)
    assert cfg.curation.min_fov_mm == 50.0 and cfg.curation.max_spacing_mm == 6.5
    assert cfg.splits.downstream_fraction == 0.15


def test_override_types_are_checked_and_converted():
    cfg = load_config("demo", overrides=["preprocess.clip_percentiles=[0.5, 99.5]", "cohort.seed=7"])
    assert cfg.preprocess.clip_percentiles == (0.5, 99.5)
    assert cfg.cohort.seed == 7
    with pytest.raises(ConfigError, match="cohort.seed' must be int"):
        load_config("demo", overrides=["cohort.seed=abc"])


def test_float_written_without_a_dot_is_a_float():
    # YAML 1.1 reads `1e-4` as a string; `--set optim.lr=1e-4` must still mean 0.0001
    assert load_config("demo", overrides=["optim.lr=1e-4"]).optim.lr == 1e-4
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config("demo", overrides=["optim.lr=fast"])


def test_misspelled_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        load_config("demo", overrides=["preprocess.crop_sise=96"])
    message = str(err.value)
    assert "preprocess.crop_sise" in message and "crop_size" in message


def test_unknown_section_and_profile():
    with pytest.raises(ConfigError, match="unknown config key 'trainer'"):
        load_config("demo", overrides=["trainer.lr=1"])
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config("laptop")


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["preprocess.crop_size"])


def test_yaml_file_round_trip(tmp_path):
    cfg = load_config("smoke", overrides=["preprocess.depth=24"])
    path = tmp_path / "resolved.yaml"
    save_config(cfg, path)
    again = load_config("demo", path=path)
    assert again.preprocess.depth == 24 and again.cohort.subjects == cfg.cohort.subjects
    assert again.preprocess.ct_windows == cfg.preprocess.ct_windows


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preprocess: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config("demo", path=path)
    with pytest.raises(ConfigError, match="not found"):
        load_config("demo", path=tmp_path / "missing.yaml")


@pytest.mark.parametrize("key, bad", [("masking.kind", "multiblok"), ("masking.sampling", "offical"),
                                      ("optim.grad_clip_rule", "per_net"),
                                      ("objective.export_encoder", "teacher"), ("train.device", "gpu"),
                                      ("evaluate.head", "mlp")])
def test_a_misspelt_enumerated_value_names_the_key_and_the_valid_values(key, bad):
    from neurossl.config import CHOICES

    with pytest.raises(ConfigError, match=rf"'{key}' must be one of {', '.join(CHOICES[key])}"):
        load_config("demo", overrides=[f"{key}={bad}"])


@pytest.mark.parametrize("override, message", [
    ("masking.kind=multi_block", "'masking.kind' must be one of random, multiblock; got 'multi_block'"),
    ("objective.name=mae3d", "'objective.name' must be one of mae, slmae, jepa, vcr_jepa, simclr, "
                             "dino_mim, moe_jepa; got 'mae3d'"),
    ("evaluate.head=mlp", "'evaluate.head' must be one of attentive, linear; got 'mlp'"),
    ("train.device=gpu", "'train.device' must be one of auto, cpu, cuda; got 'gpu'"),
    ("model.name=vit_huge", "'model.name' must be one of vit_tiny, vit_small, vit_base, vit_large; "
                            "got 'vit_huge'"),
    ("model.moe_every=0", "'model.moe_every' must be >= 1 (every n-th block a mixture of experts); got 0"),
    ("masking.ratio=1.5", "'masking.ratio' must be in (0, 1); got 1.5"),
    ("model.moe_top_k=5", "'model.moe_top_k' (5) must be <= 'model.num_experts' (4)"),
    ("evaluate.contrast_tasks=[glioma:T1w]", "'evaluate.contrast_tasks' entries are '<task>:<contrast>'"),
    ("evaluate.contrast_tasks=[glioma_grade2_vs_34]", "got 'glioma_grade2_vs_34'"),
])
def test_a_bad_value_fails_at_resolution_naming_the_key_and_the_valid_values(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config("demo", overrides=[override])
    assert message in str(caught.value)


def test_multiblock_masking_refuses_a_ratio_it_would_ignore():
    assert load_config("demo", overrides=["masking.kind=multiblock"]).masking.kind == "multiblock"
    with pytest.raises(ConfigError, match="'masking.ratio' \\(0.6\\) applies to masking.kind=random only"):
        load_config("demo", overrides=["masking.kind=multiblock", "masking.ratio=0.6"])


@pytest.mark.parametrize("old, new", [("train.modalities", "train.scan_modalities"),
                                      ("objective.modalities", "objective.embedding_modalities")])
def test_a_renamed_key_is_refused_with_its_new_name(old, new):
    with pytest.raises(ConfigError, match=f"unknown config key '{old}'. It was renamed '{new}'"):
        load_config("demo", overrides=[f"{old}=[T1w]"])


def test_the_backbone_choices_are_the_encoder_presets():
    from neurossl.config import CHOICES
    from neurossl.models import ENCODER_PRESETS

    assert CHOICES["model.name"] == tuple(ENCODER_PRESETS)


@pytest.mark.parametrize("profile", ["smoke", "demo", "paper"])
def test_every_entry_point_resolves_an_objective_to_the_same_config(profile, monkeypatch, tmp_path):
    """`neurossl pretrain`, the pipeline's stage (`neurossl demo`, `make demo` and the notebooks,
    whose default device is "auto") and a direct ``load_config`` train each objective with the
    same settings, the profile's objective block included."""
    from neurossl import cli, pipeline
    from neurossl.config import to_dict
    from neurossl.objectives import OBJECTIVES

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "index.csv").write_text("")
    (tmp_path / "splits").mkdir()
    trained = []
    monkeypatch.setattr("neurossl.train.pretrain.pretrain", lambda cfg, *a, **k: trained.append(cfg))
    monkeypatch.setattr(cli, "guard_coverage", lambda *a, **k: None)
    for name in OBJECTIVES:
        trained.clear()
        assert cli.main(["pretrain", "--objective", name, "--profile", profile, "--cache",
                         str(tmp_path / "cache"), "--splits", str(tmp_path / "splits"),
                         "--run-dir", str(tmp_path / "cli" / name)]) == 0
        pipeline.pretrained(name, tmp_path, profile=profile, device="auto")
        direct = load_config(profile, objective=name)
        assert len(trained) == 2, name
        assert to_dict(trained[0]) == to_dict(trained[1]) == to_dict(direct), name
    assert load_config(profile, objective="dino_mim").train.scan_modalities == ("CT",)
