"""`lineside calibrate`'s one-line input errors (exit 2), the ROI's description and the thresholds question in
Korean and English: the real command as a process in each language. In English every line is the very line
it was before the catalogs said it; in Korean it still names the file, field or value, and the words of
Python, the OS and OpenCV are kept as they said them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.errors import InputError
from calibration.roi import parse_polygon, roi_message
from edge.geometry import Scale
from edge.i18n import render
from lineside.commands.calibrate_errors import reporting
from tests.test_calibrate_station import golden  # noqa: F401  (its fixture)

REPO = Path(__file__).resolve().parents[1]
FORMS_EN = (
    "chessboard:COLSxROWS:SQUAREmm (inner corners), charuco:SQUARESXxSQUARESY:SQUAREmm:MARKERmm:DICT"
    " or aruco:ID:SIZEmm[:DICT]"
)
FORMS_KO = (
    "chessboard:COLSxROWS:SQUAREmm (내부 코너 수), charuco:SQUARESXxSQUARESY:SQUAREmm:MARKERmm:DICT"
    " 또는 aruco:ID:SIZEmm[:DICT]"
)


def calibrate(folder: Path, *args: str, lang: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`lineside calibrate ...` as a process in `folder`: `--lang ko`, `LANG=ko` (the locale) or English
    (an English locale, no flag)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    env["LANG"] = "ko_KR.UTF-8" if lang == "LANG=ko" else "C.UTF-8"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    flag = ["--lang", "ko"] if lang == "ko" else []
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", "calibrate", *args, *flag],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of bad inputs: a blank frame, a view folder, pairs files with a bad line and a far pair."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "views").mkdir()
    cv2.imwrite(str(root / "views" / "a.png"), np.full((120, 160), 90, np.uint8))
    cv2.imwrite(str(root / "blank.png"), np.full((120, 160, 3), 90, np.uint8))
    (root / "bad.csv").write_text("px,py,rx,ry\n1,2,3,4\n1,2,x,4\n", encoding="utf-8")
    far = "10,10,0,0\n100,10,90,0\n100,100,90,90\n10,100,0,90\n2000,50,20,20\n"
    (root / "far.csv").write_text(far, encoding="utf-8")
    (root / "ok.csv").write_text("10,10,0,0\n100,10,90,0\n100,100,90,90\n10,100,0,90\n", encoding="utf-8")
    return root


# (arguments, the English line as it always was, the Korean line): each names what the technician gave.
CASES = [
    (
        ("intrinsics", "--images", "views", "--board", "chessboard:9x6:abcmm", "--out", "o.json"),
        "lineside calibrate intrinsics: target 'chessboard:9x6:abcmm': could not convert string to float: "
        f"'abc'; expected {FORMS_EN}",
        "lineside calibrate intrinsics: 타깃 'chessboard:9x6:abcmm': could not convert string to float: "
        f"'abc'; 가능한 형식: {FORMS_KO}",
    ),
    (
        ("intrinsics", "--images", "views", "--board", "chessboard:9by6:10mm", "--out", "o.json"),
        "lineside calibrate intrinsics: target 'chessboard:9by6:10mm': '9by6' is not COLSxROWS; "
        f"expected {FORMS_EN}",
        "lineside calibrate intrinsics: 타깃 'chessboard:9by6:10mm': '9by6'은(는) COLSxROWS 형식이 아님; "
        f"가능한 형식: {FORMS_KO}",
    ),
    (
        ("intrinsics", "--images", "views", "--board", "aruco:7:50mm", "--out", "o.json"),
        "lineside calibrate intrinsics: aruco:7:50mm: one marker is too few points for intrinsics; use a "
        "chessboard or charuco",
        "lineside calibrate intrinsics: aruco:7:50mm: 마커 하나로는 내부 파라미터를 구하기에 점이 너무 적음; "
        "체스보드나 ChArUco 보드를 사용하세요",
    ),
    (
        ("robot", "--pairs", "bad.csv", "--out", "o.json", "--frame", "640x480"),
        "lineside calibrate robot: bad.csv:3: expected numbers px,py,rx,ry, got '1,2,x,4'",
        "lineside calibrate robot: bad.csv:3: 숫자 px,py,rx,ry가 와야 하는데 '1,2,x,4'임",
    ),
    (
        ("robot", "--pairs", "far.csv", "--out", "o.json", "--frame", "640x480"),
        "lineside calibrate robot: far.csv: pair 5 is outside the 640x480 frame",
        "lineside calibrate robot: far.csv: 5번째 점 쌍이 640x480 영상 밖에 있음",
    ),
    (
        ("scale", "--image", "blank.png", "--target", "chessboard:9x6:10mm", "--out", "o.json"),
        "lineside calibrate scale: blank.png: chessboard 9x6 10mm not found (wrong spec or size, or not "
        "wholly in view?)",
        "lineside calibrate scale: blank.png: chessboard 9x6 10mm을(를) 찾지 못함: 사양과 크기가 맞는지, "
        "타깃 전체가 영상에 들어오는지 확인하세요",
    ),
    (
        ("scale", "--image", "missing.png", "--target", "chessboard:9x6:10mm", "--out", "o.json"),
        "lineside calibrate scale: missing.png: no such image file",
        "lineside calibrate scale: missing.png: 이미지 파일이 없음",
    ),
    (
        ("robot", "--pairs", "ok.csv", "--out", "/proc/no-such-folder/o.json", "--frame", "640x480"),
        "lineside calibrate robot: /proc/no-such-folder: No such file or directory",
        "lineside calibrate robot: /proc/no-such-folder: 파일이나 폴더가 없음 (No such file or directory)",
    ),
    (
        ("roi", "--image", "blank.png", "--rect", "0,0,500,10", "--out", "r.json"),
        "lineside calibrate roi: roi.rect [0.0, 0.0, 500.0, 10.0] reaches outside the 160x120 frame",
        "lineside calibrate roi: roi.rect [0.0, 0.0, 500.0, 10.0]이(가) 160x120 영상 밖으로 나감",
    ),
    (
        ("check", "--calibration", "missing.json", "--image", "blank.png"),
        "lineside calibrate check: missing.json: calibration file missing",
        "lineside calibrate check: missing.json: 교정 파일이 없음",
    ),
]


@pytest.mark.parametrize(("args", "english", "korean"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_a_bad_input_is_one_line_in_either_language_and_the_english_line_is_unchanged(
    inputs: Path, args: tuple[str, ...], english: str, korean: str
) -> None:
    said_en = calibrate(inputs, *args, lang="en")
    said_ko = calibrate(inputs, *args, lang="ko")
    assert said_en.returncode == said_ko.returncode == 2
    assert said_en.stderr.splitlines()[-1] == english  # OpenCV may log a line of its own before it
    assert said_ko.stderr.splitlines()[-1] == korean
    assert not (inputs / "o.json").exists() and not (inputs / "r.json").exists()


def test_the_locale_alone_says_an_input_error_in_korean(inputs: Path) -> None:
    args, _, korean = CASES[5]
    said = calibrate(inputs, *args, lang="LANG=ko")
    assert said.returncode == 2 and said.stderr.splitlines()[-1] == korean


def test_an_opencv_error_keeps_opencvs_words_after_a_translated_lead_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(_args: argparse.Namespace) -> int:
        cv2.cvtColor(np.zeros((2, 2, 5), np.uint8), cv2.COLOR_BGR2GRAY)  # five channels: OpenCV refuses
        return 0

    said = {}
    for lang in ("en", "ko"):
        assert reporting("scale", fails)(argparse.Namespace(lang=lang)) == 2
        said[lang] = capsys.readouterr().err.strip()
    words = said["en"].removeprefix("lineside calibrate scale: OpenCV: ")
    assert words != said["en"] and "scn" in words  # OpenCV's own last line, as it said it
    assert said["ko"] == f"lineside calibrate scale: OpenCV 오류: {words}"


def test_an_input_error_is_english_in_str_and_korean_when_said() -> None:
    error = InputError(roi_message(parse_polygon("10,20,110,20,110,70"), None))
    assert str(error) == "polygon of 3 corners, bounding box at (10,20) 100x50 px"
    assert error.said("ko") == "꼭짓점 3개 다각형, 외접 사각형 왼쪽 위 (10,20), 100x50 px"


def test_the_roi_is_described_in_either_language_with_its_mm(inputs: Path) -> None:
    polygon = parse_polygon("10,20,110,20,110,70,10,70")
    scaled = roi_message(polygon, Scale(0.5))
    assert render(scaled, "en") == "polygon of 4 corners, bounding box at (10,20) 100x50 px = 50.0x25.0 mm"
    in_mm = "꼭짓점 4개 다각형, 외접 사각형 왼쪽 위 (10,20), 100x50 px (실제 크기 50.0x25.0 mm)"
    assert render(scaled, "ko") == in_mm
    args = ("roi", "--image", "blank.png", "--polygon", "10,20,110,20,110,70,10,70")
    english = calibrate(inputs, *args, "--out", "en.json", lang="en")
    korean = calibrate(inputs, *args, "--out", "ko.json", lang="ko")
    assert english.returncode == korean.returncode == 0, english.stderr + korean.stderr
    assert english.stdout.splitlines()[0] == (
        "ROI polygon of 4 corners, bounding box at (10,20) 100x50 px saved in en.json"
    )
    assert korean.stdout.splitlines()[0] == (
        "검사 영역 꼭짓점 4개 다각형, 외접 사각형 왼쪽 위 (10,20), 100x50 px 저장: ko.json"
    )


@pytest.mark.parametrize(
    ("lang", "answer", "written"),
    [
        ("ko", "예\n", True),
        ("ko", "네\n", True),
        ("ko", "y\n", True),
        ("ko", "아니요\n", False),
        ("ko", "\n", False),  # Enter alone: the default, no
        ("ko", "", False),  # end of input: no
        ("en", "yes\n", True),
        ("en", "\n", False),
    ],
)
def test_thresholds_are_written_only_on_an_explicit_yes_in_either_language(
    tmp_path: Path,
    golden: tuple[Path, Path, Path],  # noqa: F811
    lang: str,
    answer: str,
    written: bool,
) -> None:
    model, good, bad = golden
    args = (
        "thresholds",
        "--good",
        str(good),
        "--bad",
        str(bad),
        "--out",
        "station.json",
        "--model",
        str(model),
    )
    said = calibrate(tmp_path, *args, lang=lang, stdin=answer)
    assert said.returncode == (0 if written else 1), said.stderr
    assert (tmp_path / "station.json").exists() is written
    question = (
        "station.json에 임계값을 기록할까요? [예(y)/아니요(N)] "
        if lang == "ko"
        else "Write thresholds to station.json? [y/N] "
    )
    assert question in said.stdout
