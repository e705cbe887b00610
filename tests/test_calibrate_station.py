"""`lineside calibrate roi | show | check | thresholds`: real images, real onnxruntime, CLI as a process."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from calibration.check import check_frames, set_reference
from calibration.frames import camera_of
from edge.errors import LinesideError
from edge.station.calibfile import ScaleSection, load_calibration, update_calibration
from edge.station.calibsections import CheckLimits
from edge.station.check import StationReference, Status, check_frame
from lineside.commands.calibrate_station import register_station_commands
from tests.models import ModelBox, make_yolo_model
from training.synth import render_part

REPO = Path(__file__).resolve().parents[1]
SIZE = (640, 480)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A machined part on a brushed fixture: enough texture and edges for ORB."""
    image, _ = render_part(np.random.default_rng(1), defective=False, size=SIZE)
    return image


@pytest.fixture
def station(tmp_path: Path, scene: np.ndarray) -> Path:
    calibration = tmp_path / "station.json"
    set_reference(calibration, scene)
    return calibration


def run_cli(*argv: str | Path) -> int:
    """Parse and run like `lineside calibrate ...` does, in this process."""
    parser = argparse.ArgumentParser(prog="lineside calibrate")
    register_station_commands(parser.add_subparsers(dest="command", required=True), "en")
    args = parser.parse_args([str(a) for a in argv])
    code: int = args.handler(args)
    return code


def cli_process(*argv: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command as a separate process: `python -m lineside.cli calibrate` once calibrate is registered."""
    from lineside.cli import COMMAND_MODULES

    if (
        importlib.util.find_spec("lineside.commands.calibrate")
        and "lineside.commands.calibrate" in COMMAND_MODULES
    ):
        command = [sys.executable, "-m", "lineside.cli", "calibrate"]
    else:
        bootstrap = (
            "import argparse, sys\n"
            "from lineside.commands.calibrate_station import register_station_commands\n"
            "p = argparse.ArgumentParser(prog='lineside calibrate')\n"
            "register_station_commands(p.add_subparsers(dest='command', required=True))\n"
            "a = p.parse_args(sys.argv[1:])\n"
            "sys.exit(a.handler(a))\n"
        )
        command = [sys.executable, "-c", bootstrap]
    return subprocess.run(
        [*command, *map(str, argv)],
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable image"
    return image


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return np.asarray(cv2.warpAffine(image, matrix, SIZE, borderMode=cv2.BORDER_REFLECT))


def blurred(image: np.ndarray) -> np.ndarray:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), 2.0))


def over_exposed(image: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(image.astype(np.float32) * 1.4 + 40, 0, 255), dtype=np.uint8)


def rolled(image: np.ndarray) -> np.ndarray:
    return np.roll(image, 5, axis=1)


def with_sensor_noise(image: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(7).normal(0, 2.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


# --- check ------------------------------------------------------------------------------------------


def test_unchanged_frame_passes_every_item(station: Path, scene: np.ndarray) -> None:
    report = check_frame(station, with_sensor_noise(scene))
    assert report.status is Status.PASS, report.lines()
    assert {i.name for i in report.items} == {
        "focus",
        "exposure mean",
        "highlights clipped",
        "shadows clipped",
        "pose shift",
        "pose rotation",
        "pose scale",
    }
    assert report.item("pose shift").value < 0.5


@pytest.mark.parametrize(
    ("distort", "limits", "item", "expected"),
    [
        (blurred, {}, "focus", Status.FAIL),
        (blurred, {"focus_fail_ratio": 0.005}, "focus", Status.WARN),
        (over_exposed, {}, "exposure mean", Status.FAIL),
        (over_exposed, {}, "highlights clipped", Status.FAIL),
        (over_exposed, {"mean_fail": 120, "clipped_fail_pct": 60}, "exposure mean", Status.WARN),
        (over_exposed, {"mean_fail": 120, "clipped_fail_pct": 60}, "highlights clipped", Status.WARN),
        (rolled, {}, "pose shift", Status.WARN),
        (rolled, {"shift_fail_px": 4}, "pose shift", Status.FAIL),
        (lambda image: shifted(image, 3, 4), {"shift_fail_px": 4.5}, "pose shift", Status.FAIL),
    ],
    ids=[
        "blur-fail",
        "blur-warn",
        "over-mean-fail",
        "over-clip-fail",
        "over-mean-warn",
        "over-clip-warn",
        "roll5-warn",
        "roll5-fail",
        "warp3-4-fail",
    ],
)
def test_check_grades_a_planted_change_by_its_limits(  # noqa: PLR0917 (pytest parameters)
    station, scene, distort, limits, item, expected
) -> None:
    report = check_frame(station, distort(scene), CheckLimits(**limits))
    assert report.item(item).status is expected, report.lines()
    assert report.status.rank >= expected.rank


def test_a_five_pixel_shift_is_measured_as_five_pixels_and_nothing_else(station, scene) -> None:
    report = check_frame(station, rolled(scene))
    assert report.item("pose shift").value == pytest.approx(5.0, abs=0.3)
    for name in ("focus", "exposure mean", "pose rotation", "pose scale"):
        assert report.item(name).status is Status.PASS, report.lines()


def test_blur_leaves_pose_and_exposure_passing(station, scene) -> None:
    report = check_frame(station, blurred(scene))
    assert report.item("focus").value < 0.1
    assert report.item("pose shift").status is Status.PASS
    assert report.item("exposure mean").status is Status.PASS


def test_frame_of_another_size_fails_the_check(station, scene) -> None:
    report = check_frame(station, scene[:240, :320])
    assert report.failed
    assert report.items[0].name == "frame size"


def test_worst_frame_decides_each_item(station, scene) -> None:
    reference = StationReference.load(station)
    report = check_frames(reference, [("a", scene), ("b", rolled(scene)), ("c", scene)])
    shift = report.item("pose shift")
    assert (shift.status, shift.frame) == (Status.WARN, "b")
    assert report.item("focus").status is Status.PASS


def test_replaced_reference_image_is_refused(station) -> None:
    section = load_calibration(station).reference
    assert section is not None
    image_path = station.parent / section.image
    image_path.write_bytes(image_path.read_bytes() + b"\0")
    with pytest.raises(LinesideError, match="changed since it was stored"):
        StationReference.load(station)


def test_check_without_a_stored_reference_says_how_to_store_one(tmp_path, scene, capsys) -> None:
    frame, calibration = tmp_path / "frame.png", tmp_path / "station.json"
    cv2.imwrite(str(frame), scene)
    update_calibration(calibration, camera_of(scene))
    assert run_cli("check", "--calibration", calibration, "--image", frame) == 2
    assert (
        "no reference frame stored: run lineside calibrate check --set-reference" in capsys.readouterr().err
    )


def test_reference_of_another_frame_size_is_refused_before_anything_is_written(station, scene) -> None:
    before = sorted(p.name for p in station.parent.iterdir())
    with pytest.raises(LinesideError, match="made for 640x480 frames"):
        set_reference(station, np.ascontiguousarray(scene[:400, :600]))
    assert sorted(p.name for p in station.parent.iterdir()) == before


def test_featureless_reference_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LinesideError, match="features"):
        set_reference(tmp_path / "station.json", np.full((480, 640, 3), 128, np.uint8))
    assert not (tmp_path / "station.json").exists()


def test_new_reference_keeps_the_previous_files_image_and_drops_older_ones(station, scene) -> None:
    first = load_calibration(station).reference
    set_reference(station, rolled(scene))
    set_reference(station, shifted(scene, 0, 2))
    current, prev = load_calibration(station).reference, load_calibration(station.with_suffix(".json.prev"))
    assert first is not None and current is not None and prev.reference is not None
    names = {p.name for p in station.parent.glob("station.reference-*.png")}
    assert names == {current.image, prev.reference.image}
    assert first.image not in names


def test_check_command_exit_status_follows_the_worst_item(station, scene, tmp_path, capsys) -> None:
    moved = tmp_path / "moved.png"
    cv2.imwrite(str(moved), rolled(scene))
    assert run_cli("check", "--calibration", station, "--image", moved) == 0
    out = capsys.readouterr().out
    assert "WARN  pose shift" in out and "result: WARN" in out
    assert run_cli("check", "--calibration", station, "--image", moved, "--limit", "shift_fail_px=4") == 1
    assert "result: FAIL" in capsys.readouterr().out
    assert run_cli("check", "--calibration", station, "--image", moved, "--limit", "shift_px=4") == 2
    assert "--limit 'shift_px=4'" in capsys.readouterr().err


def test_check_grabs_frames_from_a_station_config(station, scene, tmp_path, capsys) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        cv2.imwrite(str(parts / f"{i}.png"), blurred(scene) if i == 1 else scene)
    config = tmp_path / "line.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": {"kind": "folder", "path": "parts"},
                "recipes": [{"number": 1, "name": "a", "model": "models/a"}],
                "default_recipe": 1,
                "records": {"dir": "records", "quota_mb": 10},
            }
        )
    )
    assert run_cli("check", "--calibration", station, "--config", config, "--frames", "3") == 1
    out = capsys.readouterr().out
    assert "3 frame(s)" in out and "FAIL  focus" in out and "1.png" in out


def test_set_reference_from_the_command_line_stores_limits(tmp_path, scene, capsys) -> None:
    frame = tmp_path / "view.png"
    cv2.imwrite(str(frame), scene)
    calibration = tmp_path / "cal.json"
    argv = ("check", "--calibration", calibration, "--set-reference", "--image", frame)
    assert run_cli(*argv, "--limit", "shift_warn_px=1.5") == 0
    assert "saved" in capsys.readouterr().out
    reference = load_calibration(calibration).reference
    assert reference is not None and reference.limits.shift_warn_px == 1.5


# --- roi ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "outline_pixel"),
    [
        (("--rect", "100,80,300,200"), (100, 180)),
        (("--polygon", "100,80,400,80,400,280,100,280"), (400, 180)),
    ],
)
def test_roi_is_stored_and_drawn(tmp_path, scene, capsys, shape, outline_pixel) -> None:
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), scene)
    calibration = tmp_path / "station.json"
    assert run_cli("roi", "--image", frame, *shape, "--out", calibration) == 0
    out = capsys.readouterr().out
    png = tmp_path / "station.roi.png"
    assert str(png) in out and str(calibration) in out
    roi = load_calibration(calibration).roi
    assert roi is not None and roi.contains(np.array([[250.0, 180.0], [20.0, 20.0]])).tolist() == [
        True,
        False,
    ]
    drawn = read_png(png)
    x, y = outline_pixel
    assert not np.array_equal(drawn[y, x], scene[y, x])  # the outline is drawn
    assert np.array_equal(drawn[180, 250], scene[180, 250])  # the inside is the frame itself
    assert drawn[470, 600].sum() < scene[470, 600].sum()  # the outside is dimmed


def test_roi_states_its_size_in_mm_when_the_station_has_a_scale(tmp_path, scene, capsys) -> None:
    frame, calibration = tmp_path / "frame.png", tmp_path / "station.json"
    cv2.imwrite(str(frame), scene)
    update_calibration(calibration, camera_of(scene), scale=ScaleSection(mm_per_px=0.1))
    assert run_cli("roi", "--image", frame, "--rect", "0,0,200,100", "--out", calibration) == 0
    assert "200x100 px = 20.0x10.0 mm" in capsys.readouterr().out
    assert load_calibration(calibration).scale is not None  # the other sections are kept


def test_roi_is_drawn_and_stored_in_the_undistorted_pixels_the_runtime_uses(tmp_path, scene, capsys) -> None:
    from edge.station.calibfile import IntrinsicsSection
    from edge.station.undistort import Undistorter

    frame, calibration = tmp_path / "frame.png", tmp_path / "station.json"
    cv2.imwrite(str(frame), scene)
    matrix = ((600.0, 0.0, 320.0), (0.0, 600.0, 240.0), (0.0, 0.0, 1.0))
    lens = IntrinsicsSection(
        camera_matrix=matrix,
        distortion=(-0.3, 0.1, 0.0, 0.0),
        undistorted_matrix=matrix,
        rms_px=0.2,
        views=12,
    )
    update_calibration(calibration, camera_of(scene), intrinsics=lens)
    assert run_cli("roi", "--image", frame, "--rect", "100,80,300,200", "--out", calibration) == 0
    assert "undistorted with the station's intrinsics" in capsys.readouterr().out
    stored = load_calibration(calibration)
    assert stored.roi is not None and stored.roi.intrinsics_id == stored.intrinsics_id() != ""
    undistorted = Undistorter(lens, stored.camera).apply(scene)
    drawn = read_png(tmp_path / "station.roi.png")
    assert np.array_equal(drawn[100:260:20, 140:380:20], undistorted[100:260:20, 140:380:20])
    assert not np.array_equal(drawn[100:260:20, 140:380:20], scene[100:260:20, 140:380:20])
    with pytest.raises(
        LinesideError, match="roi was drawn on undistorted frames, the runtime's frames are raw"
    ):
        stored.roi.in_pixel_space("")
    with pytest.raises(
        LinesideError, match="roi was drawn on raw frames, the runtime's frames are undistorted:"
    ):
        stored.roi.model_copy(update={"intrinsics_id": ""}).in_pixel_space(stored.intrinsics_id())


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (("--rect", "500,400,200,100"), "reaches outside the 640x480 frame"),
        (("--polygon", "10,10,700,10,10,300"), "reaches outside the 640x480 frame"),
        (("--rect", "1,2,3"), "expected x,y,w,h"),
        (("--rect", "1,2,0,5"), "width, height > 0"),
        (("--polygon", "1,1,2,2,3,3"), "non-zero area"),
    ],
)
def test_roi_outside_the_image_or_malformed_is_refused_in_one_line(
    tmp_path, scene, capsys, shape, message
) -> None:
    frame, calibration = tmp_path / "frame.png", tmp_path / "station.json"
    cv2.imwrite(str(frame), scene)
    assert run_cli("roi", "--image", frame, *shape, "--out", calibration) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not calibration.exists()


def test_missing_and_unreadable_images_are_refused_in_one_line(tmp_path, capsys) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    for image, message in ((tmp_path / "absent.png", "no such image file"), (garbage, "not an image")):
        assert run_cli("roi", "--image", image, "--rect", "0,0,5,5", "--out", tmp_path / "c.json") == 2
        err = capsys.readouterr().err
        assert message in err and str(image) in err and err.count("\n") == 1


# --- show ---------------------------------------------------------------------------------------------


def test_show_draws_roi_scale_bar_and_detections(tmp_path, scene, capsys) -> None:
    frame, calibration, png = tmp_path / "frame.png", tmp_path / "station.json", tmp_path / "view.png"
    cv2.imwrite(str(frame), scene)
    update_calibration(calibration, camera_of(scene), scale=ScaleSection(mm_per_px=0.1))
    assert run_cli("roi", "--image", frame, "--rect", "100,80,440,320", "--out", calibration) == 0
    # 64x64 input letterboxes 640x480 at ratio 0.1 with 8 px padding on top: box (16..32, 18..34) input px.
    model = make_yolo_model(tmp_path / "m", ("scratch",), [ModelBox(24, 26, 16, 16, 0, 0.9)])
    assert (
        run_cli("show", "--calibration", calibration, "--image", frame, "--model", model, "--png", png) == 0
    )
    assert "1 detection(s)" in capsys.readouterr().out
    drawn = read_png(png)
    assert tuple(drawn[180, 160]) == (0, 0, 255)  # the left edge of the rejecting box, in red
    assert (drawn[455:465, 20:60] == 255).all(axis=2).any()  # the white scale bar, bottom left


def test_show_refuses_a_frame_of_another_size(tmp_path, scene, capsys) -> None:
    frame, calibration = tmp_path / "frame.png", tmp_path / "station.json"
    cv2.imwrite(str(frame), scene[:100, :100])
    update_calibration(calibration, camera_of(scene))
    model = make_yolo_model(tmp_path / "m", ("scratch",), [])
    argv = (
        "show",
        "--calibration",
        calibration,
        "--image",
        frame,
        "--model",
        model,
        "--png",
        tmp_path / "v.png",
    )
    assert run_cli(*argv) == 2
    assert "made for 640x480 frames" in capsys.readouterr().err
    assert not (tmp_path / "v.png").exists()


# --- thresholds ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A model whose score grows with brightness, dark good parts and bright defective parts."""
    root = tmp_path_factory.mktemp("golden")
    model = make_yolo_model(root / "model", ("scratch",), [ModelBox(32, 32, 8, 8, 0, 1.0)], gain="input_mean")
    good, bad = root / "good", root / "bad"
    good.mkdir()
    bad.mkdir()
    for i, level in enumerate((20, 35, 50, 65, 80)):
        cv2.imwrite(str(good / f"g{i}.png"), np.full((48, 64, 3), level, np.uint8))
    for i, level in enumerate((140, 160, 190, 220)):
        cv2.imwrite(str(bad / f"b{i}.png"), np.full((48, 64, 3), level, np.uint8))
    return model, good, bad


def test_thresholds_separate_good_from_bad_and_yes_writes_them(tmp_path, golden) -> None:
    model, good, bad = golden
    calibration = tmp_path / "station.json"
    argv = ("thresholds", "--good", good, "--bad", bad, "--out", calibration, "--model", model, "--yes")
    result = cli_process(*argv)
    assert result.returncode == 0, result.stderr
    assert "escape    0.0%" in result.stdout and "overkill  0.0%" in result.stdout
    assert "highest good" in result.stdout and "good/g4.png" in result.stdout
    section = load_calibration(calibration).thresholds
    assert section is not None
    threshold = section.per_class["scratch"]
    assert 80 / 255 < threshold <= 140 / 255  # above every good part, at or below every defective one
    assert (section.good_samples, section.bad_samples, section.escape_rate, section.overkill_rate) == (
        5,
        4,
        0,
        0,
    )


@pytest.mark.parametrize("answer", ["n\n", ""], ids=["no", "end-of-input"])
def test_thresholds_without_confirmation_write_nothing(tmp_path, golden, answer) -> None:
    model, good, bad = golden
    calibration = tmp_path / "station.json"
    result = cli_process(
        "thresholds", "--good", good, "--bad", bad, "--out", calibration, "--model", model, stdin=answer
    )
    assert result.returncode == 1
    assert f"Write thresholds to {calibration}? [y/N]" in result.stdout
    assert "nothing written" in result.stdout
    assert not calibration.exists()


def test_thresholds_refuse_an_empty_folder(tmp_path, golden, capsys) -> None:
    model, good, _ = golden
    empty = tmp_path / "bad"
    empty.mkdir()
    argv = (
        "thresholds",
        "--good",
        good,
        "--bad",
        empty,
        "--out",
        tmp_path / "c.json",
        "--model",
        model,
        "--yes",
    )
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert f"{empty}: no images" in err and err.count("\n") == 1


def test_thresholds_for_another_model_are_refused_as_rules(tmp_path, golden) -> None:
    from edge.judge.detector.detector import Detector

    model, good, bad = golden
    calibration = tmp_path / "station.json"
    assert (
        run_cli("thresholds", "--good", good, "--bad", bad, "--out", calibration, "--model", model, "--yes")
        == 0
    )
    section = load_calibration(calibration).thresholds
    assert section is not None
    assert (
        section.rules_for(Detector(model).card).rule_for("scratch").min_confidence
        == section.per_class["scratch"]
    )
    other = make_yolo_model(tmp_path / "other", ("scratch",), [ModelBox(10, 10, 4, 4, 0, 0.5)])
    with pytest.raises(LinesideError, match="chosen for model"):
        section.rules_for(Detector(other).card)


@pytest.mark.parametrize("command", ["roi", "show", "check", "thresholds"])
def test_every_command_has_help_with_an_example(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(command, "--help")
    assert exit_info.value.code == 0
    assert f"examples:\n  lineside calibrate {command} --" in capsys.readouterr().out
