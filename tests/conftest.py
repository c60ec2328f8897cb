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
