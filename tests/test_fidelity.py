"""paper/FIDELITY.md is true of the code: every `key=value` of its profile, option and demo
columns resolves to that value, and every test it names exists."""

import math
import re
from pathlib import Path

import pytest
import yaml

from neurossl.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "paper" / "FIDELITY.md"
ASSIGNMENT = re.compile(r"`(?:(\w+): )?([a-z_]+\.[a-z_]+)=([^`]+)`")
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def rows() -> list[dict[str, str]]:
    """Every table row as {column header: cell}."""
    found, header = [], None
    for line in TABLE.read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            header = cells
        elif not set(line) <= set("|- "):
            found.append(dict(zip(header, cells)))
    return found


ROWS = rows()


def resolved(profile: str, objective: str | None):
    return load_config(profile, objective=objective)


def plain(value):
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def same(actual, expected) -> bool:
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            same(a, e) for a, e in zip(actual, expected))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(actual, (int, float)) and math.isclose(actual, expected, rel_tol=1e-9)
    return actual == expected or str(actual) == str(expected)


def test_the_table_has_its_rows_and_columns():
    assert len(ROWS) >= 40
    assert {"#", "setting", "paper", "official", "profile", "other behaviour", "demo", "pinned by"} <= set(ROWS[0])
    ids = [r["#"] for r in ROWS]
    assert len(ids) == len(set(ids)), "row ids repeat"
    assert all(r["profile"] for r in ROWS), "a row without its profile value"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["#"])
def test_every_value_the_row_states_is_what_the_config_resolves(row):
    for column, profile in (("profile", "paper"), ("demo", "demo")):
        for prefix, key, raw in ASSIGNMENT.findall(row[column]):
            cfg = resolved(profile, prefix or None)
            section, name = key.split(".")
            actual = plain(getattr(getattr(cfg, section), name))
            expected = yaml.safe_load(raw)
            assert same(actual, expected), f"{row['#']} {column}: {key} is {actual!r}, the table says {raw}"
    for prefix, key, raw in ASSIGNMENT.findall(row["other behaviour"]):
        load_config("paper", overrides=[f"{key}={raw}"])  # a stated option must be a valid one


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["#"])
def test_every_pinning_test_exists(row):
    for path, name in TEST_ID.findall(row["pinned by"]):
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{row['#']}: {path}::{name} does not exist"
