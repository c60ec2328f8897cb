"""Shared fixtures: a smoke cohort taken through the pipeline's stages once per test session."""

from pathlib import Path

import pytest

from neurossl import pipeline


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    """A 48-subject smoke cohort, curated, cached and split by the pipeline's data stages.

    Layout: ``cohort/``, ``curation.csv``, ``cache/``, ``splits/``.
    """
    root = tmp_path_factory.mktemp("smoke")
    pipeline.data(root, profile="smoke", progress=False, workers=2)
    return root


SESSION_OBJECTIVES = ("mae", "slmae", "jepa")


@pytest.fixture(scope="session")
def smoke_runs(smoke_data) -> dict[str, Path]:
    """6-step smoke runs of MAE, SL-MAE and JEPA in ``smoke_data/pretrain/<objective>``
    (read-only for tests: copy before writing)."""
    return pipeline.pretrained_all(SESSION_OBJECTIVES, smoke_data, profile="smoke")


@pytest.fixture(scope="session")
def smoke_eval(smoke_data, smoke_runs) -> Path:
    """Frozen probes of the session runs and their random twin, with few-shot curves, in
    ``smoke_data/eval`` (results.csv, predictions/); no fine-tuning, which the notebooks' smoke
    run does not need and which would triple the fixture's time."""
    return pipeline.evaluation(smoke_data, profile="smoke", objectives=SESSION_OBJECTIVES,
                               finetune=(), table7=(), baselines=("random",))
