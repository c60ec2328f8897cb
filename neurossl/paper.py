"""Regenerate the paper's figures and tables by executing the notebooks with papermill.

The notebooks (``notebooks/0*.py``, jupytext percent format) are the source of truth; each is
converted to a notebook in a temporary folder, its ``parameters`` cell overridden, and executed
in order with the kernel in the notebook's own folder, where JupyterLab starts it too (the
notebooks resolve relative paths against the repository root: :mod:`neurossl.paths`). Executed
copies (with outputs) go to ``<data_dir>/notebooks/``; figures and tables to
``<out_dir>/figures`` and ``<out_dir>/tables``. The first failing notebook stops the run with a
:class:`NotebookError` naming the notebook and the cell.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
# The spec ipykernel installs; the notebooks' metadata names the same, so JupyterLab keeps it.
KERNEL = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"
# A kernel that exits before its first reply has run no cell, so starting another is safe. It
# happens when notebooks execute in several processes at once (a papermill batch, the test
# suite): each process picks free TCP ports for its kernel on its own, and two kernels can pick
# the same one (jupyter_client issue 487); the loser cannot bind and exits.
KERNEL_START_DIED = "Kernel died before replying to kernel_info"
KERNEL_START_ATTEMPTS = 3


class NotebookError(RuntimeError):
    """A notebook failed (or could not be found); the message names it and the failing cell."""


def notebook_paths(notebooks: Sequence[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The notebooks to run, in order: all ``0*.py`` or those named.

    Args:
        notebooks: names as a number prefix (``01``), a stem (``01_data_curation``) or a file name
            (``01_data_curation.py`` / ``.ipynb``); None = every notebook.
        folder: the notebooks folder; None = ``notebooks/`` of the source checkout.

    Raises:
        NotebookError: when the folder is missing or a name matches no notebook.
    """
    folder = folder or NOTEBOOKS_DIR
    if not folder.is_dir():
        raise NotebookError(f"notebooks folder not found: {folder} (neurossl paper runs from a "
                            "source checkout installed with `pip install -e .`)")
    available = sorted(folder.glob("0*.py"))
    if not notebooks:
        return available
    chosen = []
    for name in notebooks:
        stem = Path(name).stem
        matches = [p for p in available if p.stem == stem or p.stem.split("_")[0] == stem]
        if not matches:
            known = ", ".join(p.stem for p in available)
            raise NotebookError(f"no notebook matches {name!r} in {folder}; available: {known}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def notebook_parameters(profile: str, data_dir: Path, out_dir: Path, splits_dir: Path,
                        device: str, objectives: Sequence[str] | None) -> dict:
    """The values injected into every notebook's ``parameters`` cell (absolute paths)."""
    parameters = {
        "profile": profile,
        "data_dir": str(data_dir.resolve()),
        "splits_dir": str(splits_dir.resolve()),
        "figures_dir": str((out_dir / "figures").resolve()),
        "tables_dir": str((out_dir / "tables").resolve()),
        "device": device,
    }
    if objectives:
        parameters["objectives"] = list(objectives)
    return parameters


def _failure_message(path: Path, executed: Path, exc: Exception) -> str:
    """Name the notebook, the cell and the error; show the cell's first lines."""
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    excerpt = "\n".join(f"    {line}" for line in source[:4])
    more = "\n    ..." if len(source) > 4 else ""
    return (f"notebook {path.name} failed in cell {exc.cell_index} "
            f"({exc.ename}: {exc.evalue})\n{excerpt}{more}\n"
            f"executed copy with the traceback: {executed}")


def run_notebook(path: Path, executed: Path, parameters: dict, progress: bool = True) -> Path:
    """Execute one percent-format notebook with papermill; returns the executed copy's path.

    A kernel that dies before its first reply is started again, up to
    ``KERNEL_START_ATTEMPTS`` times in all, with a warning each time.

    Raises:
        NotebookError: naming the notebook, the failing cell and the exception; or naming the
            notebook when its kernel died at every start.
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": KERNEL_DISPLAY_NAME,
                                       "language": "python"}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{path.stem}.ipynb"
        jupytext.write(notebook, source)
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                papermill.execute_notebook(
                    str(source), str(executed), parameters=parameters, kernel_name=KERNEL,
                    cwd=str(path.parent), progress_bar=progress,
                )
                break
            except PapermillExecutionError as exc:
                raise NotebookError(_failure_message(path, executed, exc)) from exc
            except RuntimeError as exc:
                if KERNEL_START_DIED not in str(exc):
                    raise
                if attempt == KERNEL_START_ATTEMPTS:
                    raise NotebookError(
                        f"notebook {path.name}: the {KERNEL!r} kernel died while starting, "
                        f"{attempt} times; no cell ran (does `python -m ipykernel` start in "
                        "this environment?)") from exc
                warnings.warn(f"notebook {path.name}: the kernel died while starting (no cell "
                              f"ran); starting another (attempt {attempt + 1} of "
                              f"{KERNEL_START_ATTEMPTS})", RuntimeWarning, stacklevel=2)
    return executed


def run_notebooks(
    profile: str,
    data_dir: str | Path,
    out_dir: str | Path,
    splits_dir: str | Path,
    notebooks: Sequence[str] | None = None,
    device: str = "auto",
    objectives: Sequence[str] | None = None,
    executed_dir: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Execute the notebooks in order; returns the executed copies' paths.

    Args:
        profile: ``smoke``, ``demo`` or ``paper`` (passed to the notebooks' ``load_config``).
        data_dir: run folder (``cohort/``, ``curation.csv``, ``cache/``, ``pretrain/``, ``eval/``).
        out_dir: receives ``figures/`` and ``tables/``.
        splits_dir: split folder.
        notebooks: which to run (see :func:`notebook_paths`); None = all.
        device: ``auto``, ``cpu`` or ``cuda``.
        objectives: pretraining objectives to run / show; None = each notebook's default.
        executed_dir: where executed copies go; default ``<data_dir>/notebooks``.
        progress: show papermill's progress bar.

    Raises:
        NotebookError: the first failure, naming the notebook and the cell.
    """
    data_dir, out_dir, splits_dir = Path(data_dir), Path(out_dir), Path(splits_dir)
    executed_dir = Path(executed_dir) if executed_dir is not None else data_dir / "notebooks"
    paths = notebook_paths(notebooks)
    if not paths:
        raise NotebookError(f"no notebooks (0*.py) in {NOTEBOOKS_DIR}")
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(profile, data_dir, out_dir, splits_dir, device, objectives)
    written = []
    for number, path in enumerate(paths, start=1):
        print(f"[{number}/{len(paths)}] {path.name} -> {executed_dir / (path.stem + '.ipynb')}",
              flush=True)
        written.append(run_notebook(path, executed_dir / f"{path.stem}.ipynb", parameters, progress))
    return written
