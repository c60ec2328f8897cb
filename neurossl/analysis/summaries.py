"""One-paragraph readings of the notebooks' tables, as Markdown text.

Each function states what a table says (which runs beat their trivial baselines, does pretraining beat the random
twin, ...) so that the notebooks only display it and the wording is tested with the numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurossl.evaluate.stats import bootstrap_mean


def learning_verdict(checks: pd.DataFrame) -> str:
    """Per objective: the checks it passes and fails beside their trivial baselines, from
    :func:`neurossl.analysis.heldout.learning_tables` (``objective, check, model, trivial,
    passed``)."""
    lines = []
    for objective, rows in checks.groupby("objective", sort=False):
        failed = rows.loc[~rows["passed"].astype(bool), "check"].tolist()
        state = "passes every check" if not failed else f"FAILS {', '.join(failed)}"
        detail = "; ".join(f"{r.check} {r.model:.3g} vs {r.trivial:.3g}" for r in rows.itertuples())
        lines.append(f"- **{objective}** {state} ({detail})")
    learned = sorted(set(checks["objective"]) - set(checks.loc[~checks["passed"].astype(bool), "objective"]))
    lines.append(f"\nLearned beyond the trivial baselines: {', '.join(learned) if learned else 'none'}.")
    return "\n".join(lines)


def paired_verdict(paired: pd.DataFrame, objectives: list[str]) -> str:
    """Per SSL encoder and mode: mean gain over the random twin and on how many tasks the 95%
    interval excludes zero either way; then the overall reading.

    Args:
        paired: :func:`neurossl.evaluate.report.paired_table` (``encoder, mode, diff, low, high``).
        objectives: the SSL encoders to describe (baselines are left out).
    """
    ssl = paired[paired["encoder"].isin(objectives)]
    lines = []
    for (encoder, mode), rows in ssl.groupby(["encoder", "mode"], sort=False):
        better, worse = int((rows["low"] > 0).sum()), int((rows["high"] < 0).sum())
        lines.append(
            f"- **{encoder}**, {mode}: mean gain {rows['diff'].mean():+.3f} AUC over {len(rows)} "
            f"task(s); the 95% interval excludes zero in favour of pretraining on {better}, "
            f"against it on {worse}, and includes zero on {len(rows) - better - worse}.")
    if not ((ssl["low"] > 0) | (ssl["high"] < 0)).any():
        verdict = ("No encoder separates from its random twin on any task: on this cohort the "
                   "evaluation cannot distinguish pretrained from random features.")
    else:
        verdict = ("Only the tasks whose interval excludes zero are evidence of a difference; the "
                   "rest are within the noise of the small test sets.")
    return "\n".join(lines) + f"\n\n{verdict}"


def nmi_summary(scores: pd.DataFrame, reference: str = "random") -> str:
    """Per dataset: the range of raw-space NMI over the SSL encoders, the best one and the
    ``reference`` (random twin), from the per-dataset clustering scores."""
    raw = scores[scores["space"] == "raw"].set_index(["dataset", "encoder"])["nmi"]
    lines = []
    for dataset, nmi in raw.groupby(level="dataset"):
        nmi = nmi.droplevel("dataset")
        ssl = nmi.drop(reference)
        lines.append(f"- **{dataset}**: raw-space NMI of the SSL encoders {ssl.min():.3f}–{ssl.max():.3f} "
                     f"(best `{ssl.idxmax()}`), random twin {nmi[reference]:.3f}.")
    return "\n".join(lines)


def hf_ordering(energy: pd.DataFrame, higher: str = "glioma", lower: str = "autism",
                modality: str = "T1w") -> str:
    """Whether ``higher`` has more high-frequency energy than ``lower`` on one contrast (the
    paper's ordering), by mean and median; empty when either dataset lacks such volumes."""
    same = energy[energy["modality"] == modality].groupby("dataset")["hf_energy"]
    stats = same.agg(["mean", "median", "size"])
    if not {higher, lower} <= set(stats.index):
        return ""
    h, lo = stats.loc[higher], stats.loc[lower]
    holds = h["mean"] > lo["mean"] and h["median"] > lo["median"]
    return (f"On {modality} volumes, {higher} has mean / median high-frequency energy "
            f"{h['mean']:.4f} / {h['median']:.4f} (n={int(h['size'])}) against {lower}'s "
            f"{lo['mean']:.4f} / {lo['median']:.4f} (n={int(lo['size'])}): the paper's ordering "
            f"{higher} > {lower} " + ("**holds** for the same contrast here." if holds else
                                     "**does not hold** here.")
            + " With so few volumes per group this is an observation, not a test.")


def reconstruction_hf_summary(hf: pd.DataFrame | None) -> str:
    """The high-frequency energy of each target and its MAE / SL-MAE mosaics (columns ``target,
    MAE, SL-MAE``) and on how many volumes SL-MAE's is the closer to the target's; without a
    comparison, why there is none."""
    if hf is None:
        return "Both `mae` and `slmae` must be in `objectives` for this comparison; skipped."
    closer = (hf["SL-MAE"] - hf["target"]).abs() < (hf["MAE"] - hf["target"]).abs()
    text = (f"{hf.to_markdown()}\n\nSL-MAE's mosaic is closer to the target's high-frequency "
            f"energy than MAE's on {int(closer.sum())} of {len(hf)} volumes.")
    return text + (f"\n\n{tubelet_hf_summary(hf)}" if "target_tubelets" in hf else "")


def tubelet_hf_summary(hf: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> str:
    """The masked tubelets' high-frequency energy (columns ``target_tubelets, MAE_tubelets,
    SL-MAE_tubelets``): means, SL-MAE minus MAE with a 95 % percentile bootstrap interval over
    volumes, and on how many volumes SL-MAE's is the closer to the target's."""
    t, a, b = (hf[f"{name}_tubelets"].to_numpy(float) for name in ("target", "MAE", "SL-MAE"))
    keep = ~np.isnan(t + a + b)
    t, a, b = t[keep], a[keep], b[keep]
    diff = b - a
    _, low, high = bootstrap_mean(diff, n_boot, seed)
    closer = int((np.abs(b - t) < np.abs(a - t)).sum())
    return (f"Inside the masked tubelets (each tapered by a Hann window, so no seam counts): target "
            f"{t.mean():.4f}, MAE {a.mean():.4f}, SL-MAE {b.mean():.4f}; SL-MAE minus MAE "
            f"{diff.mean():+.4f}, 95 % interval over the {len(diff)} volumes [{low:+.4f}, {high:+.4f}]; "
            f"SL-MAE's is the closer to the target's on {closer} of {len(diff)} volumes.")
