"""`lineside soak`: the demo line under `lineside run --trigger robot` with the robot program in the loop
for N minutes, faults injected at seeded moments; per-window parts, verdicts and latency, memory and
open files over time, records disk use against the quota, and the fault table."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.errors import LinesideError
from edge.i18n import say
from edge.robotlink.robotrules import RobotSettings
from lineside.demo import demo_model_dir, demo_parts_dir
from lineside.soak.accounting import account, fault_rows, window_figures, windows
from lineside.soak.campaign import CampaignResult, FaultCampaign, PartSeen, Schedule, copy_parts
from lineside.soak.faults import Fault, catalogue
from lineside.soak.metrics import growth
from lineside.soak.report import render_table
from lineside.soak.station import read_truth, write_station

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
QUOTA_MB = 20.0

EXAMPLES = """examples:
  lineside soak --minutes 30                    all faults, seeded, every part judged against the truth
  lineside soak --minutes 5 --faults none       steady state only: latency, memory, open files
  lineside soak --minutes 10 --faults kill-inference,camera-lost --rate 10 --json
faults: """ + ", ".join(catalogue())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `soak`: an engineer's command; only its line in `lineside --help` is said in `lang`."""
    p = subparsers.add_parser(
        "soak",
        help=say("help.soak", lang),
        description="Long-run reliability: wrong accepts, lost records, recovery, latency, RSS, fds.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--minutes", type=float, required=True, help="how long to run")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault schedule (default 1)")
    p.add_argument("--rate", type=float, default=0.0, help="parts per second at most (0: as fast as it goes)")
    p.add_argument("--faults", default="all", help="all, none, or a comma-separated list (see below)")
    p.add_argument("--gap-s", type=float, default=30.0, help="mean seconds between faults (default 30)")
    p.add_argument("--window-min", type=float, default=5.0, help="report window in minutes (default 5)")
    p.add_argument("--workdir", type=Path, help="keep the station, records and run.log here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(handler=handle)


def pick_faults(text: str) -> list[Fault]:
    known = catalogue()
    if text == "all":
        return list(known.values())
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise LinesideError(f"--faults: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[n] for n in names]


def handle(args: argparse.Namespace) -> int:
    try:
        if args.minutes <= 0 or args.rate < 0 or args.gap_s <= 0 or args.window_min <= 0:
            raise LinesideError("--minutes, --gap-s and --window-min must be positive, --rate >= 0")
        faults = pick_faults(args.faults)
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # link losses are counted per part
        with _workdir(args.workdir) as work:
            return _soak(args, faults, work)
    except LinesideError as exc:
        print(f"lineside soak: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


@contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="lineside-soak-") as tmp:
        yield Path(tmp)


@contextmanager
def _records_mount(folder: Path, wanted: bool) -> Iterator[bool]:
    """A tmpfs for the records when a fault needs real ENOSPC or a read-only remount (root only)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        wanted
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def _soak(args: argparse.Namespace, faults: list[Fault], work: Path) -> int:
    root = work / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    needs_mount = any(f.needs_mount for f in faults)
    with _records_mount(root / "records", needs_mount) as mounted:
        notes = []
        if needs_mount and not mounted:
            faults = [f for f in faults if not f.needs_mount]
            notes.append("records-full/read-only skipped: no tmpfs could be mounted (needs root)")
        extra: dict[str, Any] = {"records": {"quota_mb": QUOTA_MB, "accept_sample_rate": 1.0}}
        for fault in faults:
            for section, values in fault.config.items():
                if section != "records":  # the soak keeps its own quota
                    extra[section] = {**extra.get(section, {}), **values}
        station = write_station(
            root,
            model_dir=demo_model_dir(),
            parts_dir=copy_parts(demo_parts_dir(), root),
            truth=read_truth(demo_parts_dir() / "truth.csv"),
            records_dir=root / "records",
            extra=extra,
        )
        result = _run(args, faults, station)
        return _report(args, result, notes)  # inside the mount: the records are read here


def _run(args: argparse.Namespace, faults: list[Fault], station: Any) -> CampaignResult:
    robot = RobotSettings(
        port=station.modbus_port,
        deadline_ms=station.budget_ms + 400.0,
        stop_after=0,
        ready_timeout_s=120.0,
        takt_ms=1000.0 / args.rate if args.rate else 0.0,
    )
    gap = (args.gap_s * 0.5, args.gap_s * 1.5)
    schedule = Schedule(
        faults, repeats=1, warmup_s=min(30.0, args.gap_s), gap_s=gap, settle_s=5.0, tail_s=10.0
    )
    window_s = args.window_min * 60.0
    live: list[PartSeen] = []
    args.printed_windows = 0
    started = time.monotonic()

    def on_part(seen: PartSeen) -> None:
        index = int((seen.t_start - started) // window_s)
        if live and int((live[0].t_start - started) // window_s) != index:
            if not args.json:
                print(_window_line(window_figures(index - 1, window_s, live)), flush=True)
                args.printed_windows += 1
            live.clear()
        live.append(seen)

    command = [sys.executable, "-m", "lineside.cli", "--log-level", "INFO", "run"]
    campaign = FaultCampaign(
        command, station, schedule, seed=args.seed, robot=robot, sample_s=10.0, on_part=on_part
    )
    if not args.json:
        print(f"soak: {args.minutes:g} min, faults {len(faults)}, station {station.root}", flush=True)
    return campaign.run(args.minutes * 60.0)


def _window_line(w: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return (
        f"window {w['window']} (+{w['from_s']} s): parts {w['parts']}, accepted {w['accepted']}, rejected "
        f"{w['rejected']}, faulted {w['faulted']}, no answer {w['no_answer']}, p50 {ms(w['p50_ms'])} ms, "
        f"p99 {ms(w['p99_ms'])} ms"
    )


def _report(args: argparse.Namespace, result: CampaignResult, notes: list[str]) -> int:
    figures = account(result)
    rows = fault_rows(result, figures)
    per_window = windows(result, args.window_min * 60.0)
    roles = sorted({r for s in result.samples for r in s.processes})
    resources = {role: growth(result.samples, role) for role in roles}
    records_peak = max((s.records_mb for s in result.samples), default=0.0)
    summary: dict[str, Any] = {
        "parts": figures.parts,
        "records": figures.records,
        "record_verdicts": figures.verdicts,
        "wrong_accepts": [text for _, text in figures.wrong_accepts],
        "lost_records": [text for _, text in figures.lost_records],
        "restarts": result.restarts,
        "windows": per_window,
        "faults": [row.to_json() for row in rows],
        "growth_rss_mb_fds": resources,
        "samples": [asdict(s) for s in result.samples],
        "records_mb_peak": records_peak,
        "records_quota_mb": QUOTA_MB,
        "notes": notes + result.skipped,
        "log": str(result.log),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print("\n".join(_window_line(w) for w in per_window[args.printed_windows :]))
        for role in roles:
            seen = [s.processes[role] for s in result.samples if role in s.processes]
            print(
                f"{role}: RSS {seen[0][0]:.0f} -> {seen[-1][0]:.0f} MB (max {max(r for r, _ in seen):.0f}), "
                f"open fds {seen[0][1]} -> {seen[-1][1]} (max {max(f for _, f in seen)}); "
                f"growth after warm-up {resources[role]}"
            )
        print(f"records folder: peak {records_peak:.1f} MB, image quota {QUOTA_MB:.0f} MB (+ database)")
        print(
            f"parts {figures.parts}, records {figures.records} {figures.verdicts}, "
            f"restarts {len(result.restarts)}"
        )
        print(f"wrong accepts {len(figures.wrong_accepts)}, lost records {len(figures.lost_records)}")
        print(render_table(rows))
        for note in summary["notes"]:
            print(f"note: {note}")
    return EXIT_OK if not figures.wrong_accepts and not figures.lost_records else EXIT_FAILED
