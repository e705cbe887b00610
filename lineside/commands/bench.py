"""`lineside bench`: where every millisecond goes, from session.run to the robot's register, in one table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.bench import BenchOptions, BenchReport, render, run_bench
from edge.bench.model import compare_floors, load_frames, open_detector, parse_frame_size
from edge.bench.table import render_summary
from edge.errors import LinesideError
from edge.i18n import say
from edge.modelstore.card import load_verified, read_card

EXAMPLES = """examples:
  lineside bench                           demo model and parts: floor, detector, end-to-end, throughput, RSS
  lineside bench --parts 300 --seconds 20  more parts, a longer throughput window
  lineside bench --model models/pcb/2.0 --frame 1280x960
  lineside bench --peer ultralytics        the same ONNX through ultralytics predict (train extra)
  lineside bench --suite --peer ultralytics  fp32 and INT8 at 320 and 640, one table each and a summary
  lineside bench --imgsz 640 --weights best.pt --int8   the model's own weights at 640, and its INT8 copy
  lineside bench --stage models/demo-anomaly/1.1.0   the demo detector chained with a judge: each stage
  lineside bench --json > bench.json       for machines
Figures are ratios to the floor (session.run on a ready tensor) measured in the same run: the machine
may be noisy, the ratios less so. Benchmarks are not tests: nothing here fails on a slow figure.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], lang: str) -> None:
    """Add `bench`: an engineer's command; only its line in `lineside --help` is said in `lang`."""
    parser = subparsers.add_parser(
        "bench",
        help=say("help.bench", lang),
        description="Benchmark the appliance against its model's floor: one table, all figures from one run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", type=Path, action="append", help="model folder (model.onnx + card.json); default: demo"
    )
    parser.add_argument(
        "--imgsz",
        type=int,
        action="append",
        metavar="N",
        help="input size(s) to measure; another size than the model's is exported (train extra): from"
        " --weights, else an untrained YOLOv8n timing twin with the card's classes",
    )
    parser.add_argument("--weights", type=Path, help="the model's .pt weights, for --imgsz exports")
    parser.add_argument("--int8", action="store_true", help="also an INT8 copy of each model (train extra)")
    parser.add_argument("--calib", type=Path, help="--int8 calibration images (default: the bench parts)")
    parser.add_argument("--suite", action="store_true", help="--imgsz 320 --imgsz 640 --int8 in one go")
    parser.add_argument(
        "--frame", metavar="WxH", help="resize the frames to WxH (default: demo parts, 640x480)"
    )
    parser.add_argument("--parts", type=int, default=100, metavar="N", help="robot-triggered parts (100)")
    parser.add_argument("--iterations", type=int, default=200, metavar="N", help="in-process runs (200)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="throughput window (10)")
    parser.add_argument(
        "--threads", type=int, metavar="N", help="onnxruntime threads (default: auto, a line's: CPUs - 1)"
    )
    parser.add_argument(
        "--poll-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="robot: pause between reads (0: back to back)",
    )
    parser.add_argument("--model-only", action="store_true", help="in-process figures only, no appliance")
    parser.add_argument(
        "--stage",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a judge after the model (classify, anomaly); repeat for a chain: each stage and the chain",
    )
    parser.add_argument("--peer", choices=("ultralytics",), help="also time this implementation")
    parser.add_argument(
        "--no-alarms", action="store_true", help="the appliance without its line alarms (spc.enabled: false)"
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.set_defaults(handler=handle)


def ultralytics_peer(model_dir: Path) -> tuple[Callable[[npt.NDArray[np.uint8]], object], str]:
    """ultralytics' own predict on the same ONNX file; LinesideError when the train extra is missing."""
    try:
        from ultralytics import YOLO  # type: ignore[attr-defined]
    except ImportError as exc:
        raise LinesideError(
            f"--peer ultralytics needs the train extra (pip install 'lineside[train]'): {exc}"
        ) from None
    import ultralytics

    card, onnx_path = load_verified(model_dir)
    model = YOLO(str(onnx_path), task="detect")
    size = (card.input.height, card.input.width)
    conf, iou = card.thresholds.confidence, card.thresholds.iou

    def predict(frame: npt.NDArray[np.uint8]) -> object:
        return model.predict(frame, imgsz=size, conf=conf, iou=iou, device="cpu", verbose=False)

    with _stdout_to_stderr():  # the first predict loads its backend and says so on stdout
        predict(np.zeros((*size, 3), np.uint8))
    return predict, f"ultralytics {ultralytics.__version__} YOLO.predict, same ONNX, its own threads"


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """ultralytics prints progress on stdout (file descriptor 1); the bench's stdout is its table only."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@dataclass(frozen=True)
class Variant:
    """One model to bench: a label for the summary, its folder, and the fp32 run it pairs with."""

    label: str
    model_dir: Path
    fp32_label: str | None = None  # set on INT8 copies


def variants(args: argparse.Namespace, work_dir: Path) -> list[Variant]:
    """The models the arguments ask for, exported and quantised into work_dir where needed."""
    from lineside.demo import demo_model_dir, demo_parts_dir

    sizes = [320, 640] if args.suite else list(args.imgsz or [])
    out: list[Variant] = []
    for model_dir in [m.resolve() for m in (args.model or [demo_model_dir()])]:
        card = read_card(model_dir)
        for size in sizes or [card.input.width]:
            label = f"{card.name} {card.version} fp32 {size}"
            sized = model_dir
            if (size, size) != (card.input.width, card.input.height):
                from training.bench_models import export_at

                sized = work_dir / "models" / f"{card.name}-{size}"
                with _stdout_to_stderr():
                    exported = export_at(model_dir, size, sized, args.weights)
                label = f"{exported.name} {exported.version} fp32 {size}"
            out.append(Variant(label, sized))
            if args.int8 or args.suite:
                out.append(_int8_variant(sized, size, label, args.calib or demo_parts_dir(), work_dir))
    return out


def _int8_variant(model_dir: Path, size: int, fp32_label: str, calib: Path, work_dir: Path) -> Variant:
    """The shipped INT8 sibling (`<dir>-int8`) when there is one, else a copy quantised now."""
    sibling = model_dir.with_name(model_dir.name + "-int8")
    if (sibling / "card.json").is_file() and read_card(sibling).precision == "int8":
        card = read_card(sibling)
        return Variant(f"{card.name} {card.version} int8 {size}", sibling, fp32_label)
    from training.quantize import quantize_model

    out = work_dir / "models" / f"{model_dir.name}-{size}-int8"
    card = quantize_model(model_dir, calib, out)
    return Variant(f"{card.name} {card.version} int8 {size} (quantised now)", out, fp32_label)


def options_from(
    args: argparse.Namespace, work_dir: Path, model_dir: Path | None = None, imgsz: int | None = None
) -> BenchOptions:
    from lineside.demo import demo_config, demo_model_dir, demo_parts_dir

    detector = demo_config(work_dir / "state").detector
    if args.threads is not None:
        if args.threads < 0:
            raise LinesideError("--threads: must be 0 (auto) or more")
        detector = detector.model_copy(update={"threads": args.threads})
    model_dir = (model_dir or demo_model_dir()).resolve()
    peer, label = ultralytics_peer(model_dir) if args.peer == "ultralytics" else (None, "")
    return BenchOptions(
        model_dir=model_dir,
        parts_dir=demo_parts_dir(),
        work_dir=work_dir,
        run_command=(sys.executable, "-m", "lineside.cli", "run", "--quiet"),
        detector=detector,
        frame_size=parse_frame_size(args.frame) if args.frame else None,
        imgsz=imgsz,
        parts=args.parts,
        iterations=args.iterations,
        throughput_s=args.seconds,
        poll_ms=args.poll_ms,
        appliance=not args.model_only,
        peer=peer,
        peer_label=label,
        stages=tuple(args.stage),  # relative to here: write_station makes them absolute for the appliance
        alarms=not args.no_alarms,
    )


def _speedups(runs: list[tuple[Variant, BenchReport]], options: BenchOptions) -> list[tuple[str, float]]:
    """INT8 over its fp32 model at the floor, measured again side by side (alternating blocks)."""
    by_label = {v.label: v for v, _ in runs}
    frame = load_frames(options.parts_dir, options.frame_size, limit=1)[0]
    out = []
    for variant, _ in runs:
        if variant.fp32_label is None:
            continue
        pair = [
            open_detector(d, options.detector)[0]
            for d in (by_label[variant.fp32_label].model_dir, variant.model_dir)
        ]
        fp32, int8 = compare_floors(pair, frame)
        out.append((f"{variant.label} vs fp32 (side by side)", fp32.p50_ms / int8.p50_ms))
    return out


def handle(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lineside-bench-") as tmp:
        work = Path(tmp)
        try:
            runs: list[tuple[Variant, BenchReport]] = []
            for i, variant in enumerate(variants(args, work)):
                size = read_card(variant.model_dir).input.width
                options = options_from(args, work / f"run{i}", variant.model_dir, size)
                report = run_bench(options)
                runs.append((variant, report))
                if not args.json:
                    print(render(report), flush=True)
            speedups = _speedups(runs, options) if len(runs) > 1 else []
        except LinesideError as exc:
            print(f"lineside bench: {exc}", file=sys.stderr)
            return 1
    if args.json:
        reports = [r.as_dict() | {"label": v.label} for v, r in runs]
        print(
            json.dumps(
                reports[0] if len(reports) == 1 else {"runs": reports, "int8_speedups": speedups},
                indent=2,
                default=str,
            )
        )
    elif len(runs) > 1:
        print(render_summary([(v.label, r) for v, r in runs], speedups), end="")
    return 0
