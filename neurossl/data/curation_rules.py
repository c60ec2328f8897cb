"""Dataset-specific curation rules of the official release, as named, configurable rule sets.

The release's ``src/datasets/data_generation.md`` curates some datasets further than the common
filters of :mod:`neurossl.data.curate`: OASIS-3 and SCAN (and ADNI, PPMI) skip files of 2.5 MB
or less; OASIS-3 skips the ``fmap`` / ``func`` / ``swi`` / ``dwi`` folders and non-structural
contrasts (TOF angiography, SWI, BOLD, ...); SCAN drops multi-echo file names (``_ME_``,
``_3TE_``) and quantitative maps or empty volumes by intensity (mean > 2000 or std < 10). The
numbers live in :class:`~neurossl.config.OfficialRuleSets`; ``curation.rule_set`` picks one.

Each rule raises :class:`~neurossl.data.io.VolumeError` with its own reason code, so rejected
files appear in the curation report by reason like every other filter. Path rules run first (no
I/O), the size rule as the size filter's limit, the intensity rules after the voxels are read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from neurossl.config import ConfigError, CurationConfig, OfficialRuleSets, RuleSetConfig
from neurossl.data import io

EXCLUDED_FOLDER = "excluded_folder"
EXCLUDED_NAME = "excluded_name"
EXCLUDED_CONTRAST = "excluded_contrast"
MEAN_TOO_HIGH = "intensity_mean_too_high"
STD_TOO_LOW = "intensity_std_too_low"
RULE_SET_NAMES = tuple(f.name for f in dataclasses.fields(OfficialRuleSets))


def active_rules(cfg: CurationConfig) -> RuleSetConfig | None:
    """The rule set ``cfg.rule_set`` names, None for ``""``; an unknown name is a ConfigError."""
    if not cfg.rule_set:
        return None
    if cfg.rule_set not in RULE_SET_NAMES:
        raise ConfigError(f"curation.rule_set '{cfg.rule_set}' is not one of {', '.join(RULE_SET_NAMES)} "
                          "(or '' for the common filters only)")
    return getattr(cfg.rule_sets, cfg.rule_set)


def series_description(path: Path) -> str:
    """The JSON sidecar's ``SeriesDescription`` (BIDS: ``scan.json`` beside ``scan.nii.gz``), or ``""``."""
    sidecar = path.with_name(path.name.split(".nii")[0] + ".json")
    if not sidecar.is_file():
        return ""
    try:
        return str(json.loads(sidecar.read_text()).get("SeriesDescription", ""))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise io.VolumeError(path, io.UNREADABLE, f"sidecar {sidecar.name} is not a JSON object ({exc})") from exc


def _first_substring(text: str, needles: tuple[str, ...]) -> str | None:
    lowered = text.lower()
    return next((n for n in needles if n.lower() in lowered), None)


def check_path(path: Path, root: Path, rules: RuleSetConfig | None) -> None:
    """Folder, file-name and contrast rules (no voxel I/O)."""
    if rules is None:
        return
    folders = path.relative_to(root).parts[:-1]
    hit = next((f for f in folders if f in rules.exclude_folders), None)
    if hit:
        raise io.VolumeError(path, EXCLUDED_FOLDER, f"inside a '{hit}' folder")
    hit = _first_substring(path.name, rules.exclude_name_patterns)
    if hit:
        raise io.VolumeError(path, EXCLUDED_NAME, f"file name contains '{hit}'")
    if rules.exclude_contrasts:
        description = series_description(path)
        hit = _first_substring(description or path.name, rules.exclude_contrasts)
        if hit:
            where = f"SeriesDescription '{description}'" if description else "file name"
            raise io.VolumeError(path, EXCLUDED_CONTRAST, f"{where} contains '{hit}'")


def min_file_bytes(cfg: CurationConfig) -> int:
    """The size filter's limit: the common one, or the rule set's when that is larger."""
    rules = active_rules(cfg)
    return max(cfg.min_file_bytes, rules.min_file_bytes if rules is not None else 0)


def check_intensity(path: Path, data: np.ndarray, rules: RuleSetConfig | None) -> None:
    """SCAN's intensity QC over all voxels of the volume as stored: quantitative maps have a
    very high mean, empty or artefact volumes almost no spread."""
    if rules is None or not (rules.max_mean or rules.min_std):
        return
    mean, std = float(data.mean()), float(data.std())
    if rules.max_mean and mean > rules.max_mean:
        raise io.VolumeError(path, MEAN_TOO_HIGH, f"mean intensity {mean:.1f} > {rules.max_mean:g}")
    if rules.min_std and std < rules.min_std:
        raise io.VolumeError(path, STD_TOO_LOW, f"intensity std {std:.2f} < {rules.min_std:g}")
