"""The headline numbers of a finished demo, read back from the tables its notebooks wrote.

What a user should see first after ``make demo``: whether each pretraining run beat its trivial
baselines, how well the masked autoencoders reconstruct, which encoders beat their random twin
(with the paired bootstrap interval), and the high-frequency energy of MAE and SL-MAE
reconstructions against the input's. A table that is missing is named, not skipped silently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from neurossl.analysis.summaries import tubelet_hf_summary
from neurossl.evaluate.report import per_contrast_rows

PAPER_ENCODERS = ("mae", "slmae", "jepa", "vcr_jepa")
PAPER_TASKS = ("cognition_nc_vs_ad", "glioma_grade2_vs_34")


def _read(tables: Path, name: str) -> pd.DataFrame | None:
    path = tables / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def learning_lines(checks: pd.DataFrame) -> list[str]:
    """One line per objective: checks passed of checks run, and the failed ones."""
    lines = []
    for objective, rows in checks.groupby("objective", sort=False):
        failed = rows.loc[~rows["passed"].astype(bool), "check"].tolist()
        lines.append(f"- {objective}: {len(rows) - len(failed)} of {len(rows)} checks beat their "
                     f"trivial baseline" + (f" (not: {', '.join(failed)})" if failed else ""))
    return lines


def paired_lines(paired: pd.DataFrame) -> list[str]:
    """The paper's 8 cells (MAE, SL-MAE, JEPA, VCR-JEPA x NC vs AD, glioma; frozen), autism, the
    head-CT task and the per-contrast probes."""
    frozen = paired[paired["mode"] == "frozen"]
    cells = frozen[frozen["encoder"].isin(PAPER_ENCODERS) & frozen["task"].isin(PAPER_TASKS)]
    above = int((cells["low"] > 0).sum())
    lines = [f"- paper cells with the 95 % interval of AUC - random twin above 0: {above} of {len(cells)}"]
    lines += [f"  - {r.encoder} {r.task}: {r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"
              for r in cells.itertuples()]
    autism = frozen[frozen["task"] == "autism_asd_vs_td"]
    covering = int(((autism["low"] <= 0) & (autism["high"] >= 0)).sum())
    lines.append(f"- autism: the interval covers 0 for {covering} of {len(autism)} encoders")
    ct = frozen[frozen["task"] == "headct_ich"]
    lines += [f"- head-CT haemorrhage, {r.encoder}: AUC {r.auc:.3f} vs random twin "
              f"{r.auc_reference:.3f}, difference [{r.low:+.3f}, {r.high:+.3f}]" for r in ct.itertuples()]
    lines += [f"- {r.encoder} on {r.task}, {r.contrast} only: AUC {r.auc:.3f} vs its random twin "
              f"{r.auc_reference:.3f}, difference [{r.low:+.3f}, {r.high:+.3f}] ({r.n_scans} scans)"
              for r in per_contrast_rows(frozen).itertuples()]
    return lines


def hf_line(recon_hf: pd.DataFrame) -> str:
    """Mean high-frequency energy of the input and of MAE / SL-MAE mosaics, and inside the masked
    tubelets where the table has them."""
    means = recon_hf[["target", "MAE", "SL-MAE"]].mean()
    return (f"- high-frequency energy over {len(recon_hf)} volumes: input {means['target']:.4f}, "
            f"MAE {means['MAE']:.4f}, SL-MAE {means['SL-MAE']:.4f}"
            + (f"\n- {tubelet_hf_summary(recon_hf)}" if "target_tubelets" in recon_hf else ""))


def headline_summary(tables_dir: str | Path) -> str:
    """Markdown headlines of the tables under ``tables_dir`` (``paper/tables``)."""
    tables = Path(tables_dir)
    parts, missing = [f"# neurossl demo: headlines ({tables})", ""], []
    readers = (("tab02_learning_checks", "Learning checks (held-out volumes)", learning_lines),
               ("tab02_reconstruction_quality", "Reconstruction quality",
                lambda t: [f"- {r.objective}: Pearson r {r.pearson_r:.3f}, PSNR {r.psnr_db:.1f} dB "
                           f"({r.n_volumes} volumes)" for r in t.itertuples()]),
               ("tab03_paired_vs_random", "Pretrained vs random twin (frozen probes)", paired_lines),
               ("tab05_reconstruction_hf_energy", "Spectral energy (Figure 4)", lambda t: [hf_line(t)]))
    for name, title, lines in readers:
        table = _read(tables, name)
        if table is None or table.empty:
            missing.append(name)
            continue
        parts += [f"## {title}", "", *lines(table), ""]
    if missing:
        parts.append(f"Not found under {tables}: {', '.join(missing)}")
    return "\n".join(parts)
