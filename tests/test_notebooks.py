"""The notebooks: paired .py / .ipynb in sync, a papermill ``parameters`` cell, a smoke run."""

import ast
import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest

from neurossl.paper import (NOTEBOOKS_DIR, REPO_ROOT, NotebookError, notebook_paths, run_notebook,
                            run_notebooks)

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


# Control flow is the package's: a notebook cell imports, calls, assigns or shows a value.
CONTROL_FLOW = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.FunctionDef, ast.AsyncFunctionDef,
                ast.ClassDef, ast.Try, ast.With, ast.AsyncWith, ast.Match)
ALLOWED = (ast.Import, ast.ImportFrom, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)


def control_flow_in(source: str) -> list[str]:
    """Top-level statements of a code cell that are not an import, a call, an assignment or a
    shown value (IPython magics such as ``%matplotlib inline`` are read as comments)."""
    python = "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line
                       for line in source.splitlines())
    return [f"line {node.lineno}: {type(node).__name__}" for node in ast.parse(python).body
            if isinstance(node, CONTROL_FLOW) or not isinstance(node, ALLOWED)]


def test_control_flow_check_catches_loops_branches_and_definitions():
    cell = "import x\ny = f(x)\ny\nfor i in y:\n    pass\nif y:\n    pass\ndef g():\n    pass\n"
    assert control_flow_in(cell) == ["line 4: For", "line 6: If", "line 8: FunctionDef"]
    assert control_flow_in("with open(p) as f:\n    pass\ntry:\n    pass\nexcept OSError:\n    pass\n") == [
        "line 1: With", "line 3: Try"]
    assert control_flow_in("z = [a for a in b if a]\nw = a if b else None\n") == []


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_cells_hold_no_control_flow(source):
    """Notebooks only show: stages and computations are package functions (notebooks/README.md)."""
    found = {index: control_flow_in(cell.source) for index, cell in enumerate(jupytext.read(source).cells)
             if cell.cell_type == "code"}
    assert not {index: hits for index, hits in found.items() if hits}, (
        f"{source.name}: move these into a package function: {found}")


def test_unknown_notebook_name_is_a_clear_error():
    with pytest.raises(NotebookError, match="no notebook matches 'nope'"):
        notebook_paths(["nope"])
    assert [p.stem for p in notebook_paths(["02", "01_data_curation.py"])] == [
        "01_data_curation", "02_pretraining"]


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder``: relative path -> (size, modification time)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def run_in_parallel(paths: list[Path], out: Path, parameters: dict) -> list[Path]:
    """Execute the notebooks side by side, one kernel per process; returns the executed copies in
    the order of ``paths``.

    The session fixtures have already run every stage, so each notebook only reads their outputs
    and the five are independent; the kernels' start-up and imports, which dominate a smoke run,
    then overlap. The costliest notebooks (04, 05: embeddings and reconstructions) start first.
    """
    workers = max(2, min(len(paths), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {path: pool.submit(run_notebook, path, out / f"{path.stem}.ipynb", parameters, False)
                   for path in sorted(paths, reverse=True)}
        return [futures[path].result() for path in paths]


@pytest.mark.slow
def test_smoke_run_of_every_notebook(smoke_data, smoke_eval, tmp_path):
    """Every notebook as JupyterLab runs it: the kernel in notebooks/, the folders given relative
    to the repository root (from notebooks/ the same strings point elsewhere), the defaults
    otherwise except the profile and the session's objectives."""
    data = tmp_path / "run"
    shutil.copytree(smoke_data, data)
    out = tmp_path / "paper"
    folders = {"data_dir": data, "splits_dir": data / "splits", "figures_dir": out / "figures",
               "tables_dir": out / "tables"}
    parameters = {"profile": "smoke", "objectives": ["mae", "slmae", "jepa"],
                  **{name: os.path.relpath(folder, REPO_ROOT) for name, folder in folders.items()}}
    (data / "notebooks").mkdir()
    before = files_under(NOTEBOOKS_DIR)
    executed = run_in_parallel(notebook_paths(), data / "notebooks", parameters)
    assert files_under(NOTEBOOKS_DIR) == before, "a notebook wrote under notebooks/"
    assert [p.name for p in executed] == [f"{p.stem}.ipynb" for p in SOURCES]
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
    # the one UMAP run of the suite (umap-learn compiles its numba kernels anew in every process)
    clustering = pd.read_csv(out / "tables" / "tab04_clustering.csv")
    umap_scores = clustering[["silhouette (umap)", "nmi (umap)"]].to_numpy()
    assert len(clustering) and np.isfinite(umap_scores).all()
    assert (np.abs(clustering["silhouette (umap)"]) <= 1).all() and (clustering["nmi (umap)"] >= 0).all()
    for path in executed:  # papermill's kernel: progress bars as text, no widgets
        text = path.read_text()
        assert "application/vnd.jupyter.widget-view+json" not in text, path.name
        assert "IProgress not found" not in text, path.name
    assert "spectra: " in executed[-1].read_text()  # notebook 05's text bar


def test_notebooks_run_with_absolute_parameters_in_their_folder(tmp_path, monkeypatch):
    """run_notebooks injects absolute paths and starts each kernel in the notebook's folder."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_where.py").write_text(
        '# %% tags=["parameters"]\nprofile = "demo"\ndata_dir = "runs/demo"\n\n'
        '# %%\nimport os\nprint("cwd", os.getcwd())\nprint("data_dir", data_dir)\n')
    monkeypatch.setattr("neurossl.paper.NOTEBOOKS_DIR", folder)
    monkeypatch.chdir(tmp_path)
    [executed] = run_notebooks("smoke", "data", "out", "splits", progress=False)
    executed = executed.resolve()
    assert executed == tmp_path / "data" / "notebooks" / "01_where.ipynb"
    assert f"cwd {folder}" in executed.read_text()
    assert f"data_dir {tmp_path / 'data'}" in executed.read_text()  # relative to the caller


def test_failing_notebook_names_notebook_and_cell(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_broken.py").write_text(
        '# %% tags=["parameters"]\nprofile = "demo"\n\n# %%\nx = 1\n\n# %%\nraise KeyError("boom")\n')
    monkeypatch.setattr("neurossl.paper.NOTEBOOKS_DIR", folder)
    with pytest.raises(NotebookError, match=r"01_broken\.py failed in cell \d+ \(KeyError"):
        run_notebooks("smoke", tmp_path / "data", tmp_path / "out", tmp_path / "splits",
                      progress=False)


def flaky_python3_kernel(root: Path, deaths: int) -> Path:
    """A ``python3`` kernel spec under ``root`` (put first on JUPYTER_PATH) whose process exits
    before replying on its first ``deaths`` starts, as a kernel that lost its port does, then
    runs ipykernel; returns the file that counts the starts."""
    starts = root / "starts"
    script = (f"import pathlib, sys\nstarts = pathlib.Path({str(starts)!r})\n"
              "n = len(starts.read_text()) if starts.exists() else 0\n"
              "starts.write_text('x' * (n + 1))\n"
              f"if n < {deaths}:\n    sys.exit(1)\n"
              "from ipykernel import kernelapp\nkernelapp.launch_new_instance()\n")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", script, "-f", "{connection_file}"],
        "display_name": "flaky", "language": "python"}))
    return starts


def tiny_notebook(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "01_tiny.py"
    path.write_text('# %% tags=["parameters"]\nprofile = "demo"\n\n# %%\nprint("ran", 6 * 7)\n')
    return path


def test_a_kernel_that_dies_while_starting_is_started_again(tmp_path, monkeypatch):
    starts = flaky_python3_kernel(tmp_path / "jupyter", deaths=1)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    path = tiny_notebook(tmp_path / "notebooks")
    with pytest.warns(RuntimeWarning, match=r"01_tiny\.py: the kernel died while starting"):
        executed = run_notebook(path, tmp_path / "01_tiny.ipynb", {"profile": "smoke"}, False)
    assert starts.read_text() == "xx"
    assert "ran 42" in executed.read_text()


def test_a_kernel_that_always_dies_while_starting_is_a_clear_error(tmp_path, monkeypatch):
    starts = flaky_python3_kernel(tmp_path / "jupyter", deaths=99)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    path = tiny_notebook(tmp_path / "notebooks")
    with (pytest.warns(RuntimeWarning),
          pytest.raises(NotebookError, match=r"01_tiny\.py: the 'python3' kernel died while "
                                             r"starting, 3 times; no cell ran")):
        run_notebook(path, tmp_path / "01_tiny.ipynb", {"profile": "smoke"}, False)
    assert starts.read_text() == "xxx"
