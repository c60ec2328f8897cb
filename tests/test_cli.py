"""Every documented console command imports and answers --help."""

import subprocess
import sys
from pathlib import Path

import pytest

from neurossl.cli import build_parser, main, subcommand_paths

PATHS = subcommand_paths()


def test_expected_subcommands_exist():
    names = {" ".join(p) for p in PATHS}
    assert {"demo-data", "curate", "preprocess", "splits make", "splits audit", "summary"} <= names


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_each_subcommand_help(path, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*path, "--help"])
    assert done.value.code == 0
    assert "usage: neurossl" in capsys.readouterr().out


def test_python_dash_m_and_console_script():
    out = subprocess.run([sys.executable, "-m", "neurossl", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo-data" in out.stdout
    console = Path(sys.executable).with_name("neurossl")
    script = subprocess.run([str(console), "--version"], capture_output=True, text=True)
    assert script.returncode == 0 and script.stdout.startswith("neurossl ")


def test_config_error_is_a_clear_exit(tmp_path, capsys):
    code = main(["curate", str(tmp_path), "--set", "curation.min_fov=3"])
    assert code == 2
    assert "min_fov_mm" in capsys.readouterr().err
