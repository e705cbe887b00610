"""Resource samples of the appliance over time, read from /proc: RSS and open file descriptors per
process, and the records folder's disk use against its quota."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

FILLER = "filler.bin"  # lineside.soak.faults fills the records disk with this file


@dataclass(frozen=True)
class Sample:
    """One sample: seconds since the campaign started, per role (rss MB, open fds), records MB."""

    t_s: float
    processes: dict[str, tuple[float, int]]
    records_mb: float


def process_figures(pid: int) -> tuple[float, int] | None:
    """(RSS MB, open fds) of a live process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(float(line.split()[1]) / 1024.0, 1), fds
    return None


def folder_mb(folder: Path) -> float:
    """Bytes of the files under `folder` (images, database, WAL), in MB."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name == FILLER:
                continue  # the records-full fault's own filler is not records
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return round(total / (1024.0 * 1024.0), 2)


def sample(t_s: float, pids: dict[str, int], records_dir: Path) -> Sample:
    found = {role: f for role, pid in pids.items() if (f := process_figures(pid)) is not None}
    return Sample(round(t_s, 1), found, folder_mb(records_dir))


def growth(samples: list[Sample], role: str, skip: int = 2) -> tuple[float, int] | None:
    """(RSS MB, fds) growth of a role from its first steady sample (after `skip` warm-up samples) to
    its last, or None with too few samples."""
    seen = [s.processes[role] for s in samples if role in s.processes][skip:]
    if len(seen) < 2:
        return None
    return round(seen[-1][0] - seen[0][0], 1), seen[-1][1] - seen[0][1]
