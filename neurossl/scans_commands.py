"""``neurossl scans ...`` and the coverage guard of ``pretrain`` / ``evaluate``.

Kept apart from :mod:`neurossl.cli` so that the parser there only gains one subcommand group
and four flags. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MIN_COVERAGE = 0.9


def _add_label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=Path, help="label table (CSV, or .tsv) joined to the scans")
    p.add_argument("--on", action="append", default=[], metavar="SCANS_COLUMN=TABLE_COLUMN",
                   help="join key, repeatable: --on scan_uid=IMAGEUID, or --on subject_id=PTID "
                        "--on session=VISCODE")
    p.add_argument("--label", metavar="COLUMN",
                   help="label column of --labels (or, for bids without --labels, of participants.tsv)")
    p.add_argument("--age", metavar="COLUMN", help="age column of --labels")
    p.add_argument("--map", action="append", default=[], metavar="VALUE=CLASS",
                   help="label value -> class (NC MCI AD G2 G3 G4 TD ASD), repeatable; "
                        "VALUE= makes it unlabelled; every value found must be mapped")
    p.add_argument("--out", type=Path, help="where to write the table (default ROOT/scans.tsv)")


def add_scans_commands(sub: argparse._SubParsersAction) -> None:
    """The ``scans`` subcommand group."""
    p = sub.add_parser("scans", help="build, check and cover the scans table (scans.tsv)")
    scans = p.add_subparsers(dest="scans_command", required=True, metavar="ACTION")
    q = scans.add_parser("columns", help="print the scans table's columns, types and allowed values")
    q.set_defaults(func=cmd_columns)
    q = scans.add_parser("check", help="validate a scans table against the contract")
    q.add_argument("table", type=Path)
    q.set_defaults(func=cmd_check)
    q = scans.add_parser("bids", help="build scans.tsv from a BIDS tree")
    q.add_argument("root", type=Path, help="BIDS root (participants.tsv, sub-*/...)")
    q.add_argument("--dataset", required=True, help="dataset name, the split files' prefix (oasis3)")
    _add_label_options(q)
    q.set_defaults(func=cmd_bids)
    q = scans.add_parser("pattern", help="build scans.tsv from a folder and a file-name pattern")
    q.add_argument("root", type=Path, help="folder searched recursively for NIfTI files")
    q.add_argument("--pattern",
                   help="regex searched in each relative path, with groups (?P<scan_uid>...) and "
                        "(?P<subject_id>...), optional session / modality (default: ADNI's "
                        "..._002_S_0295_..._I118671.nii)")
    q.add_argument("--dataset", required=True, help="dataset name, the split files' prefix (adni)")
    q.add_argument("--modality", default="T1w",
                   help="modality of every file when neither a modality group nor --contrast is given")
    q.add_argument("--contrast", action="append", default=[], metavar="KEYWORD=MODALITY",
                   help="modality from a keyword of the file name, first match wins, repeatable: "
                        "--contrast FLAIR=FLAIR --contrast T2=T2w --contrast MPRAGE=T1w; "
                        "files matching none are reported")
    _add_label_options(q)
    q.set_defaults(func=cmd_pattern)
    q = scans.add_parser("coverage", help="per split file: scans named / on disk / kept / cached")
    q.add_argument("--splits", type=Path, required=True, help="split folder (released format)")
    q.add_argument("--cache", type=Path, required=True, help="preprocessing cache folder")
    q.add_argument("--dataset", action="append", default=[], help="only these datasets' files")
    add_coverage_options(q, required=True)
    q.add_argument("--out", type=Path, help="folder for coverage.csv and coverage_missing.csv")
    q.set_defaults(func=cmd_coverage)


def add_coverage_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    """``--scans``, ``--data-root``, ``--curation``, ``--min-coverage`` (pretrain, evaluate)."""
    p.add_argument("--scans", type=Path, required=required,
                   help="your scans table: enables the coverage report and the --min-coverage guard")
    p.add_argument("--data-root", type=Path,
                   help="folder the table's paths are relative to (default: the table's folder)")
    p.add_argument("--curation", type=Path, dest="coverage_curation",
                   help="curation report, to count the scans curation kept")
    p.add_argument("--min-coverage", type=float, default=DEFAULT_MIN_COVERAGE,
                   help=f"refuse to start when a split file used has a smaller fraction of its scans "
                        f"cached (default {DEFAULT_MIN_COVERAGE})")


def cmd_columns(args: argparse.Namespace) -> int:
    from neurossl.data.scans_table import describe_columns

    print(describe_columns())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from neurossl.data.scans_table import read_scans_table

    table = read_scans_table(args.table)
    print(f"{args.table}: {len(table)} scans of {table['subject_id'].nunique()} subjects; "
          "the table meets the contract")
    return 0


def _finish(result, args: argparse.Namespace) -> int:
    """Join the label table when given, write the table and the unmatched list, print counts."""
    from neurossl.data.scans_build import format_build, write_build
    from neurossl.data.scans_labels import LabelSpec, join_labels, parse_pairs

    if args.labels is not None:
        if not args.on or not args.label:
            raise ValueError("--labels needs --on (the join key) and --label (its label column)")
        spec = LabelSpec(args.labels, parse_pairs(args.on, "--on"), args.label,
                         parse_pairs(args.map, "--map"), args.age)
        result = join_labels(result, spec)
    table, unmatched = write_build(result, args.out or args.root / "scans.tsv")
    print(format_build(result))
    print(f"scans table: {table}\nnot matched: {unmatched}")
    return 0


def cmd_bids(args: argparse.Namespace) -> int:
    from neurossl.data.scans_bids import scans_from_bids
    from neurossl.data.scans_labels import parse_pairs

    own_labels = args.label if args.labels is None else None
    mapping = dict(parse_pairs(args.map, "--map")) if own_labels and args.map else None
    return _finish(scans_from_bids(args.root, args.dataset, own_labels, mapping), args)


def cmd_pattern(args: argparse.Namespace) -> int:
    from neurossl.data.scans_labels import parse_pairs
    from neurossl.data.scans_pattern import ADNI_PATTERN, scans_from_pattern

    contrasts = parse_pairs(args.contrast, "--contrast")
    result = scans_from_pattern(args.root, args.pattern or ADNI_PATTERN, args.dataset, args.modality, contrasts)
    return _finish(result, args)


def cmd_coverage(args: argparse.Namespace) -> int:
    def select(splits):
        return splits[splits["dataset"].isin(args.dataset)] if args.dataset else splits

    guard_coverage(args, args.splits, args.cache, select, args.out)
    return 0


def guard_coverage(args: argparse.Namespace, splits_dir: Path, cache_dir: Path, select,
                   out_dir: Path | None, check: bool = True):
    """Print (and write to ``out_dir``) the coverage of the split files ``select`` picks; refuse
    (:class:`~neurossl.data.coverage.CoverageError`) below ``--min-coverage`` when ``check``.
    Returns the :class:`~neurossl.data.coverage.Coverage`, or None without ``--scans``."""
    if args.scans is None:
        return None
    from neurossl.data.coverage import check_coverage, format_coverage, split_coverage, write_coverage

    coverage = split_coverage(splits_dir, args.scans, cache_dir, args.coverage_curation,
                              args.data_root, select)
    print(f"coverage of {splits_dir} by {args.scans}:")
    print(format_coverage(coverage))
    if out_dir is not None:
        report, _ = write_coverage(coverage, out_dir)
        print(f"coverage report: {report}")
    if check:
        check_coverage(coverage, args.min_coverage)
    return coverage
