"""What the supervisor tells observers (the status worker) about its workers: state, restarts, detail.

It is published on its own PUB socket beside `health.sock` in the runtime directory, so the robot link's
`Health` stays as small as it is. Kept light: the supervisor imports this module.
"""

from __future__ import annotations

from pydantic import Field

from edge.errors import LinesideError
from edge.runtime.endpoints import Endpoints
from edge.runtime.messages import Message

SUPERVISION_SOCKET = "supervision.sock"


class WorkerReport(Message):
    """One worker as the supervisor sees it."""

    state: str = Field(description="Its last heartbeat's state, or 'down' / 'failed' (given up).")
    pid: int | None = None
    restarts: int = Field(0, ge=0, description="Restarts since the appliance started.")
    heartbeat_age_s: float | None = Field(None, description="Seconds since its last heartbeat.")
    optional: bool = Field(False, description="An observer (status, fleet): never part of READY.")
    detail: dict[str, object] = Field(default_factory=dict)


class SupervisionReport(Message):
    """All workers, the line's readiness and the supervisor's fault, if any."""

    workers: dict[str, WorkerReport]
    model_ready: bool
    camera_ready: bool
    fault: str | None = None
    shutting_down: bool = False
    t: float = Field(description="time.time() when sent.")


def supervision_endpoint(endpoints: Endpoints) -> str:
    """The report's endpoint: `supervision.sock` in the runtime directory, beside `health.sock`."""
    folder, sep, _name = endpoints.health.rpartition("/")
    if not endpoints.health.startswith("ipc://") or not sep:
        raise LinesideError(f"health endpoint '{endpoints.health}' is not an ipc:// path in the runtime dir")
    return f"{folder}/{SUPERVISION_SOCKET}"
