"""JupyterLab on this repository: the save hook that ``make lab`` configures (``lab/``).

The notebooks are committed as code and prose only (``notebooks/*.py`` and their paired
``.ipynb``). JupyterLab saves what it shows: outputs, execution counts and the kernel's
``language_info``, so running a notebook and letting autosave write it would leave diffs in git.
This hook saves a paired notebook in ``notebooks/`` without them; the open notebook keeps its
outputs on screen.
"""

from __future__ import annotations

from pathlib import PurePosixPath

NOTEBOOKS_FOLDER = "notebooks"
# Notebook metadata that a kernel or the frontend adds at run time, never written by jupytext.
RUNTIME_METADATA = ("language_info", "widgets")


def is_committed_pair(path: str, notebook: dict) -> bool:
    """True for a notebook in ``notebooks/`` (path relative to the server root) that jupytext
    pairs with a text file."""
    formats = notebook.get("metadata", {}).get("jupytext", {}).get("formats", "").split(",")
    in_folder = PurePosixPath(path).parent == PurePosixPath(NOTEBOOKS_FOLDER)
    return in_folder and "ipynb" in formats and len(formats) > 1


def strip_run_state(model: dict, path: str, **kwargs) -> None:
    """``ContentsManager.pre_save_hook``: a committed notebook is saved without outputs,
    execution counts and run-time metadata; anything else is saved as it is.

    Args:
        model: the contents model being saved (``type``, ``content``), changed in place.
        path: its path relative to the server's root.
    """
    if model.get("type") != "notebook" or not is_committed_pair(path, model["content"]):
        return
    notebook = model["content"]
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    for key in RUNTIME_METADATA:
        notebook["metadata"].pop(key, None)
