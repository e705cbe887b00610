"""Offline, resumable ultralytics training: settings (recipe + flags), the network guard, one training run.

Never a download: the model is a model YAML or a local checkpoint, ultralytics runs with YOLO_OFFLINE and
its config under the work dir, an audit hook refuses every name lookup and connection, and the font its
plots want (Arial.ttf, normally fetched) is matplotlib's bundled DejaVu Sans placed where it looks first.
"""

from __future__ import annotations

import csv
import functools
import importlib
import ipaddress
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.atomic import atomic_write_text
from edge.errors import LinesideError

BLOCKED = "lineside: blocked network access"
FINISHED_STAMP = "finished.json"
ARGS_STAMP = "lineside-args.json"
# ultralytics augmentation hyperparameters a recipe may set (its own names and meanings)
AUGMENT_KEYS = frozenset(
    [
        "hsv_h",
        "hsv_s",
        "hsv_v",
        "degrees",
        "translate",
        "scale",
        "shear",
        "perspective",
        "flipud",
        "fliplr",
        "bgr",
        "mosaic",
        "mixup",
        "cutmix",
        "copy_paste",
        "erasing",
        "close_mosaic",
    ]
)
# Settings that change what is trained; a re-run with other values is refused rather than "resumed".
RUN_IDENTITY = (
    "model", "imgsz", "epochs", "time_hours", "batch", "seed", "optimizer", "lr0", "warmup_epochs",
    "augment", "albumentations", "tile", "tile_overlap", "tile_min_visibility",
)  # fmt: skip


class TrainSettings(BaseModel):
    """What to train: a recipe file's keys, overridden by command-line flags. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Model name (card and models/<name>/).")
    model: str = Field("yolov8n.yaml", description="Model YAML (built from scratch) or a local .pt file.")
    imgsz: int = Field(640, ge=32, le=4096, description="Square training and model input size in pixels.")
    epochs: int = Field(100, ge=1, le=10000, description="Epochs to train (fewer when time_hours runs out).")
    time_hours: float | None = Field(None, gt=0, description="Wall-clock cap; ultralytics fits the epochs.")
    batch: int = Field(16, ge=1, le=1024, description="Images per optimiser step.")
    seed: int = Field(0, ge=0, description="Seed for weights, data order and augmentation.")
    device: str = Field("auto", description="auto (CUDA when available, else cpu), cpu, or a CUDA index.")
    workers: int | None = Field(None, ge=0, le=64, description="Dataloader workers; default min(8, cores).")
    patience: int = Field(0, ge=0, description="Early-stop patience in epochs; 0 trains every epoch.")
    optimizer: Literal["auto", "SGD", "AdamW", "Adam"] = Field(
        "auto", description="ultralytics' optimizer; auto picks by the number of iterations."
    )
    lr0: float | None = Field(
        None, gt=0, le=1, description="Initial learning rate (default: ultralytics' for the optimizer)."
    )
    warmup_epochs: float | None = Field(
        None,
        ge=0,
        le=100,
        description=(
            "Warm-up epochs (ultralytics' default 3). Fine-tuning a trained checkpoint wants 0: the"
            " warm-up's high bias learning rate undoes what it learnt."
        ),
    )
    augment: dict[str, float] = Field(default_factory=dict, description="ultralytics augmentation knobs.")
    albumentations: dict[str, Any] | bool = Field(
        True,
        description=(
            "Factory augmentation (training/augment.py): true its defaults, a mapping its options"
            " (lighting, exposure, blur, noise, geometry, ...), false ultralytics' own albumentations step."
        ),
    )
    tile: int | None = Field(None, ge=32, le=4096, description="Train on tiles of this size (pixels).")
    tile_overlap: float = Field(0.2, ge=0.0, lt=0.9, description="Tile overlap as a fraction of the tile.")
    tile_min_visibility: float = Field(
        0.4, gt=0.0, le=1.0, description="A box cut by a tile edge is kept if this fraction stays visible."
    )
    target_escape: float | None = Field(
        None, ge=0.0, le=1.0, description="Part escape rate `lineside eval` chooses thresholds for."
    )
    plots: bool = Field(True, description="ultralytics plots (offline font); off saves time on tiny runs.")
    cache: Literal["ram", "disk", "none"] = Field("ram", description="Image cache for the dataloader.")
    amp: bool = Field(False, description="Mixed precision on CUDA (its self-check is skipped offline).")

    def identity(self) -> dict[str, object]:
        return {key: getattr(self, key) for key in RUN_IDENTITY}


def load_settings(recipe: Path | None, overrides: dict[str, object]) -> TrainSettings:
    """Recipe keys (if any), then every override that is not None; one-line error naming the field."""
    values: dict[str, object] = {}
    where = "command line"
    if recipe is not None:
        where = str(recipe)
        try:
            loaded = yaml.safe_load(recipe.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise LinesideError(f"{recipe}: unreadable recipe ({str(exc).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise LinesideError(f"{recipe}: expected a mapping of training settings")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = TrainSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise LinesideError(f"{where}: field '{field}': {first['msg']}") from None
    unknown = set(settings.augment) - AUGMENT_KEYS
    if unknown:
        raise LinesideError(f"{where}: field 'augment': unknown ultralytics knobs {sorted(unknown)}")
    if isinstance(settings.albumentations, dict):
        go_offline()
        from training.augment import load_augment_config

        load_augment_config(settings.albumentations, f"{where}: field 'albumentations'")
    return settings


def resolve_model(model: str) -> str:
    """A model YAML name/path, or an existing local checkpoint; never a name ultralytics would download."""
    if "://" in model:
        raise LinesideError(f"--model {model}: a URL; lineside never downloads models")
    path = Path(model).expanduser()
    if path.suffix in {".yaml", ".yml"}:
        return str(path.resolve()) if path.is_file() else model  # ultralytics ships yolov8n.yaml etc.
    if path.suffix == ".pt":
        if not path.is_file():
            raise LinesideError(
                f"--model {model}: no such local file, and lineside never downloads weights:"
                " give a model YAML (e.g. yolov8n.yaml) or the path of a local .pt checkpoint"
            )
        return str(path.resolve())
    raise LinesideError(f"--model {model}: expected a model YAML (.yaml) or a local checkpoint (.pt)")


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: any name lookup or network connection raises, so nothing can be fetched."""
    if event in {"socket.getaddrinfo", "socket.connect"}:
        target = args[1] if event == "socket.connect" else args[0]
        if event == "socket.connect" and isinstance(target, str):
            return  # AF_UNIX: a local IPC socket (torch dataloader workers), not the network
        if _is_loopback(target):
            return  # this machine itself: a notebook kernel, a test's own servers; never the internet
        print(f"{BLOCKED} ({event} {target!r})", file=sys.stderr)
        raise ConnectionRefusedError(f"training runs offline: {event} {target!r} refused")


def _is_loopback(target: object) -> bool:
    """True for a loopback host name or address (a getaddrinfo host or a connect address tuple)."""
    host = target[0] if isinstance(target, tuple) and target else target
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host == "localhost":
        return True
    try:
        return isinstance(host, str) and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def install_network_guard() -> None:
    """Add the refusing audit hook once per process (audit hooks cannot be removed)."""
    sys.addaudithook(_refuse_network)


def go_offline() -> None:
    """Switch off ultralytics' and albumentations' calls home (online checks, update checks, telemetry)
    and install the guard that refuses any other network access. Call before importing either."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"  # else its import asks pypi.org for a newer version
    install_network_guard()


def place_local_fonts(config_dir: Path) -> None:
    """Put matplotlib's DejaVu Sans where ultralytics' check_font looks before it would download Arial."""
    import matplotlib

    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (config_dir / name).is_file():
            shutil.copyfile(dejavu, config_dir / name)


def offline_ultralytics(work: Path) -> Any:
    """Import ultralytics configured for an offline run that writes only under `work`; return `YOLO`."""
    go_offline()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "ultralytics-config"))  # fixed at first import
    ultralytics: Any = importlib.import_module("ultralytics")  # untyped: keep mypy out of it
    place_local_fonts(Path(importlib.import_module("ultralytics.utils").USER_CONFIG_DIR))
    ultralytics.settings.update(
        {"sync": False, "datasets_dir": str(work), "runs_dir": str(work / "runs"), "weights_dir": str(work)}
    )
    return ultralytics.YOLO


def resolve_device(device: str) -> str:
    """`auto` becomes the first CUDA device when torch sees one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def epochs_done(run_dir: Path) -> int:
    """Epochs a run has completed, from its results.csv (one row per epoch)."""
    try:
        with (run_dir / "results.csv").open(newline="") as handle:
            return len(list(csv.DictReader(handle)))
    except FileNotFoundError:
        return 0


def _checkpoint_epoch(last: Path) -> int:
    """The 0-based epoch `last.pt` was saved after; ultralytics marks a finished run's checkpoint with -1."""
    import torch

    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    return int(checkpoint.get("epoch", -1))


def _trim_results(run_dir: Path, checkpoint_epoch: int) -> None:
    """Drop results.csv rows for epochs after the checkpoint: a kill between ultralytics writing an
    epoch's row and saving its checkpoint would otherwise leave that epoch in the file twice."""
    results = run_dir / "results.csv"
    try:
        lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return
    rows = list(csv.DictReader(lines, skipinitialspace=True))
    keep = [
        line
        for line, row in zip(lines[1:], rows, strict=True)
        if int(float(str(row.get("epoch", "0")).strip() or 0)) <= checkpoint_epoch + 1
    ]
    if len(keep) < len(rows):
        atomic_write_text(results, "".join(lines[:1] + keep))


def _check_same_run(run_dir: Path, settings: TrainSettings, fingerprint: str | None) -> None:
    """Refuse to continue a run that was started with other training settings."""
    stamp = run_dir / ARGS_STAMP
    wanted = json.loads(json.dumps({**settings.identity(), "data_fingerprint": fingerprint}))
    if stamp.is_file():
        started = json.loads(stamp.read_text(encoding="utf-8"))
        changed = sorted(k for k in wanted if started.get(k) != wanted[k])
        if changed:
            first = changed[0]
            raise LinesideError(
                f"{run_dir}: started with {first}={started.get(first)!r}, now {wanted[first]!r}:"
                " use another --work/--version, or delete that run folder to start over"
            )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(wanted, indent=1), encoding="utf-8")


def augmentation_callbacks(settings: TrainSettings) -> dict[str, Callable[[Any], None]]:
    """ultralytics callbacks that install training/augment.py's factory augmentation (unless turned off)."""
    if settings.albumentations is False:
        return {}
    go_offline()
    from training.augment import callback, load_augment_config

    section = settings.albumentations if isinstance(settings.albumentations, dict) else None
    return {"on_pretrain_routine_start": callback(load_augment_config(section, "albumentations"))}


def _model(yolo: Any, source: str, callbacks: dict[str, Callable[[Any], None]]) -> Any:
    model = yolo(source)
    for event, function in callbacks.items():
        model.add_callback(event, function)
    return model


def train_model(
    data_yaml: Path, settings: TrainSettings, work: Path, *, fingerprint: str | None = None
) -> Path:
    """Train (or resume, or reuse a finished run) under `work/runs/train`; return the best weights.

    `data_yaml` is a prepared work copy (see training.fingerprint.scan_dataset); with its `fingerprint`,
    an interrupted run is only continued on the same data.
    """
    work = work.resolve()
    source = resolve_model(settings.model)
    yolo = offline_ultralytics(work)
    device = resolve_device(settings.device)
    workers = settings.workers if settings.workers is not None else min(8, os.cpu_count() or 1)
    run_dir = work / "runs" / "train"
    last = run_dir / "weights" / "last.pt"
    _check_same_run(run_dir, settings, fingerprint)
    callbacks = augmentation_callbacks(settings)  # installed again on resume: a new trainer is built
    checkpoint_epoch = _checkpoint_epoch(last) if last.is_file() else None
    if (run_dir / FINISHED_STAMP).is_file() or checkpoint_epoch == -1:
        print(f"lineside train: {run_dir} already finished; not retraining", file=sys.stderr)
    elif checkpoint_epoch is not None:
        _trim_results(run_dir, checkpoint_epoch)
        print(f"lineside train: resuming {last} after {epochs_done(run_dir)} epochs", file=sys.stderr)
        _model(yolo, str(last), callbacks).train(resume=True, device=device, workers=workers)
    else:
        print(f"lineside train: training {source} on {device} into {run_dir}", file=sys.stderr)
        extra: dict[str, Any] = {"time": settings.time_hours} if settings.time_hours else {}
        if settings.optimizer != "auto":
            extra["optimizer"] = settings.optimizer
        if settings.lr0 is not None:
            extra["lr0"] = settings.lr0
        if settings.warmup_epochs is not None:
            extra["warmup_epochs"] = settings.warmup_epochs
        _model(yolo, source, callbacks).train(
            data=str(data_yaml),
            epochs=settings.epochs,
            imgsz=settings.imgsz,
            batch=settings.batch,
            device=device,
            workers=workers,
            seed=settings.seed,
            deterministic=True,
            pretrained=source.endswith(".pt"),  # a YAML is built fresh: no weights are looked for
            amp=settings.amp and device != "cpu",
            plots=settings.plots,
            cache=False if settings.cache == "none" else settings.cache,
            project=str(work / "runs"),
            name="train",
            exist_ok=True,
            patience=settings.patience,
            **extra,
            **settings.augment,
        )
    stamp = {"epochs": epochs_done(run_dir), "device": device}
    (run_dir / FINISHED_STAMP).write_text(json.dumps(stamp), encoding="utf-8")
    for weights in (run_dir / "weights" / "best.pt", last):
        if weights.is_file():
            return weights
    raise LinesideError(f"{run_dir}: training left no weights")
