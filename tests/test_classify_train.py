"""The classify kind trained end to end offline on rendered parts: a card the appliance accepts, the
contract's ONNX graph, onnxruntime equal to torch, an exact resume, a parity check that catches skew."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edge.errors import LinesideError
from edge.judge.detector.preprocess import Preprocessor
from edge.modelstore.card import load_verified, read_card
from training.judges.backbone import locate_weights
from training.judges.classify_data import (
    FrameTensor,
    PartDataset,
    input_spec,
    load_frame,
    parts_fingerprint,
    read_parts,
)
from training.judges.classify_export import (
    Classifier,
    ClassifierGraph,
    build_classifier,
    check_parity,
    choose_score_threshold,
    export_onnx,
    onnx_session,
)
from training.judges.classify_train import (
    CHECKPOINT,
    ClassifySettings,
    load_checkpoint,
    load_classify_settings,
    train_classifier,
)
from training.judges.judge_metrics import auroc
from training.synth import write_dataset

torch.set_num_threads(1)
IMGSZ = 128
NETWORK_MARK = "TEST-GUARD: network attempt"
# The test's own guard, independent of lineside's: any lookup or non-loopback connect is reported and refused.
GUARDED_TRAIN = f"""
import sys
def guard(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        if event == "socket.connect" and isinstance(args[1], str):
            return
        print({NETWORK_MARK!r}, event, args[:2], file=sys.stderr, flush=True)
        raise ConnectionRefusedError("test: no network")
sys.addaudithook(guard)
import torch
torch.set_num_threads(1)
from training.judges.classify_train import ClassifySettings, train_classifier
train_classifier(ClassifySettings.model_validate_json(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "parts"
    write_dataset(root, n_train=24, n_val=12, seed=3)
    return root


def settings_for(data: Path, tmp: Path, **changes: object) -> ClassifySettings:
    values: dict[str, object] = dict(
        data=data, out=tmp / "out", work=tmp / "work", name="parts", version="0.1", imgsz=IMGSZ, epochs=1,
        batch=8, workers=0, device="cpu",
    )  # fmt: skip
    return ClassifySettings.model_validate(values | changes)


@pytest.fixture(scope="module")
def trained(synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[ClassifySettings, str]:
    """One epoch trained in a process under the test's network guard; its settings and stderr."""
    settings = settings_for(synth, tmp_path_factory.mktemp("trained"))
    result = subprocess.run(
        [sys.executable, "-c", GUARDED_TRAIN, settings.model_dump_json()],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert NETWORK_MARK not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stderr[-3000:]
    return settings, result.stderr


def trained_classifier(work: Path) -> Classifier:
    state = load_checkpoint(work)
    assert state is not None
    model = build_classifier(len(state["identity"]["classes"]))
    model.load_state_dict(state["model"])
    return model.eval()


def test_guarded_training_reports_progress_and_writes_a_card_the_appliance_accepts(trained, synth):
    settings, stderr = trained
    assert "lineside train: classify epoch 1/1 loss" in stderr and "val AUROC" in stderr and "eta" in stderr
    card, _ = load_verified(settings.out)
    assert (card.task, card.output.layout, card.precision) == ("classify", "class_map", "fp32")
    assert card.classes == ("good", "defect")
    assert (card.input.width, card.input.height, card.input.color, card.input.pad_value) == (
        128,
        128,
        "RGB",
        114,
    )
    assert card.backbone is not None and card.backbone.model_dump() == locate_weights().card_info()
    assert card.training.data_fingerprint == parts_fingerprint(
        [read_parts(synth, s) for s in ("train", "val")]
    )
    assert card.training.args["epochs"] == 1 and card.training.code_version
    metrics = card.metrics
    assert metrics["target_escape_rate"] == 0.05 and metrics["threshold"] == card.thresholds.score
    assert {"escape_rate", "overkill_rate", "auroc", "target_met"} <= set(metrics)
    # never a threshold that flags every good val part
    assert card.thresholds.score is not None and metrics["overkill_rate"] != 1.0


def test_onnx_graph_has_the_contracts_names_shapes_and_metadata(trained):
    settings, _ = trained
    model = onnx.load(str(settings.out / "model.onnx"))
    onnx.checker.check_model(model)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta == {"lineside.task": "classify", "lineside.backbone_sha256": locate_weights().sha256}
    session = ort.InferenceSession(str(settings.out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert (inp.name, inp.shape, inp.type) == ("images", [1, 3, IMGSZ, IMGSZ], "tensor(float)")
    outputs = {o.name: (o.shape, o.type) for o in session.get_outputs()}
    assert outputs == {"scores": ([1, 2], "tensor(float)"), "heatmap": ([1, IMGSZ, IMGSZ], "tensor(float)")}
    scores, heat = session.run(
        None, {"images": np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), np.float32)}
    )
    assert scores.sum() == pytest.approx(1.0, abs=1e-5) and heat.min() >= 0.0


def test_onnxruntime_on_edges_preprocessing_equals_the_trained_torch_model(trained, synth):
    settings, _ = trained
    model = trained_classifier(settings.work)
    graph = ClassifierGraph(model).eval()
    session = ort.InferenceSession(str(settings.out / "model.onnx"), providers=["CPUExecutionProvider"])
    preprocess, to_tensor = Preprocessor(input_spec(IMGSZ)), FrameTensor(IMGSZ)
    for item in read_parts(synth, "val").items[:4]:
        frame = load_frame(item.image)
        served, _ = preprocess(frame)
        scores, heat = session.run(["scores", "heatmap"], {"images": served})
        with torch.no_grad():
            ref_scores, ref_heat = graph(to_tensor(frame))
        np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(
            heat, ref_heat.numpy(), atol=1e-4 * max(1.0, float(ref_heat.max())), rtol=0
        )


def test_rerun_with_more_epochs_resumes_from_the_checkpoint_exactly(trained, synth, tmp_path, capsys):
    first, _ = trained
    shutil.copytree(first.work, tmp_path / "work")
    resumed = settings_for(synth, tmp_path, epochs=2)
    train_classifier(resumed)
    log = capsys.readouterr().err
    assert "resuming after epoch 1/2" in log and "epoch 2/2" in log and "classify epoch 1/2" not in log
    state = load_checkpoint(tmp_path / "work")
    assert state is not None and state["epoch"] == 2
    load_verified(resumed.out)

    straight = settings_for(synth, tmp_path / "straight", epochs=2)
    train_classifier(straight)
    reference = load_checkpoint(straight.work)
    assert reference is not None
    for key, tensor in reference["model"].items():
        assert torch.equal(tensor, state["model"][key]), f"{key} differs after a resume"


def test_a_checkpoint_of_other_settings_is_not_resumed(trained, synth, tmp_path):
    first, _ = trained
    shutil.copytree(first.work, tmp_path / "work")
    with pytest.raises(LinesideError, match=rf"{CHECKPOINT}: made with other lr; use a new --work folder"):
        train_classifier(settings_for(synth, tmp_path, epochs=2, lr=1e-3))


@pytest.fixture(scope="module")
def three_class_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, Path]:
    """An untrained good/scratch/pit classifier exported: the multi-class heat map path."""
    torch.manual_seed(1)
    model = build_classifier(3).eval()
    path = export_onnx(model, IMGSZ, tmp_path_factory.mktemp("three") / "model.onnx", "0" * 64)
    return model, path


def colour_frames(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (90 + 20 * i, 160, 3), dtype=np.uint8) for i in range(count)]


def test_parity_check_passes_for_the_exported_model(three_class_export):
    model, path = three_class_export
    assert check_parity(path, model, colour_frames(), IMGSZ) <= 1e-4


def test_parity_check_refuses_bgr_preprocessing(three_class_export):
    model, path = three_class_export
    to_tensor = FrameTensor(IMGSZ)

    def bgr(frame: np.ndarray) -> torch.Tensor:
        return to_tensor(frame).flip(1)

    with pytest.raises(LinesideError, match="differs from the trained torch model"):
        check_parity(path, model, colour_frames(), IMGSZ, to_tensor=bgr)


def test_parity_check_refuses_a_model_without_its_normalisation(three_class_export):
    model, path = three_class_export
    unnormalised = build_classifier(3)
    unnormalised.load_state_dict(model.state_dict())
    unnormalised.normalise = nn.Identity()  # type: ignore[assignment]
    with pytest.raises(LinesideError, match="model refused"):
        check_parity(path, unnormalised.eval(), colour_frames(), IMGSZ)


def test_test_time_flips_judge_the_part_and_its_mirror_alike(three_class_export, tmp_path):
    model, plain_path = three_class_export
    path = export_onnx(model, IMGSZ, tmp_path / "model.onnx", "0" * 64, tta="flips")
    assert check_parity(path, model, colour_frames(), IMGSZ, tta="flips") <= 1e-4
    plain, flipped = onnx_session(plain_path), onnx_session(path)
    preprocess = Preprocessor(input_spec(IMGSZ))
    frame = np.zeros((IMGSZ, IMGSZ, 3), np.uint8)
    frame[20:60, 10:50] = 255  # a bright square in the top left corner, so the views differ
    tensor, _ = preprocess(frame)
    views = [tensor, tensor[..., ::-1], tensor[:, :, ::-1], tensor[:, :, ::-1, ::-1]]
    alone = [plain.run(["scores"], {"images": np.ascontiguousarray(v)})[0] for v in views]
    assert not np.allclose(alone[0], alone[3], atol=1e-4)  # the views really differ
    scores, heat = flipped.run(["scores", "heatmap"], {"images": tensor})
    np.testing.assert_allclose(scores, np.mean(alone, axis=0), atol=1e-5)
    mirrored, mirrored_heat = flipped.run(["scores", "heatmap"], {"images": np.ascontiguousarray(views[1])})
    np.testing.assert_allclose(mirrored, scores, atol=1e-5)  # the mirror image is the same part
    np.testing.assert_allclose(mirrored_heat[..., ::-1], heat, atol=1e-4 * max(1.0, float(heat.max())))


@pytest.mark.parametrize(
    ("scores", "defective", "expected"),
    [
        ([0.1, 0.2, 0.8, 0.9], [False, False, True, True], 1.0),
        ([0.9, 0.8, 0.2, 0.1], [False, False, True, True], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [False, True, False, True], 0.5),
        ([0.1, 0.6, 0.4, 0.9], [False, False, True, True], 0.75),
        ([0.3, 0.4], [False, False], None),
    ],
)
def test_auroc(scores, defective, expected):
    assert auroc(scores, defective) == expected


def test_threshold_meets_the_target_escape_at_the_lowest_overkill():
    scores = [0.05, 0.1, 0.3, 0.6, 0.7, 0.95]
    defective = [False, False, False, True, True, True]
    threshold, metrics = choose_score_threshold(list("abcdef"), scores, defective, target_escape=0.0)
    assert 0.3 < threshold <= 0.6
    assert (metrics["escape_rate"], metrics["overkill_rate"], metrics["target_met"]) == (0.0, 0.0, True)


def test_threshold_may_lie_above_0_9_where_a_confident_classifier_needs_it():
    # a good part at 0.95 is overkill at any threshold up to 0.95; the defective parts all score above it
    scores = [0.1, 0.5, 0.95, 0.97, 0.99, 0.999]
    defective = [False, False, False, True, True, True]
    threshold, metrics = choose_score_threshold(list("abcdef"), scores, defective, target_escape=0.0)
    assert 0.95 < threshold <= 0.97
    assert (metrics["escape_rate"], metrics["overkill_rate"], metrics["target_met"]) == (0.0, 0.0, True)


def test_threshold_never_flags_every_good_part():
    # good parts score above every defect: the target needs a threshold that rejects every good part
    scores, defective = [0.9, 0.95, 0.2, 0.3], [False, False, True, True]
    threshold, metrics = choose_score_threshold(list("abcd"), scores, defective, target_escape=0.05)
    assert metrics["target_met"] is False and metrics["overkill_rate"] == 0.0
    assert threshold > min(s for s, d in zip(scores, defective, strict=True) if not d)


def test_augmentation_is_reproducible_per_seed_epoch_and_image(synth):
    from training.augment import AugmentConfig, build_pipeline

    parts = read_parts(synth, "train")
    data = PartDataset(parts, IMGSZ, build_pipeline(AugmentConfig(), seed=0), seed=5)
    first, label = data[3]
    again, _ = data[3]
    data.epoch = 1
    next_epoch, _ = data[3]
    plain, _ = PartDataset(parts, IMGSZ)[3]
    assert first.shape == (3, IMGSZ, IMGSZ) and label == parts.items[3].label
    assert torch.equal(first, again) and not torch.equal(first, next_epoch) and not torch.equal(first, plain)


def write_folders(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    frame = np.full((40, 60, 3), 128, np.uint8)
    for split, classes in layout.items():
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                cv2.imwrite(str(root / split / name / f"{i}.png"), frame)
    return root


def test_folder_per_class_layout_puts_good_first_and_defects_in_name_order(tmp_path):
    root = write_folders(
        tmp_path / "d", {"train": {"scratch": 2, "good": 3, "chip": 1}, "val": {"good": 1, "chip": 1}}
    )
    train, val = read_parts(root, "train"), read_parts(root, "val")
    assert train.layout == "folders" and train.classes == val.classes == ("good", "chip", "scratch")
    assert train.counts() == {"good": 3, "chip": 1, "scratch": 2}
    assert [item.label for item in val.items] == [0, 1]


@pytest.mark.parametrize(
    ("layout", "split", "message"),
    [
        ({"train": {"scratch": 1}}, "train", "neither a YOLO layout"),
        ({"train": {"good": 1}}, "train", "at least one defect class folder"),
        ({"train": {"good": 1, "chip": 1}, "val": {"good": 1, "dent": 1}}, "val", r"\['dent'\] are not in"),
        ({"train": {"good": 1, "chip": 1}}, "val", "val: no such split folder"),
    ],
)
def test_unusable_data_folders_are_refused_with_one_line(tmp_path, layout, split, message):
    root = write_folders(tmp_path / "d", layout)
    with pytest.raises(LinesideError, match=message):
        read_parts(root, split)


def test_a_val_split_without_defects_is_refused_before_training(tmp_path):
    root = write_folders(tmp_path / "d", {"train": {"good": 1, "chip": 1}, "val": {"good": 2}})
    with pytest.raises(LinesideError, match="val split needs good and defective parts"):
        train_classifier(settings_for(root, tmp_path))
    assert not (tmp_path / "work" / CHECKPOINT).exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [({"colour": "RGB"}, "colour"), ({"device": "tpu"}, "device"), ({"imgsz": 100}, "imgsz")],
)
def test_bad_settings_are_refused_naming_the_field(tmp_path, change, field):
    values = json.loads(settings_for(tmp_path, tmp_path).model_dump_json()) | change
    with pytest.raises(LinesideError, match=f"field '{field}'"):
        load_classify_settings(values)


def test_the_trained_classifier_judges_in_a_real_run_chained_with_the_demo_detector(trained, tmp_path):
    """The tiny trained classifier, exported, behind the shipped demo detector in a real `lineside run`."""
    from edge.records.query import query
    from lineside.demo import demo_model_dir, demo_parts_dir
    from tests.line import lineside, make_station

    settings, _ = trained
    chain = [
        {
            "number": 1,
            "name": "chain",
            "model": str(demo_model_dir()),
            "stages": [{"model": str(settings.out)}],
        }
    ]
    config, _ = make_station(
        tmp_path, "g", extra={"recipes": chain, "source": {"path": str(demo_parts_dir())}}
    )
    done = lineside("run", str(config), "--max-parts", "4", "--quiet", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    records = query(tmp_path / "records" / "records.db")
    assert len(records) == 4
    for record in records:
        assert record.verdict.value in ("ACCEPT", "REJECT")
        assert [(s["stage"], s["kind"]) for s in record.stages] == [
            ("detector", "detect"),
            ("classifier", "classify"),
        ]
        assert record.stages[1]["threshold"] == read_card(settings.out).thresholds.score


def test_int8_copy_keeps_the_cards_proof_and_its_parity_with_fp32_is_measured(trained, synth, tmp_path):
    from edge.judge.scoremap import ScoreMapModel
    from training.evaldata import read_split
    from training.judges.judge_int8 import judge_parity, quantize_judge

    settings, _ = trained
    images = [item.image for item in read_split(synth, "val").items]
    card = quantize_judge(settings.out, images[:8], tmp_path / "int8")
    assert card.precision == "int8" and card.backbone == read_card(settings.out).backbone
    ScoreMapModel(tmp_path / "int8")  # the metadata the card is checked against survived quantisation
    # Only the backbone's convolutions are INT8: the head (a top-level Conv over every location, which the
    # old rule quantised) keeps float weights, as the rest of the head does.
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    int8_weights = {n.name: n.input[1] in dequantized for n in graph.node if n.op_type == "Conv"}
    head = [name for name in int8_weights if name.count("/") == 1]
    assert head and not any(int8_weights[name] for name in head), int8_weights
    assert any(q for name, q in int8_weights.items() if name.startswith("/blocks/")), int8_weights
    report = judge_parity(tmp_path / "int8", settings.out, images)
    assert report["candidate_sha256"] == card.sha256 and report["images"] == len(images)
    assert report["max_score_diff"] > 0.0  # really quantised: the scores moved
    assert report["passed"] == (not report["failed"])
