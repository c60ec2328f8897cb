"""JupyterLab as ``make lab`` starts it (``jupyter lab --config=lab/jupyter_lab_config.py``).

Loaded after the user's own Jupyter configuration, which it leaves in place.
"""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)
here = Path(__file__).resolve().parent

# The repository root, so the notebooks' folder and the data and paper folders are all in view.
c.ServerApp.root_dir = str(here.parent)
# settings/overrides.json changes JupyterLab's defaults for this server only: the jupytext
# percent scripts open as notebooks on a double click (a user's own settings still win).
c.LabApp.app_settings_dir = str(here / "settings")
# Saving a notebook of notebooks/ leaves the committed pair as it is: no outputs (neurossl.lab).
c.ContentsManager.pre_save_hook = "neurossl.lab.strip_run_state"
# The layout (open tabs) of this repository's lab stays with it, not in the home folder where
# every project's lab would share the one default workspace.
c.LabApp.workspaces_dir = str(here / "workspaces")
