"""Progress bars: widgets only in a kernel that a Jupyter server (JupyterLab) started."""

import sys
import types

import pytest

from neurossl.progress import widgets_wanted


def test_widgets_only_in_a_jupyter_server_session(monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setenv("JPY_SESSION_NAME", "/repo/notebooks/05_spectral_energy.py")
    assert widgets_wanted()  # JupyterLab's kernel (the dev extra installs ipywidgets)
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert not widgets_wanted()  # papermill's kernel
    monkeypatch.setenv("JPY_SESSION_NAME", "/repo/notebooks/05_spectral_energy.py")
    monkeypatch.delitem(sys.modules, "ipykernel")
    assert not widgets_wanted()  # a command started from a notebook's shell escape
