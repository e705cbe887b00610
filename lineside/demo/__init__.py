"""The embedded demo: generated part images, the shipped demo model and the config that joins them."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml

from edge.station.config import LinesideConfig, parse_config

DEMO_MODEL = ("demo", "1.0.0")
DEMO_ANOMALY_MODEL = ("demo-anomaly", "1.1.0")  # recipe 2's second judge (training/judges/demo_anomaly.py)
DEMO_RESULTS = "tcp://127.0.0.1:5571"  # the demo's stream of final inspections (demo.yaml publish.endpoint)


def demo_parts_dir() -> Path:
    return Path(str(resources.files("lineside.demo") / "parts"))


def shipped_models_dir() -> Path:
    """models/ as installed: package data `lineside/models` in a wheel, `models/` in a source checkout."""
    installed = Path(__file__).resolve().parents[1] / "models"
    if installed.is_dir():
        return installed
    # Editable install or a run from the repository: pyproject maps models/ to lineside.models only
    # when a wheel is built, so here the folder is the repository's own.
    return Path(__file__).resolve().parents[2] / "models"


def demo_model_dir() -> Path:
    name, version = DEMO_MODEL
    return shipped_models_dir() / name / version


def demo_anomaly_model_dir() -> Path:
    name, version = DEMO_ANOMALY_MODEL
    return shipped_models_dir() / name / version


def default_state_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the user's XDG state folder."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "lineside" / "demo"


def demo_config(state_dir: Path | None = None) -> LinesideConfig:
    """The demo line's configuration, with its paths pointing at this installation."""
    template = (resources.files("lineside.demo") / "demo.yaml").read_text(encoding="utf-8")
    text = template.format(
        parts=demo_parts_dir(),
        model=demo_model_dir(),
        anomaly_model=demo_anomaly_model_dir(),
        state=(state_dir or default_state_dir()),
    )
    return parse_config(yaml.safe_load(text), "embedded demo config", Path.cwd())
