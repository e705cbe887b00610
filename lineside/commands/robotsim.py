"""`lineside robot-sim`: the robot program of docs/robot-link.md against a running appliance, with fault
injection and, given the appliance's result stream and a truth file, a count of wrongly accepted parts.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge.errors import LinesideError
from edge.i18n import say
from edge.robotlink.registers import VerdictCode
from edge.robotlink.robot import FaultPlan, Inject, PartOutcome, RobotProgram, RunReport, default_hold_ms
from edge.robotlink.robotrules import RegisterPort, RobotSettings
from edge.runtime.messages import LedgerEvent
from lineside.commands.robotsim_served import ServedRegisters
from lineside.demo import DEMO_RESULTS, demo_parts_dir

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFECTIVE = frozenset({"reject", "defective", "bad", "ng", "nok"})
GOOD = frozenset({"accept", "good", "ok"})
UR_GP_BASE = 128  # UR's general-purpose holding registers 128..255


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    p = subparsers.add_parser(
        "robot-sim",
        help=say("help.robot_sim", lang),
        description=say("help.robot_sim.about", lang),
        epilog=say("help.robot_sim.examples", lang),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def words(option: str) -> str:
        return say(f"help.robot_sim.{option}", lang)

    p.add_argument("--host", default="127.0.0.1", help=words("host"))
    p.add_argument("--port", type=int, default=5020, help=words("port"))
    p.add_argument("--role", choices=("server", "client"), default="server", help=words("role"))
    p.add_argument("--base", type=int, help=words("base"))
    p.add_argument("--unit", type=int, default=1, help=words("unit"))
    p.add_argument("--parts", type=int, default=20, metavar="N", help=words("parts"))
    p.add_argument("--deadline-ms", type=float, default=600.0, help=words("deadline"))
    p.add_argument("--poll-ms", type=float, default=10.0, help=words("poll"))
    p.add_argument("--takt-ms", type=float, default=0.0, help=words("takt"))
    p.add_argument("--stop-after", type=int, default=3, help=words("stop_after"))
    p.add_argument("--inject", choices=[k.value for k in Inject], help=words("inject"))
    p.add_argument("--inject-from", type=int, metavar="I", help=words("inject_from"))
    p.add_argument("--inject-count", type=int, default=2, metavar="M", help=words("inject_count"))
    p.add_argument("--hold-ms", type=float, help=words("hold"))
    p.add_argument("--truth", type=Path, help=words("truth"))
    p.add_argument("--results", metavar="ENDPOINT", help=words("results"))
    p.add_argument("--ready-timeout", type=float, default=30.0, help=words("ready_timeout"))
    p.add_argument("--json", action="store_true", help=words("json"))
    p.add_argument("--demo", action="store_true", help=words("demo"))
    p.add_argument("--ack-alarms", action="store_true", help=words("ack_alarms"))
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if (
        min(args.parts, args.inject_count) < 1
        or min(args.deadline_ms, args.poll_ms) <= 0
        or args.stop_after < 0
    ):
        print(
            "lineside robot-sim: --parts, --inject-count, --deadline-ms and --poll-ms must be positive, "
            "--stop-after >= 0",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    base = args.base if args.base is not None else (UR_GP_BASE if args.role == "client" else 0)
    settings = RobotSettings(
        host=args.host,
        port=args.port,
        base=base,
        unit_id=args.unit,
        deadline_ms=args.deadline_ms,
        poll_ms=args.poll_ms,
        stop_after=args.stop_after,
        ready_timeout_s=args.ready_timeout,
        takt_ms=args.takt_ms,
        ack_alarms=args.ack_alarms,
    )
    fault = None
    if args.inject:
        kind = Inject(args.inject)
        first = args.inject_from if args.inject_from is not None else args.parts // 3
        hold = args.hold_ms if args.hold_ms is not None else default_hold_ms(kind)
        fault = FaultPlan(kind, first=first, count=args.inject_count, hold_ms=hold)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # link losses are reported per part
    try:
        return run_sim(
            settings,
            args.parts,
            fault=fault,
            role=args.role,
            results=args.results or (DEMO_RESULTS if args.demo else None),
            truth_file=args.truth or (demo_parts_dir() / "truth.csv" if args.demo else None),
            as_json=args.json,
        )
    except LinesideError as exc:
        print(f"lineside robot-sim: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def run_sim(
    settings: RobotSettings,
    parts: int,
    *,
    fault: FaultPlan | None = None,
    role: str = "server",
    results: str | None = None,
    truth_file: Path | None = None,
    out: TextIO | None = None,
    as_json: bool = False,
) -> int:
    """Run the robot program, print a line per part and the summary; the exit status."""
    out = out or sys.stdout
    if truth_file is not None and results is None:
        raise LinesideError("--truth needs --results: the result stream says which image each part was")
    truth = load_truth(truth_file) if truth_file else None
    with ledger_listener(results) as ledger, robot_port(settings, role) as port:
        program = RobotProgram(settings, fault, port=port)
        report = program.run(parts, on_outcome=None if as_json else lambda o: _print_part(o, out))
        # The result stream may trail the Modbus result by a few ms.
        ledger.wait_for({(o.boot_id, o.seq) for o in report.outcomes if o.decision == "ACCEPT"}, 2.0)
        judged = [judge_part(o, ledger, truth) for o in report.outcomes]
    summary = summarise(report, judged, truth is not None)
    if as_json:
        for part in judged:
            print(json.dumps({"kind": "part", **asdict(part)}), file=out)
        print(json.dumps({"kind": "summary", **summary}), file=out, flush=True)
    else:
        print(render_summary(summary), file=out, flush=True)
    return EXIT_OK if summary["ok"] else EXIT_FAILED


# ---- ground truth ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class JudgedPart:
    """A robot outcome next to what the appliance recorded and what the part really was."""

    outcome: PartOutcome
    origin: str | None  # the image the appliance inspected (from its result stream)
    ledger_verdict: str | None
    defective: bool | None  # None: unknown
    wrong_accept: bool
    unverified_accept: bool  # accepted, truth asked for, but the part could not be matched


def load_truth(path: Path) -> dict[str, bool]:
    """file -> defective, keyed by the file name and by its absolute path (relative to the CSV)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise LinesideError(f"--truth {path}: cannot read ({exc.strerror})") from None
    by_path: dict[str, bool] = {}
    by_name: dict[str, set[bool]] = {}
    for line, row in enumerate(rows, start=2):
        name, decision = (row.get("file") or "").strip(), (row.get("decision") or "").strip().lower()
        if not name or decision not in DEFECTIVE | GOOD:
            raise LinesideError(f"--truth {path}:{line}: need file and decision (accept/reject), got {row}")
        by_path[str((path.parent / name).resolve())] = decision in DEFECTIVE
        by_name.setdefault(Path(name).name, set()).add(decision in DEFECTIVE)
    # A bare file name is a key only where it is unambiguous (same name in two folders: paths only).
    names = {name: next(iter(kinds)) for name, kinds in by_name.items() if len(kinds) == 1}
    return {**names, **by_path}


def judge_part(outcome: PartOutcome, ledger: Ledger, truth: dict[str, bool] | None) -> JudgedPart:
    event = ledger.events.get((outcome.boot_id, outcome.seq))
    origin = event.result.origin if event and event.result else None
    verdict = event.verdict.value if event and event.verdict else None
    defective = None
    if truth is not None and origin:
        defective = truth.get(str(Path(origin).resolve()), truth.get(Path(origin).name))
    accepted = outcome.decision == "ACCEPT"
    # An ACCEPT the appliance's own ledger does not show as ACCEPT is wrong whatever the part was.
    wrong = accepted and (defective is True or (event is not None and verdict != "ACCEPT"))
    unverified = accepted and truth is not None and defective is None
    return JudgedPart(outcome, origin, verdict, defective, wrong, unverified)


class Ledger:
    """Final inspections from the appliance's ZeroMQ PUB, keyed by (BOOT_ID, TRIGGER_SEQ)."""

    def __init__(self, endpoint: str | None) -> None:
        self.events: dict[tuple[int, int], LedgerEvent] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if endpoint is None:
            return
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            self._sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            self._ctx.term()
            raise LinesideError(f"--results {endpoint}: cannot connect ({exc})") from None
        self._wait_subscribed(endpoint, 3.0)
        self._thread = threading.Thread(target=self._receive, name="robot-sim-ledger", daemon=True)
        self._thread.start()

    def _wait_subscribed(self, endpoint: str, timeout_s: float) -> None:
        """A SUB misses what is published before it is connected (ZeroMQ's slow joiner): wait for the
        handshake, then a moment for the subscription to reach the publisher."""
        monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            if not monitor.poll(int(timeout_s * 1000)):
                logging.getLogger(__name__).warning("--results %s: not connected yet", endpoint)
                return
            recv_monitor_message(monitor)
            time.sleep(0.05)  # once, bounded: the subscription is one message on an open connection
        finally:
            self._sock.disable_monitor()
            monitor.close(0)

    def _receive(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(100):
                continue
            try:
                event = LedgerEvent.model_validate_json(self._sock.recv_multipart()[0])
            except ValueError:
                continue  # not ours to judge; the appliance validates what it publishes
            if event.kind == "finalised":
                self.events[(event.trigger.boot_id, event.trigger.trigger_seq)] = event

    def wait_for(self, keys: Iterable[tuple[int, int]], timeout_s: float) -> None:
        """Wait (bounded) until the events of these parts have arrived."""
        if self._thread is None:
            return
        end = time.monotonic() + timeout_s
        while not all(k in self.events for k in keys) and time.monotonic() < end:
            self._stop.wait(0.05)

    def close(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close(0)
        self._ctx.term()


@contextmanager
def ledger_listener(endpoint: str | None) -> Iterator[Ledger]:
    ledger = Ledger(endpoint)
    try:
        yield ledger
    finally:
        ledger.close()


# ---- role (b): the robot's registers served to lineside ---------------------------------------------
@contextmanager
def robot_port(settings: RobotSettings, role: str) -> Iterator[RegisterPort | None]:
    """None in role server (the program makes its own client); served registers in role client."""
    if role != "client":
        yield None
        return
    served = ServedRegisters(settings.host, settings.port, settings.base)
    served.start()
    try:
        yield served
    finally:
        served.close()


# ---- output ------------------------------------------------------------------------------------------
def summarise(report: RunReport, parts: list[JudgedPart], truth_known: bool) -> dict[str, Any]:
    outcomes = report.outcomes
    latencies = sorted(o.latency_ms for o in outcomes if o.latency_ms is not None)
    wrong = [p.outcome.seq for p in parts if p.wrong_accept]
    unverified = [p.outcome.seq for p in parts if p.unverified_accept]
    summary: dict[str, Any] = {
        "parts": len(outcomes),
        "accepted": sum(o.decision == "ACCEPT" for o in outcomes),
        "rejected": sum(o.decision == "REJECT" for o in outcomes),
        "verdict_rejects": sum(o.kind == "verdict" for o in outcomes),
        "fault_rejects": sum(o.kind == "fault" for o in outcomes),
        "comm_rejects": sum(o.kind == "comm" for o in outcomes),
        "truth_known": truth_known,
        "wrong_accepts": wrong,
        "unverified_accepts": unverified,
        "latency_p50_ms": _percentile(latencies, 50),
        "latency_p99_ms": _percentile(latencies, 99),
        "line_stopped": report.line_stopped,
        "violations": report.violations,
        "boot_ids": report.boot_ids,
        "error_clears": report.error_clears,
        "alarm_acks": report.alarm_acks,
        "check_mismatches": report.check_mismatches,
    }
    summary["ok"] = not (wrong or unverified or report.line_stopped or report.violations)
    return summary


def _percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted values; None when there are none."""
    if not values:
        return None
    rank = max(1, -(-len(values) * pct // 100))
    return round(values[int(rank) - 1], 3)


def render_summary(s: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    wrong = f"{len(s['wrong_accepts'])}" if s["truth_known"] else "unknown (no --truth/--results)"
    lines = [
        f"summary: parts {s['parts']}, accepted {s['accepted']}, rejected {s['rejected']} "
        f"(verdict {s['verdict_rejects']}, fault {s['fault_rejects']}, comm {s['comm_rejects']}), "
        f"wrong accepts {wrong}, latency p50 {ms(s['latency_p50_ms'])} p99 {ms(s['latency_p99_ms'])}"
    ]
    if s["wrong_accepts"]:
        lines.append(f"WRONG ACCEPTS: sequences {s['wrong_accepts']}")
    if s["unverified_accepts"]:
        lines.append(
            f"accepted parts with no truth (not in the result stream or truth file): "
            f"{s['unverified_accepts']}"
        )
    if s["check_mismatches"]:
        lines.append(f"torn reads caught by CHECK and read again: {s['check_mismatches']}")
    if s["alarm_acks"]:
        lines.append(f"line alarms acknowledged (CONTROL ACK_ALARMS pulses): {s['alarm_acks']}")
    if s["line_stopped"]:
        lines.append(f"LINE STOPPED: {s['line_stopped']}")
    lines += [f"PROTOCOL VIOLATION: {v}" for v in s["violations"]]
    return "\n".join(lines)


def _print_part(outcome: PartOutcome, out: TextIO) -> None:
    verdict = "-" if outcome.verdict is None else _verdict_name(outcome.verdict)
    latency = "-" if outcome.latency_ms is None else f"{outcome.latency_ms:.1f} ms"
    injected = f" (injected {outcome.injected})" if outcome.injected else ""
    position = outcome.robot_position_mm
    at = "" if position is None else f", defect at ({position[0]:.1f}, {position[1]:.1f}) mm"
    print(
        f"part {outcome.index + 1} seq {outcome.seq}: {outcome.decision} after {latency}, verdict {verdict}"
        f"{at}: {outcome.reason}{injected}",
        file=out,
        flush=True,
    )


def _verdict_name(code: int) -> str:
    try:
        return VerdictCode(code).name
    except ValueError:
        return f"{code:#05b}"
