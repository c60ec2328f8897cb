"""The own-data commands the README and paper/README.md document parse with today's CLI."""

import re
import shlex
from pathlib import Path

import pytest

from neurossl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = [
    (ROOT / "README.md", "## Using your own data", "\n## "),
    (ROOT / "paper" / "README.md", "### From an ADNI download to Table 2", "\n### The end"),
]


def documented_commands() -> list[str]:
    commands = []
    for path, start, end in SECTIONS:
        text = path.read_text()
        section = text[text.index(start):]
        section = section[: section.index(end, 1)] if end in section[1:] else section
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            joined = block.replace("\\\n", " ")
            commands += [line.strip() for line in joined.splitlines() if "neurossl " in line]
    return commands


COMMANDS = documented_commands()


def test_the_sections_document_every_stage():
    words = " ".join(COMMANDS)
    for stage in ("scans pattern", "scans bids", "curate", "preprocess", "scans coverage", "pretrain",
                  "evaluate", "report"):
        assert f"neurossl {stage}" in words or f"-m neurossl {stage}" in words, stage


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_parses(command):
    argv = shlex.split(command.replace("$objective", "mae"))
    argv = argv[argv.index("neurossl") + 1:]
    argv = argv[: argv.index("#")] if "#" in argv else argv
    args = build_parser().parse_args(argv)
    assert callable(args.func)
