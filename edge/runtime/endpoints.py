"""ZeroMQ endpoints joining the workers, derived from the runtime directory unless configured."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Endpoints(BaseModel):
    """Where each socket binds; receivers bind, senders connect (so a restarted receiver is found again)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    triggers: str  # robot link -> capture
    arrivals: str  # capture -> robot link (hardware trigger: a frame came, register a part)
    frames: str  # capture -> inference
    results: str  # capture/inference -> robot link
    ledger: str  # robot link -> recorder
    images: str  # capture/inference -> recorder
    heartbeats: str  # every worker -> supervisor
    health: str  # supervisor -> robot link
    publish: str  # robot link -> anyone (final inspections, JSON)
    measures: str  # inference -> alarms worker (image measures of each frame, PUB)
    alarms: str  # alarms worker -> robot link, status, fleet (AlarmState, PUB)
    acks: str  # robot link, status -> alarms worker (AlarmAck: someone acknowledges the alarms, PUSH)
    frame_dir: str  # capture -> inference: the shared-memory frame ring's folder (edge/runtime/framering.py)

    @classmethod
    def in_runtime_dir(cls, runtime_dir: Path, publish: str | None = None) -> Endpoints:
        def ipc(name: str) -> str:
            return f"ipc://{runtime_dir / (name + '.sock')}"

        return cls(
            triggers=ipc("triggers"),
            arrivals=ipc("arrivals"),
            frames=ipc("frames"),
            results=ipc("results"),
            ledger=ipc("ledger"),
            images=ipc("images"),
            heartbeats=ipc("heartbeats"),
            health=ipc("health"),
            publish=publish or ipc("inspections"),
            measures=ipc("measures"),
            alarms=ipc("alarms"),
            acks=ipc("alarm-acks"),
            frame_dir=str(runtime_dir),
        )
