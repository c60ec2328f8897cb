"""The pipeline's stages as idempotent functions: cohort -> curation -> cache -> splits ->
pretrained(objective) -> evaluation -> paper.

Every entry point (``neurossl demo`` and the other subcommands, ``make demo``, the test fixtures,
the notebooks) calls these, so each stage is written once and every objective is trained with the
settings :func:`neurossl.config.load_config` resolves for it. A stage returns its output's path
and skips the work when that output exists and is complete; completeness is judged by an
artefact written last and atomically (``cohort.json`` marked complete, ``curation.csv``,
``cache/index.csv``, ``splits.json``, ``encoder.safetensors``, ``eval/`` renamed into place). A
stage whose input is missing raises :class:`MissingInput` naming that input and the stage that
makes it. ``run_missing=False`` turns "run what is missing" into the same clear error, for a
reader who only wants to look at existing outputs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neurossl.objectives import OBJECTIVES

# Fine-tuning is the costly part of the demo's evaluation on a CPU, so only two encoders are
# fine-tuned on the glioma task, and the paper's Table 7 four on NC vs AD's first fold (the
# fine-tuned half of Table 7 / Figure 4, read by notebook 04).
FINETUNE = ("slmae", "vcr_jepa")
FINETUNE_TASK = "glioma_grade2_vs_34"
TABLE7 = ("mae", "slmae", "jepa", "vcr_jepa")
TABLE7_TASK = "cognition_nc_vs_ad"


class MissingInput(FileNotFoundError):
    """A stage's input (or, with ``run_missing=False``, its output) does not exist."""


@dataclass(frozen=True)
class RunFolder:
    """Where each stage of one run folder writes (``runs/<profile>`` by default)."""

    root: Path
    splits: Path

    @classmethod
    def of(cls, run_dir: str | Path, splits_dir: str | Path | None = None) -> RunFolder:
        """``splits_dir`` defaults to ``<run_dir>/splits``."""
        run_dir = Path(run_dir)
        return cls(run_dir, Path(splits_dir) if splits_dir is not None else run_dir / "splits")

    @property
    def cohort(self) -> Path:
        return self.root / "cohort"

    @property
    def curation(self) -> Path:
        return self.root / "curation.csv"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def pretrain(self, objective: str) -> Path:
        return self.root / "pretrain" / objective


def _require(path: Path, made_by: str) -> None:
    """Raise :class:`MissingInput` naming ``path`` and the stage that makes it."""
    if not path.exists():
        raise MissingInput(f"{path} is missing: run the {made_by} stage first "
                           f"(neurossl.pipeline.{made_by}, or `neurossl demo`)")


def _refuse_to_run(output: Path, stage: str) -> None:
    """``run_missing=False``: a missing output is an error, not work to do."""
    raise MissingInput(f"{output} is missing and run_missing=False: run the {stage} stage "
                       f"(neurossl.pipeline.{stage}, or `neurossl demo`) or set run_missing=True")


def resolved_config(profile: str, objective: str | None = None, device: str | None = None,
            overrides: Sequence[str] = (), config_file: str | Path | None = None):
    """The resolved config; ``device`` overrides ``train.device`` unless None or ``auto``.

    ``auto`` keeps the profile's choice rather than writing ``auto`` over it, so a notebook's
    default ``device="auto"`` resolves to the same config as ``neurossl demo`` without one.
    """
    from neurossl.config import load_config

    extra = [f"train.device={device}"] if device not in (None, "auto") else []
    return load_config(profile, config_file, [*overrides, *extra], objective=objective)


def cohort(run_dir: str | Path, profile: str = "demo", run_missing: bool = True,
           progress: bool = True, workers: int = 1) -> Path:
    """The cohort folder ``<run_dir>/cohort`` (``scans.tsv`` and the NIfTI tree).

    The synthetic demo cohort is generated for the ``smoke`` and ``demo`` profiles, and reused
    when its ``cohort.json`` says it is complete and made with the same settings. The ``paper``
    profile never generates one: its cohort is the user's own data.
    """
    folder = RunFolder.of(run_dir).cohort
    if profile == "paper":
        if not (folder / "scans.tsv").is_file():
            raise MissingInput(f"{folder / 'scans.tsv'} is missing: with the paper profile put your "
                               f"own data (NIfTI tree + scans.tsv) in {folder}")
        return folder
    from neurossl.cohort.synth import generate_cohort, is_up_to_date

    cfg = resolved_config(profile)
    if not is_up_to_date(folder, cfg.cohort):
        if not run_missing:
            _refuse_to_run(folder / "cohort.json", "cohort")
        generate_cohort(folder, cfg.cohort, progress=progress, workers=workers)
    return folder


def curation(run_dir: str | Path, profile: str = "demo", run_missing: bool = True,
             progress: bool = True) -> Path:
    """The curation report ``<run_dir>/curation.csv`` (written atomically by ``write_report``)."""
    run = RunFolder.of(run_dir)
    if run.curation.is_file():
        return run.curation
    _require(run.cohort / "scans.tsv", "cohort")
    if not run_missing:
        _refuse_to_run(run.curation, "curation")
    from neurossl.data.curate import curate_directory

    curate_directory(run.cohort, resolved_config(profile).curation, run.curation, progress=progress)
    return run.curation


def cache(run_dir: str | Path, profile: str = "demo", run_missing: bool = True,
          progress: bool = True) -> Path:
    """The preprocessing cache ``<run_dir>/cache``; its ``index.csv`` is written last."""
    run = RunFolder.of(run_dir)
    if (run.cache / "index.csv").is_file():
        return run.cache
    _require(run.curation, "curation")
    if not run_missing:
        _refuse_to_run(run.cache / "index.csv", "cache")
    from neurossl.data.cache import build_cache
    from neurossl.data.catalog import scan_entries

    entries = scan_entries(run.cohort, run.curation, None)
    build_cache(entries, run.cohort, run.cache, resolved_config(profile).preprocess, progress=progress)
    return run.cache


def splits(run_dir: str | Path, splits_dir: str | Path | None = None, profile: str = "demo",
           run_missing: bool = True) -> Path:
    """The split folder (default ``<run_dir>/splits``); ``splits.json`` is written last."""
    from neurossl.splits.make import MANIFEST

    run = RunFolder.of(run_dir, splits_dir)
    if (run.splits / MANIFEST).is_file():
        return run.splits
    _require(run.cohort / "scans.tsv", "cohort")
    if not run_missing:
        _refuse_to_run(run.splits / MANIFEST, "splits")
    from neurossl.data.scans_table import read_scans_table
    from neurossl.splits.make import make_splits

    make_splits(read_scans_table(run.cohort / "scans.tsv"), run.splits, resolved_config(profile).splits)
    return run.splits


def data(run_dir: str | Path, splits_dir: str | Path | None = None, profile: str = "demo",
         run_missing: bool = True, progress: bool = True, workers: int = 1) -> RunFolder:
    """The four data stages in order; returns the run folder's layout."""
    cohort(run_dir, profile, run_missing, progress, workers)
    curation(run_dir, profile, run_missing, progress)
    cache(run_dir, profile, run_missing, progress)
    splits(run_dir, splits_dir, profile, run_missing)
    return RunFolder.of(run_dir, splits_dir)


def pretrained(objective: str, run_dir: str | Path, splits_dir: str | Path | None = None,
               profile: str = "demo", device: str | None = None, overrides: Sequence[str] = (),
               run_missing: bool = True, pretrain_dir: str | Path | None = None,
               config_file: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """The pretraining run folder of ``objective`` (default ``<run_dir>/pretrain/<objective>``).

    Its settings are ``load_config(profile, config_file, overrides, objective=objective)`` (and
    ``device``); the run folder keeps them resolved in ``config.yaml``. A run with
    ``encoder.safetensors`` (exported last, atomically) is done; an interrupted one resumes from
    its newest checkpoint. ``cache_dir`` defaults to ``<run_dir>/cache``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    run = RunFolder.of(run_dir, splits_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else run.cache
    folder = Path(pretrain_dir) if pretrain_dir is not None else run.pretrain(objective)
    if (folder / "encoder.safetensors").is_file():
        return folder
    _require(cache_dir / "index.csv", "cache")
    _require(run.splits, "splits")
    if not run_missing:
        _refuse_to_run(folder / "encoder.safetensors", "pretrained")
    from neurossl.train.pretrain import pretrain

    cfg = resolved_config(profile, objective, device, overrides, config_file)
    # resume=True is a no-op without a checkpoint, so a fresh run and an interrupted one take
    # the same call.
    pretrain(cfg, cache_dir, run.splits, folder, resume=True)
    return folder


def pretrained_all(objectives: Sequence[str], run_dir: str | Path, splits_dir: str | Path | None = None,
                   profile: str = "demo", device: str | None = None,
                   run_missing: bool = True) -> dict[str, Path]:
    """:func:`pretrained` for each objective in order: objective -> run folder."""
    return {name: pretrained(name, run_dir, splits_dir, profile, device, run_missing=run_missing)
            for name in objectives}


def evaluation(run_dir: str | Path, splits_dir: str | Path | None = None, profile: str = "demo",
               objectives: Sequence[str] = tuple(OBJECTIVES), device: str | None = None,
               finetune: Sequence[str] = FINETUNE, table7: Sequence[str] = TABLE7,
               baselines: Sequence[str] = ("random", "resnet50"), run_missing: bool = True) -> Path:
    """The evaluation folder ``<run_dir>/eval`` (``results.csv``, ``predictions/``, ``finetuned/``).

    Frozen probes of every encoder and the ``baselines`` (its random twin, ResNet50-3D from
    scratch) on every task and the few-shot curves; frozen probes of the
    ``evaluate.contrast_objectives`` encoders and their own random twin on each of
    ``evaluate.contrast_tasks`` (one contrast of a task); fine-tuning of the ``finetune`` encoders on
    :data:`FINETUNE_TASK` and of the ``table7`` encoders on :data:`TABLE7_TASK`'s first fold. It
    is written to ``eval.tmp`` and renamed to ``eval`` at the end, so an ``eval/`` folder with a
    ``results.csv`` is complete.
    """
    run = RunFolder.of(run_dir, splits_dir)
    if (run.eval / "results.csv").is_file():
        return run.eval
    encoders = [run.pretrain(name) for name in objectives]
    for folder in encoders:
        _require(folder / "encoder.safetensors", "pretrained")
    if not run_missing:
        _refuse_to_run(run.eval / "results.csv", "evaluation")
    from neurossl.evaluate.runner import evaluate_all

    scratch = run.root / "eval.tmp"
    shutil.rmtree(scratch, ignore_errors=True)  # an interrupted evaluation starts over
    cfg = resolved_config(profile, device=device)
    common = {"cache_dir": run.cache, "splits_dir": run.splits, "out_dir": scratch}
    evaluate_all(cfg, encoders, list(baselines), [], "frozen", fewshot=True, **common)
    chosen = [run.pretrain(name) for name in objectives if name in cfg.evaluate.contrast_objectives]
    if chosen and cfg.evaluate.contrast_tasks:
        # the random twin copies the first of these encoders (a modality embedding included)
        evaluate_all(cfg, chosen, ["random"], list(cfg.evaluate.contrast_tasks), "frozen", **common)
    chosen = [run.pretrain(name) for name in objectives if name in finetune]
    if chosen:
        evaluate_all(cfg, chosen, ["random"], [FINETUNE_TASK], "finetune", **common)
    chosen = [run.pretrain(name) for name in objectives if name in table7]
    if chosen:
        first_fold = resolved_config(profile, device=device, overrides=["evaluate.max_folds=1"])
        evaluate_all(first_fold, chosen, ["random"], [TABLE7_TASK], "finetune", **common)
    shutil.rmtree(run.eval, ignore_errors=True)  # without results.csv it is some older, partial run
    os.replace(scratch, run.eval)
    return run.eval


def paper(run_dir: str | Path, splits_dir: str | Path | None = None, profile: str = "demo",
          out_dir: str | Path = "paper", objectives: Sequence[str] | None = None,
          device: str = "auto", notebooks: Sequence[str] | None = None,
          progress: bool = True) -> list[Path]:
    """The notebooks, executed with papermill: figures and tables under ``out_dir``.

    Always re-executed (they only read the stages' outputs and plot, which is cheap); each
    notebook calls the stages it shows, so on a fresh folder they run the missing ones with the
    same settings as :func:`demo`. Returns the executed copies' paths.
    """
    from neurossl.paper import run_notebooks

    run = RunFolder.of(run_dir, splits_dir)
    return run_notebooks(profile, run.root, out_dir, run.splits, notebooks=notebooks,
                         device=device, objectives=objectives, progress=progress)


STAGES = ("data", "pretrained", "evaluation", "paper")


def demo(run_dir: str | Path, splits_dir: str | Path | None = None, profile: str = "demo",
         out_dir: str | Path = "paper", objectives: Sequence[str] = tuple(OBJECTIVES),
         device: str | None = None, progress: bool = True, workers: int = 1,
         until: str = "paper") -> RunFolder:
    """Every stage in order on the demo cohort, up to and including ``until`` (one of
    :data:`STAGES`); returns the run folder's layout."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {', '.join(STAGES)}; got {until!r}")
    run = data(run_dir, splits_dir, profile, progress=progress, workers=workers)
    if until == "data":
        return run
    pretrained_all(objectives, run_dir, splits_dir, profile, device)
    if until == "pretrained":
        return run
    evaluation(run_dir, splits_dir, profile, objectives, device)
    if until == "paper":
        paper(run_dir, splits_dir, profile, out_dir, list(objectives), device or "auto",
              progress=progress)
    return run
