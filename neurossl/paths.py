"""Folders named in the notebooks' parameters, resolved the same way wherever the kernel starts.

A Jupyter kernel starts in the notebook's own folder (``notebooks/``), papermill's in whatever
folder it is given, so a relative ``runs/demo`` would point somewhere different in each. Relative
paths here are taken relative to the repository root instead: the source checkout this package
is installed from (``pip install -e .``), or else the nearest folder at or above the working
directory that holds a ``pyproject.toml``. An absolute path is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

# The checkout holding this package when it is installed from source (editable); for a wheel
# this is a site-packages folder without a pyproject.toml and is not used.
PACKAGE_CHECKOUT = Path(__file__).resolve().parents[1]


def repo_root(start: str | Path | None = None) -> Path:
    """The repository root: the package's source checkout, else the nearest folder at or above
    ``start`` (default: the working directory) that holds a ``pyproject.toml``.

    Raises:
        FileNotFoundError: neither exists; the message says to pass absolute paths instead.
    """
    if (PACKAGE_CHECKOUT / "pyproject.toml").is_file():
        return PACKAGE_CHECKOUT
    start = Path(start) if start is not None else Path.cwd()
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(
        f"no repository root for relative paths: neurossl is not installed from a source "
        f"checkout and no folder at or above {start} holds a pyproject.toml; give absolute paths")


def repo_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute: as it is when absolute, else relative to :func:`repo_root`.

    ``~`` is expanded first, so ``~/data`` counts as absolute.
    """
    path = Path(path).expanduser()
    return path if path.is_absolute() else repo_root() / path
