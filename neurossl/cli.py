"""The ``neurossl`` command line: one argparse entry point; each subcommand calls one stage.

Stages are explicit and restartable (curate -> preprocess -> split -> pretrain -> evaluate ...):
each reads the folder the previous one wrote. Heavy imports happen inside the handlers so that
``neurossl --help`` answers instantly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from neurossl import __version__
from neurossl.objectives import OBJECTIVES  # the registry: objective names in one place
from neurossl.scans_commands import add_coverage_options, add_scans_commands, guard_coverage

OBJECTIVE_NAMES = tuple(OBJECTIVES)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default="demo", choices=["smoke", "demo", "paper"],
        help="named settings: smoke (tests), demo (CPU, demo cohort), paper (GPU, real data)",
    )
    parser.add_argument("--config", type=Path, help="YAML file layered on top of the profile")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set preprocess.crop_size=96 (repeatable)",
    )


def _config(args: argparse.Namespace, objective: str | None = None):
    from neurossl.config import load_config

    return load_config(args.profile, args.config, args.overrides, objective=objective)


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Generate the synthetic demo cohort from the MNI template shipped with nilearn."""
    from neurossl.cohort.synth import generate_cohort

    cfg = _config(args)
    if args.seed is not None:
        cfg.cohort.seed = args.seed
    if args.subjects is not None:
        cfg.cohort.subjects = args.subjects
    scans = generate_cohort(args.out, cfg.cohort, progress=not args.quiet, workers=args.workers)
    print(f"demo cohort in {args.out}: {scans['subject_id'].nunique()} subjects, {len(scans)} scans")
    print(scans.groupby(["dataset", "modality"]).size().unstack(fill_value=0).to_string())
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    """Apply the official curation filters; one report row per file."""
    cfg = _config(args)
    from neurossl.data.curate import curate_directory, summarize_report

    report = curate_directory(args.root, cfg.curation, args.report, progress=not args.quiet)
    print(summarize_report(report))
    print(f"report: {args.report}")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    """Run the deterministic preprocessing once and store it in the cache."""
    from neurossl.data.cache import build_cache
    from neurossl.data.catalog import scan_entries

    cfg = _config(args)
    entries = scan_entries(args.root, args.curation, args.scans)
    index = build_cache(entries, args.root, args.cache, cfg.preprocess, progress=not args.quiet)
    print(f"cache {args.cache}: {len(index)} volumes ready")
    return 0


def cmd_splits_make(args: argparse.Namespace) -> int:
    """Write the paper's subject-level split protocol for the demo datasets."""
    from neurossl.data.scans_table import read_scans_table
    from neurossl.splits.make import make_splits

    cfg = _config(args)
    scans = read_scans_table(args.scans)
    files = make_splits(scans, args.out, cfg.splits)
    print(f"{len(files)} split files written to {args.out}")
    return 0


def cmd_splits_audit(args: argparse.Namespace) -> int:
    """Count subjects / scans per partition and check for subject leakage."""
    from neurossl.splits.audit import audit_splits, format_audit

    result = audit_splits(args.dir)
    print(format_audit(result))
    return 1 if result.leaks else 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pretrain one objective on the cached pretraining split; export the encoder.

    The pipeline's ``pretrained`` stage: a finished run (its exported encoder) is kept, an
    interrupted one resumes from its newest checkpoint.
    """
    from neurossl import pipeline
    from neurossl.data.coverage import pretrain_files

    cfg = _config(args, objective=args.objective)
    run_dir = args.run_dir or Path("runs") / cfg.profile / "pretrain" / args.objective
    guard_coverage(args, args.splits, args.cache, lambda s: pretrain_files(s, cfg.train.datasets), run_dir)
    folder = pipeline.pretrained(args.objective, run_dir.parent, args.splits, args.profile,
                                 overrides=args.overrides, pretrain_dir=run_dir,
                                 config_file=args.config, cache_dir=args.cache)
    print(f"encoder: {folder / 'encoder.safetensors'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Probe / fine-tune encoders (and baselines) on downstream tasks; append tidy results."""
    cfg = _config(args)
    from neurossl.data.coverage import task_files
    from neurossl.evaluate.runner import evaluate_all
    from neurossl.tasks import get_task

    tasks = [get_task(name) for name in args.task or cfg.evaluate.tasks]
    keys = [(task.dataset, task.split_task) for task in tasks]
    coverage = guard_coverage(args, args.splits, args.cache, lambda s: task_files(s, keys), args.out)
    written = evaluate_all(cfg, args.encoder, args.baseline, args.task, args.mode, args.cache,
                           args.splits, args.out, fewshot=args.fewshot,
                           usable=coverage.usable if coverage is not None else None)
    print(f"results appended to {written[0]}; predictions to {written[1]}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render evaluation results as the paper's tables with confidence intervals."""
    cfg = _config(args)
    from neurossl.evaluate.report import write_report

    for path in write_report(args.results, args.out, cfg.evaluate.bootstrap):
        print(path)
    return 0


def cmd_paper(args: argparse.Namespace) -> int:
    """Execute the notebooks with papermill: regenerate the paper's figures and tables."""
    from neurossl import pipeline
    from neurossl.paper import NotebookError

    data = args.data or Path("runs") / args.profile
    splits = args.splits or Path("splits") / args.profile
    try:
        executed = pipeline.paper(data, splits, args.profile, args.out, args.objective,
                                  args.device, args.notebook)
    except NotebookError as exc:
        print(f"neurossl paper: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(executed)} notebook(s) executed into {executed[0].parent}; "
          f"figures and tables in {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Every stage on the demo cohort: data, pretraining, evaluation, notebooks, summary."""
    from neurossl import pipeline
    from neurossl.headlines import headline_summary
    from neurossl.paper import NotebookError
    from neurossl.summary import summarize_run

    run_dir = args.run_dir or Path("runs") / args.profile
    splits = args.splits or Path("splits") / args.profile
    try:
        pipeline.demo(run_dir, splits, args.profile, args.out, args.objective or list(OBJECTIVE_NAMES),
                      None if args.device == "auto" else args.device, progress=not args.quiet,
                      workers=args.workers, until=args.until)
    except NotebookError as exc:
        print(f"neurossl demo: error: {exc}", file=sys.stderr)
        return 2
    print(summarize_run(run_dir, splits))
    if args.until == "paper":
        print(headline_summary(Path(args.out) / "tables"))
    return 0


def cmd_objectives(args: argparse.Namespace) -> int:
    """The registry's objective names (the Makefile reads its list from here)."""
    print("\n".join(OBJECTIVE_NAMES))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print what the data stages of a run folder hold."""
    from neurossl.summary import summarize_run

    print(summarize_run(args.run_dir, args.splits))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the tests to check every ``--help``)."""

    parser = argparse.ArgumentParser(
        prog="neurossl",
        description="Self-supervised foundation models for 3-D brain imaging.",
    )
    parser.add_argument("--version", action="version", version=f"neurossl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-data", help="generate the synthetic demo cohort (real MNI anatomy)")
    p.add_argument("--out", type=Path, required=True, help="folder for the NIfTI tree and tables")
    p.add_argument("--seed", type=int, help="random seed (default: the profile's)")
    p.add_argument("--subjects", type=int, help="number of subjects over all datasets")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="parallel processes (the output is identical for any number)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_options(p)
    p.set_defaults(func=cmd_demo_data)

    p = sub.add_parser("curate", help="apply the curation filters, write a per-file report")
    p.add_argument("root", type=Path, help="folder searched recursively for NIfTI files")
    p.add_argument("--report", type=Path, default=Path("curation.csv"), help="report CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_options(p)
    p.set_defaults(func=cmd_curate)

    p = sub.add_parser("preprocess", help="preprocess kept scans once into the cache")
    p.add_argument("root", type=Path, help="data folder (with scans.tsv for the demo cohort)")
    p.add_argument("--curation", type=Path, help="curation report: only kept files are cached")
    p.add_argument("--cache", type=Path, required=True, help="cache folder")
    p.add_argument("--scans", type=Path, help="scans table (default: ROOT/scans.tsv when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_options(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("splits", help="make or audit subject-level splits")
    splits = p.add_subparsers(dest="splits_command", required=True, metavar="ACTION")
    q = splits.add_parser("make", help="write the paper's split protocol for a scans table")
    q.add_argument("--scans", type=Path, required=True, help="scans.tsv of the cohort")
    q.add_argument("--out", type=Path, required=True, help="folder for the split CSVs")
    _add_config_options(q)
    q.set_defaults(func=cmd_splits_make)
    q = splits.add_parser("audit", help="count subjects / scans and detect subject leakage")
    q.add_argument("dir", type=Path, help="folder of split CSVs (subject_id,scan_uid)")
    q.set_defaults(func=cmd_splits_audit)

    p = sub.add_parser("pretrain", help="self-supervised pretraining of one objective")
    p.add_argument("--objective", required=True, choices=OBJECTIVE_NAMES,
                   help="the profile's settings for it are layered in (neurossl/profiles/<profile>/objectives.yaml)")
    p.add_argument("--cache", type=Path, required=True, help="preprocessing cache folder")
    p.add_argument("--splits", type=Path, required=True, help="split folder (pretrain partitions)")
    p.add_argument("--run-dir", type=Path, help="default: runs/<profile>/pretrain/<objective>")
    p.add_argument("--resume", action="store_true",
                   help="kept for old scripts: an interrupted run always resumes from its newest checkpoint")
    add_coverage_options(p)
    _add_config_options(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("evaluate", help="downstream probes / fine-tuning / baselines, 5-fold CV")
    p.add_argument("--encoder", action="append", default=[], type=Path, metavar="RUN_OR_FILE",
                   help="pretraining run folder or encoder .safetensors (repeatable)")
    p.add_argument("--baseline", action="append", default=[], choices=["random", "resnet50", "voxels"],
                   help="random: the first encoder's architecture with random weights; "
                        "resnet50: MONAI ResNet50-3D from scratch; voxels: logistic regression "
                        "on pooled intensities and their quantiles, the does-the-signal-exist check (repeatable)")
    p.add_argument("--task", action="append", default=[], metavar="NAME",
                   help="task name (repeatable; default: the profile's evaluate.tasks)")
    p.add_argument("--mode", default="frozen", choices=["frozen", "finetune", "both"])
    p.add_argument("--fewshot", action="store_true",
                   help="also run the few-shot curves (evaluate.fewshot_* settings)")
    p.add_argument("--cache", type=Path, required=True, help="preprocessing cache folder")
    p.add_argument("--splits", type=Path, required=True, help="split folder (downstream files)")
    p.add_argument("--out", type=Path, required=True,
                   help="folder whose results.csv / predictions.csv are appended to")
    add_coverage_options(p)
    _add_config_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="paper tables (Markdown, LaTeX, CSV) with bootstrap CIs")
    p.add_argument("--results", type=Path, required=True, help="folder written by `evaluate`")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables")
    _add_config_options(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("paper", help="run the notebooks (papermill): paper figures and tables")
    p.add_argument("--profile", default="demo", choices=["smoke", "demo", "paper"],
                   help="settings the notebooks load (default demo)")
    p.add_argument("--data", type=Path, help="run folder (default: runs/<profile>)")
    p.add_argument("--out", type=Path, default=Path("paper"),
                   help="folder for figures/ and tables/ (default: paper)")
    p.add_argument("--splits", type=Path, help="split folder (default: splits/<profile>)")
    p.add_argument("--notebook", action="append", metavar="NAME",
                   help="run only this notebook, e.g. 02 or 02_pretraining (repeatable)")
    p.add_argument("--objective", action="append", choices=OBJECTIVE_NAMES,
                   help="pretraining objectives to run and show (repeatable; default: all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("demo", help="every stage on the demo cohort: data, pretraining, "
                                    "evaluation, the notebooks (finished stages are skipped)")
    p.add_argument("--profile", default="demo", choices=["smoke", "demo", "paper"])
    p.add_argument("--run-dir", type=Path, help="run folder (default: runs/<profile>)")
    p.add_argument("--splits", type=Path, help="split folder (default: splits/<profile>)")
    p.add_argument("--out", type=Path, default=Path("paper"),
                   help="folder for figures/ and tables/ (default: paper)")
    p.add_argument("--objective", action="append", choices=OBJECTIVE_NAMES,
                   help="objectives to pretrain, evaluate and show (repeatable; default: all)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes generating the demo cohort")
    p.add_argument("--until", default="paper", choices=["data", "pretrained", "evaluation", "paper"],
                   help="the last stage to run (default: all of them)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("objectives", help="print the registered objectives, one per line")
    p.set_defaults(func=cmd_objectives)

    p = sub.add_parser("summary", help="summarise the data stages of a run folder")
    p.add_argument("run_dir", type=Path, help="run folder (cohort/, curation.csv, cache/)")
    p.add_argument("--splits", type=Path, help="split folder to audit")
    p.set_defaults(func=cmd_summary)

    add_scans_commands(sub)
    return parser


def subcommand_paths(parser: argparse.ArgumentParser | None = None) -> list[list[str]]:
    """Every runnable subcommand path, e.g. ``[["curate"], ["splits", "audit"]]``."""
    parser = parser or build_parser()
    paths: list[list[str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                nested = subcommand_paths(child)
                paths.extend([[name, *rest] for rest in nested] or [[name]])
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``neurossl`` console script; returns the exit status."""
    from neurossl.config import ConfigError
    from neurossl.data.io import VolumeError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, VolumeError, OSError, ValueError) as exc:
        print(f"neurossl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
