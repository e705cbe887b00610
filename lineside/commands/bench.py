"""`lineside bench`: where every millisecond goes, from session.run to the robot's register, in one table."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge.bench import BenchOptions, render, run_bench
from edge.bench.model import parse_frame_size
from edge.errors import LinesideError
from edge.modelcard import load_verified

EXAMPLES = """examples:
  lineside bench                           demo model and parts: floor, detector, end-to-end, throughput, RSS
  lineside bench --parts 300 --seconds 20  more parts, a longer throughput window
  lineside bench --model models/pcb/2.0 --frame 1280x960
  lineside bench --peer ultralytics        the same ONNX through ultralytics predict (train extra)
  lineside bench --json > bench.json       for machines
Figures are ratios to the floor (session.run on a ready tensor) measured in the same run: the machine
may be noisy, the ratios less so. Benchmarks are not tests: nothing here fails on a slow figure.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure the model's floor, the detector, end-to-end latency, throughput, memory, start-up",
        description="Benchmark the appliance against its model's floor: one table, all figures from one run.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, help="model folder (model.onnx + card.json); default: demo")
    parser.add_argument("--imgsz", type=int, metavar="N", help="input size wanted (the model decides it)")
    parser.add_argument(
        "--frame", metavar="WxH", help="resize the frames to WxH (default: demo parts, 640x480)"
    )
    parser.add_argument("--parts", type=int, default=100, metavar="N", help="robot-triggered parts (100)")
    parser.add_argument("--iterations", type=int, default=200, metavar="N", help="in-process runs (200)")
    parser.add_argument("--seconds", type=float, default=10.0, metavar="S", help="throughput window (10)")
    parser.add_argument("--threads", type=int, metavar="N", help="onnxruntime threads (default: the demo's)")
    parser.add_argument(
        "--poll-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="robot: pause between reads (0: back to back)",
    )
    parser.add_argument("--model-only", action="store_true", help="in-process figures only, no appliance")
    parser.add_argument("--peer", choices=("ultralytics",), help="also time this implementation")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.set_defaults(handler=handle)


def ultralytics_peer(model_dir: Path) -> tuple[Callable[[npt.NDArray[np.uint8]], object], str]:
    """ultralytics' own predict on the same ONNX file; LinesideError when the train extra is missing."""
    try:
        from ultralytics import YOLO
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

    return predict, f"ultralytics {ultralytics.__version__} YOLO.predict, same ONNX"


def options_from(args: argparse.Namespace, work_dir: Path) -> BenchOptions:
    from lineside.demo import demo_config, demo_model_dir, demo_parts_dir

    detector = demo_config(work_dir / "state").detector
    if args.threads is not None:
        if args.threads < 0:
            raise LinesideError("--threads: must be 0 (onnxruntime chooses) or more")
        detector = detector.model_copy(update={"threads": args.threads})
    model_dir = (args.model or demo_model_dir()).resolve()
    peer, label = ultralytics_peer(model_dir) if args.peer == "ultralytics" else (None, "")
    return BenchOptions(
        model_dir=model_dir,
        parts_dir=demo_parts_dir(),
        work_dir=work_dir,
        run_command=(sys.executable, "-m", "lineside.cli", "run", "--quiet"),
        detector=detector,
        frame_size=parse_frame_size(args.frame) if args.frame else None,
        imgsz=args.imgsz,
        parts=args.parts,
        iterations=args.iterations,
        throughput_s=args.seconds,
        poll_ms=args.poll_ms,
        appliance=not args.model_only,
        peer=peer,
        peer_label=label,
    )


def handle(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lineside-bench-") as tmp:
        try:
            report = run_bench(options_from(args, Path(tmp)))
        except LinesideError as exc:
            print(f"lineside bench: {exc}", file=sys.stderr)
            return 1
    print(report.to_json() if args.json else render(report), end="" if not args.json else "\n")
    return 0
