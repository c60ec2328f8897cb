"""Shared fixtures: a smoke cohort taken through the data stages once per test session."""

from pathlib import Path

import pytest

from neurossl.cli import main


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> Path:
    """A 48-subject smoke cohort, curated, cached and split by the CLI (about a minute).

    Layout: ``cohort/``, ``curation.csv``, ``cache/``, ``splits/``.
    """
    root = tmp_path_factory.mktemp("smoke")
    stages = [
        ["demo-data", "--out", str(root / "cohort"), "--profile", "smoke", "--quiet", "--workers", "2"],
        ["curate", str(root / "cohort"), "--report", str(root / "curation.csv"), "--profile", "smoke", "--quiet"],
        ["preprocess", str(root / "cohort"), "--curation", str(root / "curation.csv"),
         "--cache", str(root / "cache"), "--profile", "smoke", "--quiet"],
        ["splits", "make", "--scans", str(root / "cohort" / "scans.tsv"), "--out", str(root / "splits"),
         "--profile", "smoke"],
    ]
    for argv in stages:
        assert main(argv) == 0, argv
    return root


SESSION_OBJECTIVES = ("mae", "slmae", "jepa")


@pytest.fixture(scope="session")
def smoke_runs(smoke_data) -> dict[str, Path]:
    """6-step smoke runs of MAE, SL-MAE and JEPA in ``smoke_data/pretrain/<objective>``
    (read-only for tests: copy before writing)."""
    runs = {}
    for objective in SESSION_OBJECTIVES:
        run = smoke_data / "pretrain" / objective
        argv = ["pretrain", "--objective", objective, "--profile", "smoke", "--cache", str(smoke_data / "cache"),
                "--splits", str(smoke_data / "splits"), "--run-dir", str(run)]
        assert main(argv) == 0, argv
        runs[objective] = run
    return runs


@pytest.fixture(scope="session")
def smoke_eval(smoke_data, smoke_runs) -> Path:
    """Frozen probes of the session runs and their random twin, with few-shot curves, in
    ``smoke_data/eval`` (results.csv, predictions/)."""
    out = smoke_data / "eval"
    argv = ["evaluate", *[a for run in smoke_runs.values() for a in ("--encoder", str(run))],
            "--baseline", "random", "--mode", "frozen", "--fewshot", "--profile", "smoke",
            "--cache", str(smoke_data / "cache"), "--splits", str(smoke_data / "splits"), "--out", str(out)]
    assert main(argv) == 0
    return out
