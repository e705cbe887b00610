"""Where the workers run: onnxruntime on CPUs of its own, everything else beside it, records last.

When `detector.threads` leaves CPUs to the rest of the appliance, `supervisor.cpu_placement: auto` pins
the session's threads to the last usable CPUs and every other worker to the others: with 1 thread on 2
cores and the scheduler free, in-line `session.run` took 1.2x its floor in robot mode (capture's
read-ahead decode and the recorder took turns on inference's core), pinned 1.0x (docs/performance.md).
Auto threads (0) on a line with placement on keep one CPU for the rest of the line (`line_threads`).
The workers whose work can wait (records, the status page, the fleet feed) always run at a lower
priority, so their turn never comes before a part's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Workers nothing on a part's critical path waits for: they yield the CPU to those that are.
BACKGROUND_WORKERS = frozenset({"recorder", "status", "fleet", "aas", "opcua", "alarms"})
BACKGROUND_NICE = 10


@dataclass(frozen=True)
class Placement:
    """CPUs for onnxruntime's threads (`inference`) and for all other work (`service`); both non-empty."""

    inference: frozenset[int]
    service: frozenset[int]

    @property
    def threads(self) -> int:
        """Intra-op threads that fill the inference CPUs, one each."""
        return len(self.inference)

    def describe(self) -> str:
        return f"onnxruntime on CPU {_cpus(self.inference)}, the rest on CPU {_cpus(self.service)}"


def plan(usable: set[int] | frozenset[int], threads: int) -> Placement | None:
    """Split the usable CPUs: `threads` of them for inference, the rest for everything else.

    None when there is nothing to split: auto threads (0: onnxruntime uses every CPU), one CPU, or as
    many threads as CPUs; then the OS places every worker.
    """
    cpus = sorted(usable)
    if threads < 1 or len(cpus) < 2 or threads >= len(cpus):
        return None
    # The last CPUs for inference: CPU 0 is where the kernel and most interrupts are handled by default.
    return Placement(inference=frozenset(cpus[-threads:]), service=frozenset(cpus[:-threads]))


def line_threads(configured: int, usable: frozenset[int] | set[int], cpu_placement: str) -> int:
    """The onnxruntime threads of a running line's models: an explicit `detector.threads` stands.

    Auto (0) with placement on is every usable CPU but one, which the rest of the line keeps (capture,
    the robot link and the recorder use most of a core at full rate). With all CPUs given to onnxruntime,
    each parallel operator waits for whichever of its threads the line's work has pre-empted. Measured on
    2 cores, one thread + placement answered the robot sooner: a detector alone in 24.3-24.4 ms against
    25.2-28.9 ms with two threads, a detector + classifier chain in 36.4 against 42.9 ms, for a 2-4 % lower
    sustained rate (docs/performance.md, "Auto threads"). Auto with placement off, or on one CPU, stays 0:
    onnxruntime then uses every CPU (`auto_threads`), as in one-off commands such as `lineside eval`.
    """
    if configured > 0 or cpu_placement != "auto" or len(usable) < 2:
        return configured
    return len(usable) - 1


def usable_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity, which systemd's CPUAffinity= narrows)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no affinity API, nothing to place
        return frozenset(range(os.cpu_count() or 1))


def pin_thread(cpus: frozenset[int]) -> bool:
    """Keep the calling thread (and the threads it starts from now on) on `cpus`; False if refused."""
    try:
        os.sched_setaffinity(0, cpus)  # Linux: pid 0 is the calling thread, not the whole process
    except (AttributeError, OSError) as exc:
        log.warning("cannot pin to CPU %s (%s): the OS places this worker", _cpus(cpus), exc)
        return False
    return True


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the body on `cpus` (None: as is), then return to the thread's CPUs before it.

    For creating an onnxruntime session: its thread pool starts on, and keeps, the creator's CPUs.
    """
    if cpus is None:
        yield
        return
    before = usable_cpus()
    pin_thread(cpus)
    try:
        yield
    finally:
        pin_thread(before)


def lower_priority(name: str) -> None:
    """Background workers give way to the line's: a higher nice value (errors only logged)."""
    if name not in BACKGROUND_WORKERS:
        return
    with contextlib.suppress(AttributeError):  # no os.nice: not POSIX
        try:
            os.nice(BACKGROUND_NICE)
        except OSError as exc:
            log.warning("%s: cannot lower its priority (%s)", name, exc)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
