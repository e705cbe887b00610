"""The Machine Vision state machine as the line's state: Preoperational, Operational, Error, Halted.

Derived only from what the supervisor reports (its workers' heartbeats, its fault, its shutdown) and
from this worker being stopped; nothing a client does can move it (observe only).
"""

from __future__ import annotations

from enum import Enum

from edge.status.supervision import SupervisionReport

REPORT_STALE_S = 2.0  # no report for this long: the supervisor is gone or stuck, so the line is not READY


class VisionState(str, Enum):
    """The top-level states of OPC 40100-1's VisionStateMachineType (their BrowseNames)."""

    PREOPERATIONAL = "Preoperational"
    OPERATIONAL = "Operational"
    ERROR = "Error"
    HALTED = "Halted"


def line_ready(report: SupervisionReport) -> bool:
    """READY as the robot sees it: the robot link's READY bit, which already includes model and camera."""
    robot = report.workers.get("robotlink")
    if robot is None or robot.state not in ("ready", "degraded"):
        return False
    return bool(robot.detail.get("ready")) and report.model_ready and report.camera_ready


def vision_state(report: SupervisionReport | None, report_age_s: float, stopping: bool) -> VisionState:
    """The state to show now.

    A FAULT stop (the supervisor spent a restart budget) is Error, and stays Error while everything
    stops; a plain shutdown, or this worker being stopped, is Halted; READY is Operational; anything
    else (warming up, camera reconnecting, a worker restarting) is Preoperational.
    """
    if report is not None and report.fault:
        return VisionState.ERROR
    if stopping or (report is not None and report.shutting_down):
        return VisionState.HALTED
    if report is None or report_age_s > REPORT_STALE_S or not line_ready(report):
        return VisionState.PREOPERATIONAL
    return VisionState.OPERATIONAL
