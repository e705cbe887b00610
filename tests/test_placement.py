"""CPU placement: the plan for a CPU set, and a real line's workers on the CPUs and priorities it names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.runtime.placement import Placement, line_threads, pinned, plan, usable_cpus
from tests.line import make_station, running_line


def test_one_thread_on_two_cpus_gets_the_last_and_the_rest_the_first() -> None:
    placement = plan({0, 1}, 1)
    assert placement == Placement(inference=frozenset({1}), service=frozenset({0}))
    assert placement is not None and placement.threads == 1


def test_explicit_threads_take_the_last_cpus_by_position() -> None:
    eight = set(range(8))
    assert plan(eight, 7) == Placement(frozenset(range(1, 8)), frozenset({0}))
    assert plan(eight, 3) == Placement(frozenset({5, 6, 7}), frozenset(range(5)))
    # A CPU set narrowed by systemd's CPUAffinity= is split the same way, by position.
    assert plan({2, 5, 9}, 2) == Placement(frozenset({5, 9}), frozenset({2}))


def test_nothing_to_split_leaves_placement_to_the_os() -> None:
    assert plan({0, 1}, 0) is None  # 0: onnxruntime uses every CPU (a line resolves auto first)
    assert plan({0}, 1) is None
    assert plan({0, 1}, 2) is None  # as many threads as CPUs: nothing left for the rest
    assert plan({0, 1, 2, 3}, 9) is None


def test_auto_threads_on_a_placed_line_keep_one_cpu_for_the_rest() -> None:
    assert line_threads(0, {0, 1}, "auto") == 1
    assert line_threads(0, set(range(8)), "auto") == 7
    assert plan({0, 1}, line_threads(0, {0, 1}, "auto")) == Placement(frozenset({1}), frozenset({0}))


def test_explicit_threads_placement_off_or_one_cpu_leave_auto_alone() -> None:
    assert line_threads(2, {0, 1}, "auto") == 2  # a station's own choice stands
    assert line_threads(0, {0, 1}, "off") == 0  # onnxruntime's auto: every CPU
    assert line_threads(0, {3}, "auto") == 0  # one CPU: nothing to keep


@pytest.mark.skipif(len(usable_cpus()) < 2, reason="pinning needs 2 usable CPUs")
def test_pinned_returns_the_thread_to_its_cpus() -> None:
    before = usable_cpus()
    one = frozenset({max(before)})
    with pinned(one):
        assert usable_cpus() == one
    assert usable_cpus() == before


def _threads(pid: int) -> dict[str, set[frozenset[int]]]:
    """Each thread name of a process -> the CPU sets its threads may run on."""
    found: dict[str, set[frozenset[int]]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        status = (task / "status").read_text()
        cpus = next(
            line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list")
        )
        found.setdefault(name, set()).add(frozenset(_cpu_list(cpus)))
    return found


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for chunk in text.split(","):
        low, _, high = chunk.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


@pytest.mark.skipif(len(usable_cpus()) < 2, reason="placement needs 2 usable CPUs")
@pytest.mark.parametrize("configured", ["explicit", "auto"])
def test_a_running_line_keeps_the_model_on_its_cpus_and_records_at_low_priority(
    tmp_path: Path, configured: str
) -> None:
    threads = len(usable_cpus()) - 1  # leaves CPUs to the rest: placement applies
    # Auto threads (0) on a placed line are the same count: every usable CPU but one.
    config, _ = make_station(
        tmp_path, "gd", extra={"detector": {"threads": threads if configured == "explicit" else 0}}
    )
    expected = plan(usable_cpus(), threads)
    assert expected is not None
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 4, 60, "4 parts judged")
        found = {w: line.worker_pid(w) for w in ("inference", "capture", "recorder", "robotlink")}
        pids = {w: pid for w, pid in found.items() if pid is not None}
        assert len(pids) == 4, found
        inference = _threads(pids["inference"])
        # The worker's own thread (it runs the session) is on the inference CPUs only.
        assert expected.inference in inference["lineside-infere"], inference
        for worker in ("capture", "recorder", "robotlink"):
            seen = _threads(pids[worker])
            assert seen[f"lineside-{worker}"[:15]] == {expected.service}, (worker, seen)
            # zeromq's I/O threads carry every hop: any CPU may run them.
            assert seen["ZMQbg/IO/0"] == {expected.service | expected.inference}, (worker, seen)
        assert os.getpriority(os.PRIO_PROCESS, pids["recorder"]) == 10
        assert os.getpriority(os.PRIO_PROCESS, pids["robotlink"]) == os.getpriority(os.PRIO_PROCESS, 0)
    log = "".join(line.stderr)
    assert f"cpu placement: {expected.describe()}" in log
    auto_line = f"detector.threads auto: {threads} onnxruntime threads, 1 of {len(usable_cpus())} CPUs kept"
    assert (auto_line in log) == (configured == "auto"), log


@pytest.mark.skipif(len(usable_cpus()) < 2, reason="placement needs 2 usable CPUs")
@pytest.mark.parametrize(
    "extra",
    [
        {"supervisor": {"cpu_placement": "off"}, "detector": {"threads": 1}},
        {"supervisor": {"cpu_placement": "off"}, "detector": {"threads": 0}},
    ],
    ids=["off", "off-auto-threads"],
)
def test_placement_off_leaves_every_worker_on_every_cpu(
    tmp_path: Path, extra: dict[str, dict[str, object]]
) -> None:
    config, _ = make_station(tmp_path, "gd", extra=extra)
    with running_line(config) as line:
        line.wait_for(lambda: len(line.part_lines()) >= 2, 60, "2 parts judged")
        pid = line.worker_pid("inference")
        assert pid is not None
        assert _threads(pid)["lineside-infere"] == {usable_cpus()}
        recorder = line.worker_pid("recorder")
        assert recorder is not None and os.getpriority(os.PRIO_PROCESS, recorder) == 10
