"""The station a fault campaign runs: a folder of parts with known truth, one model, `trigger: robot`,
a TCP result stream and fast supervision, written to `root/line.yaml`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.bench.appliance import free_port
from edge.errors import LinesideError
from edge.station.config import parse_config

DEFECTIVE = frozenset({"reject", "defective", "bad", "ng", "nok"})


@dataclass(frozen=True)
class Station:
    """A written station: config, Modbus port, result stream, records folder and each part's truth."""

    root: Path
    config: Path
    modbus_port: int
    publish: str
    records_dir: Path
    parts_dir: Path
    truth: dict[str, bool]  # image file name -> defective
    budget_ms: float


def read_truth(path: Path) -> dict[str, bool]:
    """file name -> defective, from a CSV with columns file,decision (accept/reject)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise LinesideError(f"{path}: cannot read the truth file ({exc.strerror})") from None
    return {
        Path(row["file"]).name: str(row.get("decision", "")).strip().lower() in DEFECTIVE
        for row in rows
        if row.get("file")
    }


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        old = merged.get(key)
        merged[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def write_station(
    root: Path,
    *,
    model_dir: Path,
    parts_dir: Path,
    truth: dict[str, bool],
    budget_ms: float = 450.0,
    records_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> Station:
    """Write `root/line.yaml` for a robot-triggered line; `extra` is merged section by section."""
    root.mkdir(parents=True, exist_ok=True)
    port, publish = free_port(), f"tcp://127.0.0.1:{free_port()}"
    records = records_dir or root / "records"
    config: dict[str, Any] = {
        "station": {"name": "fault-campaign", "runtime_dir": str(root / "run")},
        "source": {"kind": "folder", "path": str(parts_dir), "loop": True},
        "trigger": {"mode": "robot", "takt_ms": 0.0},
        "recipes": [{"number": 1, "name": "campaign-part", "model": str(model_dir)}],
        "default_recipe": 1,
        "robot_link": {
            "host": "127.0.0.1",
            "port": port,
            "publish_budget_ms": budget_ms,
            "robot_heartbeat_required": False,
            "require_enable": False,
        },
        "publish": {"endpoint": publish},
        "records": {"dir": str(records), "quota_mb": 50, "synchronous": "FULL"},
        "supervisor": {
            "heartbeat_interval_s": 0.1,
            "stuck_after_s": 2.0,
            "stop_timeout_s": 3.0,
            "restart_budget": {"count": 50, "window_s": 60},
            "not_ready_warn_s": 2.0,
        },
    }
    config = _merge(config, extra or {})
    (root / "run").mkdir(exist_ok=True)
    path = root / "line.yaml"
    parse_config(config, str(path), root)  # refuse a bad station here, not as a process that never starts
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return Station(root, path, port, publish, records, parts_dir, dict(truth), budget_ms)
