"""`make lab`: the server it starts, and what saving a notebook through JupyterLab writes."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from neurossl.lab import strip_run_state
from neurossl.paper import NOTEBOOKS_DIR, REPO_ROOT

LAB_CONFIG = REPO_ROOT / "lab" / "jupyter_lab_config.py"
SOURCES = sorted(NOTEBOOKS_DIR.glob("0*.py"))


def lab_contents_manager(root: Path):
    """The jupytext contents manager that JupyterLab saves through, configured by lab/."""
    pytest.importorskip("jupyter_server")
    from jupytext import TextFileContentsManager
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(LAB_CONFIG.name, path=str(LAB_CONFIG.parent)).load_config()
    return TextFileContentsManager(config=config, root_dir=str(root))


def as_jupyterlab_leaves_it(notebook: dict) -> dict:
    """The notebook after JupyterLab connected the installed kernel and ran every cell."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    notebook["metadata"]["kernelspec"] = {"display_name": spec.display_name,
                                          "language": spec.language, "name": "python3"}
    notebook["metadata"]["language_info"] = {"name": "python", "version": sys.version.split()[0]}
    for count, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] == "code":
            cell["execution_count"] = count
            cell["outputs"] = [{"output_type": "stream", "name": "stderr", "text": "ran\n"}]
    return notebook


@pytest.mark.parametrize("opened", ["py", "ipynb"])
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_running_and_saving_a_notebook_leaves_the_pair_as_committed(source, opened, tmp_path):
    shutil.copytree(NOTEBOOKS_DIR, tmp_path / "notebooks")
    shutil.copy(REPO_ROOT / "jupytext.toml", tmp_path)
    pair = [f"notebooks/{source.stem}{suffix}" for suffix in (".py", ".ipynb")]
    committed = {name: (tmp_path / name).read_bytes() for name in pair}
    contents = lab_contents_manager(tmp_path)
    path = f"notebooks/{source.stem}.{opened}"
    model = contents.get(path)
    assert model["type"] == "notebook"
    contents.save({"type": "notebook", "content": as_jupyterlab_leaves_it(model["content"])}, path)
    for name in pair:
        assert (tmp_path / name).read_bytes() == committed[name], f"saving {path} changed {name}"


def test_saving_a_package_module_opened_as_a_notebook_changes_nothing(tmp_path):
    """JupyterLab opens every .py as a notebook (lab/settings): autosave must not add a header."""
    shutil.copytree(REPO_ROOT / "neurossl", tmp_path / "neurossl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "jupytext.toml", tmp_path)
    contents = lab_contents_manager(tmp_path)
    modules = sorted(tmp_path.glob("neurossl/**/*.py"))
    committed = {path: path.read_bytes() for path in modules}
    for path in modules:
        name = str(path.relative_to(tmp_path))
        model = contents.get(name)
        contents.save({"type": "notebook", "content": as_jupyterlab_leaves_it(model["content"])},
                      name)
    assert {path: path.read_bytes() for path in modules} == committed
    assert not list(tmp_path.glob("neurossl/**/*.ipynb"))


def test_other_notebooks_keep_their_outputs():
    notebook = {"metadata": {"jupytext": {"formats": "ipynb,py:percent"}, "language_info": {}},
                "cells": [{"cell_type": "code", "outputs": [{"output_type": "stream"}],
                           "execution_count": 1, "source": "", "metadata": {}}]}
    for path in ("scratch/mine.ipynb", "notebooks/sub/mine.ipynb"):
        model = {"type": "notebook", "content": json.loads(json.dumps(notebook))}
        strip_run_state(model, path)
        assert model["content"] == notebook, path
    unpaired = {**notebook, "metadata": {}}
    model = {"type": "notebook", "content": json.loads(json.dumps(unpaired))}
    strip_run_state(model, "notebooks/scratch.ipynb")
    assert model["content"] == unpaired


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 180):
    """Poll ``url`` until it answers; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"make lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return get_json(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    pytest.fail(f"make lab did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_make_lab_serves_the_repository_with_notebooks_opening_as_notebooks(tmp_path):
    pytest.importorskip("jupyterlab")
    venv = Path(sys.prefix)
    if shutil.which("make") is None or not (venv / "bin" / "jupyter").is_file():
        pytest.skip("needs make and jupyter in this environment's bin/")
    port, token = free_port(), "neurossl-test"
    api = f"http://127.0.0.1:{port}"
    log = tmp_path / "lab.log"
    # -o: the environment running the tests counts as installed (make would rebuild a stale one).
    command = ["make", "-C", str(REPO_ROOT), "-o", f"{venv}/.installed", "lab", f"VENV={venv}",
               f"LAB_PORT={port}",
               f"LAB_ARGS=--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port_retries=0 "
               f"--IdentityProvider.token={token}"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_serving(f"{api}/api/status?token={token}", server, log)
        root = get_json(f"{api}/api/contents?token={token}")
        assert {"notebooks", "neurossl", "pyproject.toml"} <= {e["name"] for e in root["content"]}
        listing = get_json(f"{api}/api/contents/notebooks?token={token}")
        types = {entry["name"]: entry["type"] for entry in listing["content"]}
        for source in SOURCES:  # jupytext's contents manager serves the .py files as notebooks
            assert types[source.name] == types[source.with_suffix(".ipynb").name] == "notebook"
        docmanager = get_json(f"{api}/lab/api/settings/@jupyterlab/docmanager-extension:plugin"
                              f"?token={token}")
        viewers = docmanager["schema"]["properties"]["defaultViewers"]["default"]
        assert viewers["python"] == "Jupytext Notebook"  # a double click opens a notebook
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
