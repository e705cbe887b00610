"""The test setup's Debian packages: installed on first use where apt-get and root allow, else a loud skip.

A new user runs only the README's test command; tests that need a system program (mbpoll, mosquitto, chromium,
aravis) call `require_debian` so that command installs what it can and skips, saying why, what it cannot.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings

import pytest

APT_TIMEOUT_S = 600  # a fresh machine's first `apt-get update` plus a browser download


@functools.cache
def _apt_updated() -> bool:
    """Refresh the package lists once per test session."""
    try:
        result = subprocess.run(
            ["apt-get", "update", "-qq"], check=False, capture_output=True, timeout=APT_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@functools.cache
def _install(packages: tuple[str, ...]) -> str | None:
    """Install `packages` with apt-get; None when done, else the reason it could not be."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available on this machine"
    if os.geteuid() != 0:
        return "installing Debian packages needs root"
    if not _apt_updated():
        return "apt-get update failed (no package registry reachable?)"
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get install {' '.join(packages)} failed: {exc}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return f"apt-get install {' '.join(packages)} failed: {last}"
    return None


def require_debian(*packages: str, programs: tuple[str, ...] = ()) -> None:
    """Make sure `programs` are on PATH, installing `packages` if needed; skip the test loudly if not."""
    missing = [p for p in programs if shutil.which(p) is None]
    if programs and not missing:
        return
    reason = _install(tuple(packages))
    still = [p for p in programs if shutil.which(p) is None]
    if reason is None and not still:
        return
    why = reason or f"{', '.join(still)} still missing after installing {' '.join(packages)}"
    message = f"SKIPPED: needs Debian {' '.join(packages)}: {why}"
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)
