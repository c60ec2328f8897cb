"""Progress bars: widgets in a notebook that JupyterLab runs, plain text everywhere else.

``tqdm.auto`` draws widgets in every Jupyter kernel once ipywidgets is installed, papermill's
included, where they are saved as widget views that no reader of the executed notebook sees
move (and without ipywidgets it warns ``IProgress not found`` in every notebook). A kernel that
a Jupyter server (JupyterLab, Notebook) starts for a notebook or console carries its session's
name in ``JPY_SESSION_NAME`` (ipykernel shows it as ``__session__``); papermill's kernels, the
command line and scripts do not, so they get tqdm's text bars.

Use ``from neurossl.progress import tqdm`` wherever ``tqdm`` would be used.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def widgets_wanted() -> bool:
    """True in an IPython kernel started by a Jupyter server for a session, with ipywidgets."""
    return ("ipykernel" in sys.modules and bool(os.environ.get("JPY_SESSION_NAME"))
            and importlib.util.find_spec("ipywidgets") is not None)


if widgets_wanted():
    from tqdm.notebook import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm", "widgets_wanted"]
