"""Runs every doctor check in order; later checks use what earlier ones found (frame size, a running line)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lineside.doctor.report import Check
from lineside.doctor.station import check_calibrations, check_config, check_models
from lineside.doctor.system import (
    check_camera,
    check_clock,
    check_disk,
    check_modbus,
    check_ntp,
    check_runtime,
)


@dataclass(frozen=True)
class DoctorOptions:
    """What to check and the limits that make a WARN or a FAIL."""

    config: Path | None  # None: the embedded demo config
    calibration_max_age_days: float = 180.0
    disk_warn_gb: float = 2.0
    disk_fail_gb: float = 0.5
    camera_timeout_s: float | None = None  # None: the source's open_timeout_s


def run_checks(options: DoctorOptions) -> list[Check]:
    """Every check's line, in the order an installer fixes things."""
    config_check, config = check_config(options.config)
    checks = [config_check]
    if config is None:  # nothing else can be checked without a config
        return [*checks, check_runtime(None)]
    checks += check_models(config)
    modbus, line_running = check_modbus(config.robot_link)
    timeout_s = options.camera_timeout_s or config.source.open_timeout_s
    camera, frame_size = check_camera(config, timeout_s, line_running)
    checks.append(camera)
    checks += check_calibrations(
        config, frame_size or config.source.expected_size, options.calibration_max_age_days, time.time()
    )
    checks.append(modbus)
    checks.append(check_disk(config, options.disk_warn_gb, options.disk_fail_gb))
    checks.append(check_clock(config, time.time()))
    checks.append(check_ntp())
    checks.append(check_runtime(config))
    return checks
