"""Relative folders of the notebooks' parameters resolve against the repository root."""

from pathlib import Path

import pytest

import neurossl
from neurossl import paths
from neurossl.paths import repo_path, repo_root

CHECKOUT = Path(neurossl.__file__).resolve().parents[1]


def test_source_checkout_is_the_root_wherever_the_process_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repo_root() == CHECKOUT
    assert repo_path("runs/demo") == CHECKOUT / "runs" / "demo"


def test_without_a_checkout_the_nearest_pyproject_above_is_the_root(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PACKAGE_CHECKOUT", tmp_path / "site-packages")  # a wheel install
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    monkeypatch.chdir(project / "notebooks")
    assert repo_root() == project
    assert repo_path("splits/demo") == project / "splits" / "demo"


def test_absolute_paths_are_kept_and_no_root_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PACKAGE_CHECKOUT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    if any((folder / "pyproject.toml").is_file() for folder in (tmp_path, *tmp_path.parents)):
        pytest.skip("a pyproject.toml above the temporary folder")
    assert repo_path(tmp_path / "runs") == tmp_path / "runs"
    assert repo_path("~/runs") == Path.home() / "runs"
    with pytest.raises(FileNotFoundError, match="give absolute paths"):
        repo_path("runs/demo")
