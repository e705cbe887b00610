"""A fault campaign: `lineside run` (trigger: robot) with the robot program in the loop, faults injected
at seeded moments, the appliance restarted when it exits (as systemd would), and resources sampled.

The robot runs in the caller's thread; injections, restarts and samples run in one scheduler thread.
`lineside.soak.accounting` turns the result into figures.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from edge.robotlink.registers import VerdictCode
from edge.robotlink.robot import FaultPlan, PartOutcome, RobotProgram
from edge.robotlink.robotrules import LinkDownError, RobotSettings
from lineside.soak.faults import Fault, Undo
from lineside.soak.metrics import Sample, sample
from lineside.soak.process import LineProcess
from lineside.soak.station import Station
from lineside.soak.stream import FinalStream

log = logging.getLogger(__name__)

RECOVER_WAIT_S = 90.0  # how long a campaign waits for READY and a verdict again after a fault
_COMPLETE = (VerdictCode.ACCEPT, VerdictCode.REJECT)
INJECT_WAIT_S = 30.0  # how long a fault waits for its target (a worker restarting) before it is skipped


@dataclass
class Injection:
    """One injected fault: when (monotonic and wall), what was done, and where the log was then."""

    fault: str
    what: str
    at: float
    wall: float
    log_offset: int
    undone_at: float | None = None
    self_healing: bool = True  # recovery counts from the injection, else from the undo


@dataclass(frozen=True)
class PartSeen:
    """A robot outcome with the monotonic times its cycle started and ended."""

    outcome: PartOutcome
    t_start: float
    t_end: float


@dataclass
class CampaignResult:
    """Everything a campaign saw; joined with the records database by accounting."""

    station: Station
    parts: list[PartSeen] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)  # why the campaign restarted the appliance
    skipped: list[str] = field(default_factory=list)  # faults that could not be injected when due
    stream: list[object] = field(default_factory=list)  # LedgerEvent, finalised, in arrival order
    started: float = 0.0
    ended: float = 0.0
    log: Path | None = None


@dataclass(frozen=True)
class Schedule:
    """When to inject: after `warmup_s`, then a seeded gap in `gap_s` after each fault has settled."""

    faults: list[Fault]
    repeats: int = 1  # times through the list (soak: as often as fits in duration)
    warmup_s: float = 1.0
    gap_s: tuple[float, float] = (1.0, 2.0)
    settle_s: float = 2.0  # after an undo (or a self-healing fault) before the next gap starts
    tail_s: float = 3.0  # parts after the last fault, to see recovery


class FaultCampaign:
    """Run with `run(duration_s)`; `stop` ends it early (between robot parts)."""

    def __init__(
        self,
        command: list[str],
        station: Station,
        schedule: Schedule,
        *,
        seed: int = 1,
        robot: RobotSettings | None = None,
        sample_s: float = 1.0,
        stop: threading.Event | None = None,
        on_part: Callable[[PartSeen], None] | None = None,
    ) -> None:
        self.station, self.schedule = station, schedule
        self.rng = Random(seed)
        self.parts_dir, self.records_dir = station.parts_dir, station.records_dir
        self.modbus_port = station.modbus_port
        self.line = LineProcess(command, station.config, station.root / "run.log")
        self.robot = robot or RobotSettings(
            port=station.modbus_port,
            deadline_ms=station.budget_ms + 400.0,
            stop_after=0,  # the campaign must see every fault through, never stop the line
            ready_timeout_s=90.0,
        )
        self.sample_s = sample_s
        self.stop = stop or threading.Event()
        self.on_part = on_part
        self.result = CampaignResult(station, log=self.line.log)
        self._program: RobotProgram | None = None
        self._scheduler_done = threading.Event()
        self._last_pids: list[int] = []

    # ---- called by faults ----------------------------------------------------------------------
    def plan_robot_fault(self, plan: FaultPlan) -> None:
        program = self._program
        if program is not None:
            first = len(program.report.outcomes) + 1  # the part after the one in flight
            program.fault = FaultPlan(plan.kind, first, plan.count, plan.hold_ms, plan.slow_deadline_ms)

    # ---- the run -------------------------------------------------------------------------------
    def run(self, duration_s: float) -> CampaignResult:
        """Start the line, wait for READY, run parts until the schedule is through and `duration_s` is
        up (whichever is later, bounded by `stop`), then stop everything."""
        self.result.started = time.monotonic()
        self.line.start()
        stream = FinalStream(self.station.publish)
        program = RobotProgram(self.robot, stop=self.stop)
        self._program = program
        scheduler = threading.Thread(target=self._schedule, args=(duration_s,), name="campaign", daemon=True)
        try:
            program.start()
            scheduler.start()
            while not self.stop.is_set() and not self._scheduler_done.is_set():
                t0 = time.monotonic()
                outcome = program.inspect_part(len(program.report.outcomes))
                seen = PartSeen(outcome, t0, time.monotonic())
                self.result.parts.append(seen)
                if self.on_part is not None:
                    self.on_part(seen)
        finally:
            self._scheduler_done.set()
            self.stop.set()
            if scheduler.is_alive():
                scheduler.join(30.0)
            program.close()
            self.line.close()
            time.sleep(0.3)  # the last finals published at shutdown reach the stream
            self.result.stream = list(stream.snapshot())
            stream.close()
            self.result.ended = time.monotonic()
        return self.result

    def _schedule(self, duration_s: float) -> None:
        try:
            self._inject_all(duration_s)
        except Exception:  # a bug here must end the campaign visibly, not hang the robot loop
            log.exception("campaign: scheduler failed")
            raise
        finally:
            self._scheduler_done.set()

    def _inject_all(self, duration_s: float) -> None:
        s = self.schedule
        end = self.result.started + duration_s
        self._idle(s.warmup_s)
        round_no = 0
        while not self.stop.is_set() and s.faults:
            round_no += 1
            # Every fault `repeats` times; then more rounds while the duration lasts (a soak).
            for fault in s.faults:
                if round_no > s.repeats and time.monotonic() >= end:
                    break
                self._idle(self.rng.uniform(*s.gap_s))
                if self.stop.is_set():
                    return
                self._inject(fault)
            if round_no >= s.repeats and time.monotonic() >= end:
                break
        last = time.monotonic() + s.tail_s
        self._idle(max(0.0, max(end, last) - time.monotonic()))

    def _inject(self, fault: Fault) -> None:
        offset = self.line.log_size()
        self._last_pids = list(self.line.pids().values())
        done = None
        deadline = time.monotonic() + INJECT_WAIT_S
        while done is None and not self.stop.is_set():
            try:
                done = fault.inject(self)
            except (OSError, LinkDownError, ValueError, subprocess.SubprocessError) as exc:
                self.result.skipped.append(f"{fault.name}: {exc}")
                return
            if done is None and time.monotonic() < deadline:
                self._idle(0.2)  # its target is restarting after the last fault: wait for it
            else:
                break
        if done is None:
            self.result.skipped.append(f"{fault.name}: nothing to inject into just then")
            return
        what, undo = done
        injection = Injection(fault.name, what, time.monotonic(), time.time(), offset)
        injection.self_healing = undo is None or fault.name == "hang-inference"
        self.result.injections.append(injection)
        log.info("campaign: injected %s (%s)", fault.name, what)
        self._idle(fault.hold_s)
        if undo is not None:
            self._undo(undo, fault.name)
            injection.undone_at = time.monotonic()
        self._wait_recovered(injection.undone_at or injection.at)
        self._idle(self.schedule.settle_s)

    def _wait_recovered(self, since: float) -> None:
        """Faults do not overlap: wait (bounded) for a complete verdict on a part started after `since`."""
        deadline = time.monotonic() + RECOVER_WAIT_S
        while time.monotonic() < deadline and not self.stop.is_set():
            recent = self.result.parts[-50:]
            if any(p.t_start > since and p.outcome.verdict in _COMPLETE for p in recent):
                return
            self._idle(0.2)

    def _undo(self, undo: Undo, name: str) -> None:
        try:
            undo()
        except OSError as exc:
            self.result.skipped.append(f"{name}: undo failed: {exc}")

    def _idle(self, seconds: float) -> None:
        """Wait, restarting the appliance if it exited and sampling resources as time passes."""
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            self._keep_running()
            now = time.monotonic()
            if (
                not self.result.samples
                or now - self.result.started >= self.result.samples[-1].t_s + self.sample_s
            ):
                self.result.samples.append(
                    sample(now - self.result.started, self.line.pids(), self.records_dir)
                )
            if now >= end:
                return
            self.stop.wait(min(0.1, end - now))

    def _keep_running(self) -> None:
        status = self.line.exited()
        if status is None:
            self._last_pids = list(self.line.pids().values()) or self._last_pids
            return
        # Like systemd's Restart=: wait for the old workers to go (they follow their parent), restart.
        self.line.wait_gone(self._last_pids, 15.0)
        self.result.restarts.append(f"exit status {status}")
        with contextlib.suppress(OSError):
            self.line.start()


def copy_parts(source: Path, root: Path) -> Path:
    """The parts a campaign may vandalise: a private copy of `source` (image files only)."""
    target = root / "parts"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.csv", "*.md", "*.txt"))
    return target
