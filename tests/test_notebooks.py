"""The notebooks: paired .py / .ipynb in sync, a papermill ``parameters`` cell, a smoke run."""

import shutil
from pathlib import Path

import jupytext
import pytest

from neurossl.paper import NOTEBOOKS_DIR, NotebookError, notebook_paths, run_notebooks

PARAMETERS = {"profile", "data_dir", "splits_dir", "figures_dir", "tables_dir", "device",
              "objectives", "run_missing"}
SOURCES = sorted(NOTEBOOKS_DIR.glob("0*.py"))


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in jupytext.read(path).cells]


def test_notebooks_exist():
    assert [p.stem[:2] for p in SOURCES][:2] == ["01", "02"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_paired_ipynb_in_sync(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} missing: run `jupytext --sync notebooks/*.py`"
    assert _cells(paired) == _cells(source), (
        f"{paired.name} is out of sync with {source.name}: run `jupytext --sync notebooks/*.py`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_first_code_cell_is_parameters(source):
    notebook = jupytext.read(source)
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    names = {line.split("=")[0].strip() for line in first.source.splitlines()
             if "=" in line and not line.lstrip().startswith("#")}
    assert names == PARAMETERS


def test_unknown_notebook_name_is_a_clear_error():
    with pytest.raises(NotebookError, match="no notebook matches 'nope'"):
        notebook_paths(["nope"])
    assert [p.stem for p in notebook_paths(["02", "01_data_curation.py"])] == [
        "01_data_curation", "02_pretraining"]


@pytest.mark.slow
def test_smoke_run_of_every_notebook(smoke_data, smoke_eval, tmp_path):
    data = tmp_path / "run"
    shutil.copytree(smoke_data, data)
    out = tmp_path / "paper"
    executed = run_notebooks("smoke", data, out, data / "splits",
                             objectives=["mae", "slmae", "jepa"], progress=False)
    assert [p.name for p in executed] == [f"{p.stem}.ipynb" for p in SOURCES]
    assert all(p.parent == data / "notebooks" for p in executed)
    for stem in ["fig01_cohort", "fig01_curation", "fig01_acquisition", "fig01_example_slices",
                 "fig02_loss_curves", "fig02_collapse_monitor", "fig02_reconstructions"]:
        for suffix in (".png", ".pdf"):
            assert (out / "figures" / f"{stem}{suffix}").is_file(), stem + suffix
    for stem in ["tab01_cohort", "tab01_curation_summary", "tab01_acquisition",
                 "tab01_split_totals", "tab02_pretraining_losses"]:
        for suffix in (".csv", ".md"):
            assert (out / "tables" / f"{stem}{suffix}").is_file(), stem + suffix
    for number in sorted({p.stem[:2] for p in SOURCES} - {"01", "02"}):
        assert any((out / "figures").glob(f"fig{number}_*.png")) or any(
            (out / "tables").glob(f"tab{number}_*")), f"notebook {number} wrote nothing"
    for objective in ["mae", "slmae", "jepa"]:
        assert (data / "pretrain" / objective / "encoder.safetensors").is_file()


def test_failing_notebook_names_notebook_and_cell(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_broken.py").write_text(
        '# %% tags=["parameters"]\nprofile = "demo"\n\n# %%\nx = 1\n\n# %%\nraise KeyError("boom")\n')
    monkeypatch.setattr("neurossl.paper.NOTEBOOKS_DIR", folder)
    with pytest.raises(NotebookError, match=r"01_broken\.py failed in cell \d+ \(KeyError"):
        run_notebooks("smoke", tmp_path / "data", tmp_path / "out", tmp_path / "splits",
                      progress=False)
