"""`lineside dataset`: check, split and import YOLO-layout datasets; thin layer over training.datasets.

Exit codes: 0 done, 1 the dataset has errors (check, import-voc), 2 bad input (one line naming the file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from edge.errors import LinesideError
from edge.i18n import say

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_BAD_INPUT = 2
PROGRESS_EVERY = 250  # images between progress lines on stderr


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `dataset`: an engineer's command; only its line in `lineside --help` is said in `lang`."""
    parser = subparsers.add_parser(
        "dataset",
        help=say("help.dataset", lang),
        description="Check, split and import YOLO-layout datasets (data.yaml, images/SPLIT, labels/SPLIT).",
    )
    actions = parser.add_subparsers(dest="dataset_action", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="validate a dataset and summarise it (exit 1 on errors)")
    check.add_argument("dir", type=Path, help="dataset folder holding data.yaml")
    check.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    check.add_argument("--plots", type=Path, metavar="DIR", help="write class_balance.png and box_sizes.png")
    check.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    check.set_defaults(handler=_check)

    split = actions.add_parser("split", help="leak-free split grouped by source unit, stratified")
    split.add_argument("dir", type=Path, help="dataset folder holding data.yaml (all its splits are pooled)")
    split.add_argument("--out", type=Path, required=True, help="new dataset folder to write")
    unit = split.add_mutually_exclusive_group(required=True)
    unit.add_argument("--by", metavar="COLUMN", help="source-unit column of the parts CSV (e.g. board_group)")
    unit.add_argument("--pattern", metavar="REGEX", help="unit from the file name: group 'unit', or group 1")
    split.add_argument("--parts", type=Path, help="parts CSV with an 'image' column (default DIR/parts.csv)")
    split.add_argument("--val", type=float, default=0.2, help="fraction of images for val (default 0.2)")
    split.add_argument("--test", type=float, default=0.0, help="fraction of images for test (default none)")
    split.add_argument("--seed", type=int, default=0, help="seed of the unit order (default 0)")
    split.add_argument("--copy", action="store_true", help="copy files instead of hard-linking them")
    split.set_defaults(handler=_split)

    voc = actions.add_parser("import-voc", help="Pascal VOC (Annotations/*.xml, JPEGImages/) to YOLO")
    voc.add_argument("voc_dir", type=Path, help="VOC folder holding Annotations/ and JPEGImages/")
    voc.add_argument("--out", type=Path, required=True, help="new dataset folder to write")
    voc.add_argument("--classes", help="comma-separated class order (others are skipped and counted)")
    voc.add_argument("--skip-difficult", action="store_true", help="leave out objects marked difficult")
    voc.set_defaults(handler=_import_voc)

    rec = actions.add_parser("import-records", help="export the line's hard cases (with pre-labels)")
    where = rec.add_mutually_exclusive_group(required=True)
    where.add_argument("--records", type=Path, metavar="DIR", help="records folder (holds records.db)")
    where.add_argument("--config", type=Path, help="appliance config file; its records folder is read")
    rec.add_argument("--out", type=Path, required=True, help="new dataset folder to write")
    rec.add_argument("--since", help="from this trigger time (ISO, 'now', or relative like -2d)")
    rec.add_argument("--until", help="up to this trigger time, exclusive")
    rec.add_argument("--rejected", action="store_true", help="rejected parts")
    rec.add_argument("--near-threshold", action="store_true", help="parts decided near a threshold")
    rec.add_argument("--marked", action="store_true", help="parts an operator marked (lineside records mark)")
    rec.set_defaults(handler=_import_records)


def _fail(exc: Exception, err: TextIO) -> int:
    print(f"lineside dataset: {exc}", file=err)
    return EXIT_BAD_INPUT


def run_check(
    root: Path, *, as_json: bool = False, plots: Path | None = None, quiet: bool = False,
    stdout: TextIO | None = None, stderr: TextIO | None = None,
) -> int:  # fmt: skip
    """The check command: report on stdout, progress on stderr; exit 1 when the dataset has errors."""
    from training.datasets.check import check_dataset, render_text

    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if not quiet and (done % PROGRESS_EVERY == 0 or done == total):
            rate = done / max(time.monotonic() - started, 1e-6)
            print(f"checked {done}/{total} images ({rate:.0f}/s)", file=err, flush=True)

    try:
        report = check_dataset(root, progress=progress)
        if plots is not None:
            from training.datasets.plots import write_plots

            for path in write_plots(report, plots):
                print(f"wrote {path}", file=err)
    except (LinesideError, OSError) as exc:
        return _fail(exc, err)
    out.write(json.dumps(report.to_json(), indent=2) + "\n" if as_json else render_text(report))
    return EXIT_ERRORS if report.errors else EXIT_OK


def _check(args: argparse.Namespace) -> int:
    return run_check(args.dir, as_json=args.json, plots=args.plots, quiet=args.quiet)


def _split(args: argparse.Namespace) -> int:
    from training.datasets.split import split_dataset

    try:
        result = split_dataset(
            args.dir, args.out, column=args.by, pattern=args.pattern, parts_csv=args.parts,
            val=args.val, test=args.test, seed=args.seed, copy=args.copy,
        )  # fmt: skip
    except (LinesideError, OSError) as exc:
        return _fail(exc, sys.stderr)
    for split, c in result.counts.items():
        parts = f"{c['good']} good, {c['defective']} defective"
        print(f"{split}: {c['units']} units, {c['images']} images ({parts})")
    for warning in result.warnings:
        print(f"WARNING {warning}", file=sys.stderr)
    print(f"wrote {result.out} (data.yaml, split_manifest.csv); no unit is in two splits")
    return EXIT_OK


def _import_voc(args: argparse.Namespace) -> int:
    from training.datasets.voc import VocImportError, import_voc

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip()) if args.classes else None
    try:
        result = import_voc(args.voc_dir, args.out, classes, skip_difficult=args.skip_difficult)
    except VocImportError as exc:
        for problem in exc.problems:
            print(f"ERROR {problem}", file=sys.stderr)
        print(f"lineside dataset: {len(exc.problems)} VOC file(s) unusable; nothing written", file=sys.stderr)
        return EXIT_ERRORS
    except (LinesideError, OSError) as exc:
        return _fail(exc, sys.stderr)
    for name, count in result.skipped_objects.items():
        print(f"WARNING skipped {count} object(s) of class {name!r} (not in --classes)", file=sys.stderr)
    print(f"wrote {result.out}: images {result.images}, {result.boxes} boxes, classes {list(result.names)}")
    return EXIT_OK


def _import_records(args: argparse.Namespace) -> int:
    from lineside.commands.timearg import parse_window
    from training.datasets.records_import import import_records

    any_chosen = args.rejected or args.near_threshold or args.marked
    try:
        if args.records is not None:
            records_dir: Path = args.records
        else:
            from edge.station.config import load_config

            records_dir = load_config(args.config).records.dir
        since, until = parse_window(args.since, args.until, time.time())
        result = import_records(
            records_dir,
            args.out,
            since=since,
            until=until,
            rejected=args.rejected or not any_chosen,  # none named: all three
            near_threshold=args.near_threshold or not any_chosen,
            marked=args.marked or not any_chosen,
        )
    except (LinesideError, OSError) as exc:
        return _fail(exc, sys.stderr)
    print(
        f"wrote {result.out}: {result.selected} record(s) chosen, {result.exported} with images "
        f"(pre-labels in labels/train), {result.without_image} without an image; see selection.csv"
    )
    return EXIT_OK
