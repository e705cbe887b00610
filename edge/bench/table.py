"""The bench report as one plain-text table: p50, p99, each as a ratio to the floor p50, the target."""

from __future__ import annotations

from dataclasses import dataclass

from edge.bench import report as rep
from edge.bench.report import BenchReport
from edge.bench.stats import Spread


@dataclass(frozen=True)
class _Row:
    label: str
    p50: str = ""
    p99: str = ""
    r50: str = ""
    r99: str = ""
    target: str = ""


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _timed(label: str, s: Spread, floor_ms: float, target: str = "") -> _Row:
    r50, r99 = s.ratio(floor_ms)
    return _Row(label, _ms(s.p50_ms), _ms(s.p99_ms), _x(r50), _x(r99), target)


def _step(label: str, s: Spread) -> _Row:
    return _Row(f"  {label}", _ms(s.p50_ms), _ms(s.p99_ms))


def _model_rows(r: BenchReport) -> list[_Row]:
    floor = r.floor.p50_ms
    rows = [_timed(f"floor: session.run, ready tensor (n={r.floor.count})", r.floor, floor, "(the floor)")]
    for label, burst in zip(
        ("before the robot run", "between", "after free-run"), r.floor_bursts, strict=False
    ):
        rows.append(_timed(f"  floor again, {label} (n={burst.count})", burst, floor, "(drift)"))
    d50 = r.detector.p50_ms / floor
    target = f"p50 <= {rep.TARGET_DETECTOR_P50:.2f}x: {_met(d50 <= rep.TARGET_DETECTOR_P50)}"
    rows.append(_timed(f"detector alone: detect + rules (n={r.detector.count})", r.detector, floor, target))
    names = {"preprocess": "pre-process", "infer": "session.run", "decode": "decode + NMS", "rules": "rules"}
    rows += [_step(names[k], s) for k, s in r.detector_steps.items()]
    if r.peer is not None:
        rows.append(_timed(f"peer: {r.peer_label} (n={r.peer.count})", r.peer, floor, "(comparison)"))
    return rows


def _e2e_rows(r: BenchReport) -> list[_Row]:
    e2e = r.end_to_end
    if e2e is None:
        return []
    near = r.floor_near("end_to_end")
    p50, p99 = e2e.updated.ratio(near)
    ok = p50 <= rep.TARGET_E2E_P50 and p99 <= rep.TARGET_E2E_P99
    target = f"p50 <= {rep.TARGET_E2E_P50:.2f}x, p99 <= {rep.TARGET_E2E_P99:.2f}x: {_met(ok)}"
    faults = f", {e2e.faults} FAULT" if e2e.faults else ""
    label = f"end-to-end: TRIGGER_SEQ -> RESULT_WORD set (n={e2e.updated.count}{faults}; floor {_ms(near)})"
    rows = [_timed(label, e2e.updated, near, target)]
    rows += [_step(label, s) for label, s in e2e.steps_ms.items()]
    pause = "back to back" if e2e.poll_ms == 0 else f"every {e2e.poll_ms:g} ms"
    seen = f"  ... -> RESULT_WORD seen by the robot, polling {pause} (n={e2e.total.count})"
    rows.append(_timed(seen, e2e.total, near, "(the robot's polling included)"))
    rows.append(_step(f"one robot read of 11 registers (polled {pause})", e2e.read_rtt))
    return rows


def _throughput_row(r: BenchReport) -> list[_Row]:
    t = r.throughput
    if t is None:
        return []
    floor_rate = 1000.0 / r.floor_near("throughput")
    ratio = t.parts_per_s / floor_rate
    faults = f", {t.faults} FAULT" if t.faults else ""
    met = _met(ratio >= rep.TARGET_THROUGHPUT)
    return [
        _Row(
            f"sustained free-run, takt 0 ({t.parts} parts in {t.window_s:g} s{faults})",
            f"{t.parts_per_s:.1f} parts/s",
            "",
            _x(ratio),
            "",
            f">= {rep.TARGET_THROUGHPUT:.2f}x 1/floor ({floor_rate:.1f}/s): {met}",
        ),
        *(_step(label, s) for label, s in t.steps_ms.items()),
    ]


def _chain_rows(r: BenchReport) -> list[_Row]:
    """Each judge against its own floor, the anomaly search's share, the chain against the sum of floors."""
    c = r.chain
    if c is None:
        return []
    rows = []
    for s in c.stages:
        floor = s.floor.p50_ms
        rows.append(
            _timed(f"stage {s.name} ({s.kind}): floor, session.run (n={s.floor.count})", s.floor, floor)
        )
        ok = s.alone.p50_ms / floor <= rep.TARGET_STAGE_P50
        target = f"p50 <= {rep.TARGET_STAGE_P50:.2f}x its floor: {_met(ok)}"
        rows.append(_timed(f"  stage {s.name} alone: pre-process, run, verdict", s.alone, floor, target))
        if s.search_share is not None:
            met = _met(s.search_share <= rep.TARGET_SEARCH_SHARE)
            target = f"<= {100 * rep.TARGET_SEARCH_SHARE:.0f} % of the backbone: {met}"
            share = f"{100 * s.search_share:.0f} %"
            rows.append(_Row("  bank search / rest of the model (onnxruntime profile)", share, target=target))
    total = c.sum_of_floors_ms
    rows.append(
        _timed(f"chain in process, every stage (sum of floors {_ms(total)})", c.chain, total, "(vs the sum)")
    )
    e2e = r.end_to_end
    if e2e is not None:
        ratio = e2e.updated.p50_ms / total
        met = _met(ratio <= rep.TARGET_CHAIN_E2E_P50)
        target = f"p50 <= {rep.TARGET_CHAIN_E2E_P50:.2f}x the sum of floors: {met}"
        rows.append(
            _timed("chain end-to-end over Modbus (above), over the sum of floors", e2e.updated, total, target)
        )
    return rows


def _process_rows(r: BenchReport) -> list[_Row]:
    rows: list[_Row] = []
    if r.memory:
        total, pss = r.total_rss_mb(), r.total_pss_mb()
        rows.append(
            _Row(
                f"RSS, all {len(r.memory)} processes" + (f" (PSS {pss:.0f} MB)" if pss is not None else ""),
                f"{total:.0f} MB",
                target=f"<= {rep.TARGET_RSS_MB:.0f} MB: {_met(total <= rep.TARGET_RSS_MB)}",
            )
        )
        rows += [_Row(f"  {m.name} (pid {m.pid})", f"{m.rss_mb:.0f} MB") for m in r.memory]
    warm = r.model_load_s + r.model_warmup_s
    for i, start in enumerate(r.startups):
        ok = start.ready_s <= rep.TARGET_READY_S + warm
        rows.append(
            _Row(
                f"start -> READY, start {i + 1} (Modbus up {start.link_s:.2f} s)",
                f"{start.ready_s:.2f} s",
                target=f"<= {rep.TARGET_READY_S:g} s + warm-up: {_met(ok)}",
            )
        )
    load = f"model load {r.model_load_s:.2f} s + warm-up {r.model_warmup_s:.2f} s (bench process)"
    rows.append(_Row(f"  of which {load}" if r.startups else load, f"{warm:.2f} s"))
    return rows


def render(r: BenchReport) -> str:
    """The whole report: a header, one table, the notes."""
    m, f = r.model, r.frames
    header = [
        f"lineside bench: model {m['name']} {m['version']} ({m['dtype']}, input {m['input']}, "
        f"{m['providers']}, {m['threads']} threads, graph optimisation {m['graph_optimization']})",
        f"frames {f['size']} ({f['count']} from {f['folder']}); {r.machine['cpus']} CPUs, load "
        f"{r.machine['load_at_start']} at start; onnxruntime {r.machine['onnxruntime']}",
        "x floor: p50 and p99 over the floor p50; the appliance's figures over the floor measured next to",
        "them in time (the mean of the bursts before and after); throughput over 1 / that floor",
        "",
    ]
    rows = [_Row("figure", "p50", "p99", "x floor", "x floor", "target (issue 7)")]
    rows += _model_rows(r) + _chain_rows(r) + _e2e_rows(r) + _throughput_row(r) + _process_rows(r)
    widths = [max(len(getattr(row, name)) for row in rows) for name in ("label", "p50", "p99", "r50", "r99")]
    lines = []
    for row in rows:
        cells = (row.label.ljust(widths[0]), row.p50.rjust(widths[1]), row.p99.rjust(widths[2]))
        ratios = (row.r50.rjust(widths[3]), row.r99.rjust(widths[4]))
        lines.append("  ".join((*cells, *ratios, row.target)).rstrip())
    notes = [f"- {note}" for note in r.notes]
    return "\n".join(header + lines + (["", "notes:", *notes] if notes else [])) + "\n"


def render_summary(runs: list[tuple[str, BenchReport]], speedups: list[tuple[str, float]]) -> str:
    """One line per bench run (each a ratio to its own floor), and the INT8 speed-ups at the floor."""
    head = ("run", "floor p50", "detector", "peer", "e2e p50 / p99", "session.run in line", "throughput")
    rows = [(*head, "RSS", "READY")]
    for label, r in runs:
        x = r.ratios()
        e2e, t = r.end_to_end, r.throughput
        infer = e2e.steps_ms.get("inference: session.run") if e2e is not None else None
        rows.append(
            (
                label,
                _ms(r.floor.p50_ms),
                _x(x["detector_p50"]),
                _x(x["peer_p50"]) if "peer_p50" in x else "",
                f"{_x(x['end_to_end_p50'])} / {_x(x['end_to_end_p99'])}" if "end_to_end_p50" in x else "",
                _ms(infer.p50_ms) if infer is not None else "",
                f"{_x(x['throughput'])} ({t.parts_per_s:.1f}/s)" if t is not None else "",
                f"{r.total_rss_mb():.0f} MB" if r.memory else "",
                f"{max(s.ready_s for s in r.startups):.2f} s" if r.startups else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) + 2)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [
        f"INT8 speed-up at the floor, {label}: {ratio:.2f}x (target >= 1.70x: {_met(ratio >= 1.7)})"
        for label, ratio in speedups
    ]
    return "\n".join(lines) + "\n"
