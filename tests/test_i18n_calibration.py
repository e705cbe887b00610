"""`lineside calibrate` in Korean and English: the real commands as processes, once in each language; the
Korean lines are there, the numbers are the English run's, and the calibration files are the same bytes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.intrinsics import MIN_VIEWS
from tests.test_calibrate_intrinsics import BOARD_CENTRE_MM, chessboard_texture, write_views
from tests.test_calibrate_scale_robot import BOARD, PAIR_PIXELS, _write_pairs, view
from tests.test_calibrate_station import cli_process, golden, scene  # noqa: F401  (their fixtures)

REPO = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
HANGUL = re.compile("[\uac00-\ud7a3]")


def calibrate(folder: Path, *args: str | Path, lang: str) -> subprocess.CompletedProcess[str]:
    """`lineside calibrate ...` as a process in `folder`; Korean by `--lang ko`, or by the locale for
    `LANG=ko`; English with an English locale."""
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    env["LANG"] = "ko_KR.UTF-8" if lang == "LANG=ko" else "C.UTF-8"
    flag = ["--lang", "ko"] if lang == "ko" else []
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", "calibrate", *map(str, args), *flag],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=env,
        check=False,
    )


def numbers(text: str) -> list[str]:
    """Every number said, in order of size (Korean puts some in another order)."""
    return sorted(NUMBER.findall(text))


def same_but_time(korean: Path, english: Path) -> bool:
    """The two files are the same bytes once the Korean run's `created` time is the English run's."""
    created = [json.loads(path.read_text())["created"] for path in (korean, english)]
    return korean.read_bytes().replace(created[0].encode(), created[1].encode()) == english.read_bytes()


def both(tmp_path: Path, args: list[str], lang: str = "ko") -> tuple[str, str]:
    """Run a step in English (in tmp/en) and in Korean (in tmp/ko) on the same inputs; their stdouts."""
    said = []
    for where, language in (("en", "en"), ("ko", lang)):
        proc = calibrate(tmp_path / where, *args, lang=language)
        assert proc.returncode == 0, proc.stderr
        said.append(proc.stdout)
    return said[0], said[1]


@pytest.fixture
def rooms(tmp_path: Path) -> Path:
    for where in ("en", "ko"):
        (tmp_path / where).mkdir()
    return tmp_path


def test_intrinsics_views_and_rms_in_korean_with_the_english_numbers_and_file(rooms: Path) -> None:
    views = write_views(rooms / "views", chessboard_texture(9, 6, 10.0), BOARD_CENTRE_MM)
    blank = np.zeros_like(cv2.imread(str(views / "view_00.png")))
    cv2.imwrite(str(views / "zz_blank.png"), blank)
    args = ["intrinsics", "--images", views, "--board", BOARD, "--out", "station.json"]
    english, korean = both(rooms, [str(a) for a in args])
    print(korean)
    assert (
        "RMS reprojection error" in english
        and "zz_blank.png             not used: board not found" in english
    )
    assert "내부 파라미터: " in korean and "RMS 재투영 오차 " in korean and "왜곡 계수 k1 " in korean
    assert "zz_blank.png             사용 안 함: 보드를 찾지 못함" in korean
    assert "station.json (새 파일)" in korean
    assert numbers(korean) == numbers(english)
    assert same_but_time(rooms / "ko/station.json", rooms / "en/station.json")
    # Too few views: refused in one line, with its advice, in Korean; nothing saved.
    few = rooms / "few"
    few.mkdir()
    for image in [*sorted(views.iterdir())[:5], views / "zz_blank.png"]:
        (few / image.name).write_bytes(image.read_bytes())
    few_args: list[str | Path] = ["intrinsics", "--images", few, "--board", BOARD, "--out", "few.json"]
    refused_en = calibrate(rooms / "en", *few_args, lang="en")
    refused_ko = calibrate(rooms / "ko", *few_args, lang="ko")
    assert refused_en.returncode == refused_ko.returncode == 2
    assert refused_en.stderr == (
        f"lineside calibrate intrinsics: only 5 usable views of chessboard 9x6 10mm (need {MIN_VIEWS});"
        " board not found in: zz_blank.png\n"
    )
    assert refused_ko.stderr == (
        "lineside calibrate intrinsics: chessboard 9x6 10mm의 사용 가능한 뷰가 5장뿐임"
        f" (최소 {MIN_VIEWS}장 필요); 보드를 찾지 못함: zz_blank.png\n"
    )
    assert not (rooms / "en/few.json").exists() and not (rooms / "ko/few.json").exists()


def test_scale_by_the_locale_and_robot_by_lang_in_korean(rooms: Path) -> None:
    image, _, _ = view(chessboard_texture(9, 6, 10.0), (0, 0, 15), (300, 220), 300.0, BOARD_CENTRE_MM)
    cv2.imwrite(str(rooms / "plate.png"), image)
    scale = ["scale", "--image", str(rooms / "plate.png"), "--target", BOARD, "--out", "station.json"]
    english, korean = both(rooms, scale, lang="LANG=ko")
    assert "작업면 배율 " in korean and "작업면 기울기 " in korean and "'scale' 항목 저장" in korean
    assert numbers(korean) == numbers(english)
    pairs = str(_write_pairs(rooms / "pairs.csv", PAIR_PIXELS))
    english, korean = both(rooms, ["robot", "--pairs", pairs, "--out", "station.json"])
    print(korean)
    assert len(re.findall(r"mm +잔차 \d", korean)) == len(PAIR_PIXELS) and "RMS 잔차 " in korean
    assert "이전 파일은 station.json.prev로 보관" in korean
    words = korean.replace(pairs, "").replace("station.json.prev", "").replace("station.json", "")
    words = words.replace("'robot'", "")
    assert not re.search("[A-Za-z]{4,}", words)  # no English words left but the file and its section
    assert numbers(korean) == numbers(english)
    assert same_but_time(rooms / "ko/station.json", rooms / "en/station.json")


def test_roi_show_and_reference_lines_in_korean(
    rooms: Path,
    scene: np.ndarray,  # noqa: F811
    golden: tuple[Path, ...],  # noqa: F811
) -> None:
    cv2.imwrite(str(rooms / "frame.png"), scene)
    frame = str(rooms / "frame.png")
    english, korean = both(
        rooms, ["roi", "--image", frame, "--rect", "40,30,560,420", "--out", "station.json"]
    )
    assert english.startswith("ROI rect at (40,30) 560x420 px saved in station.json")
    assert korean.startswith("검사 영역 사각형, 왼쪽 위 (40,30), 560x420 px 저장: station.json")
    assert f"{frame}에 그림: " in korean
    assert numbers(korean) == numbers(english)
    reference = ["check", "--calibration", "station.json", "--set-reference", "--image", frame]
    english, korean = both(rooms, reference)
    print(korean)
    assert (
        korean.startswith(f"기준 영상 {frame}: 초점 ")
        and "특징점 " in korean
        and "기준값은 station.json에" in korean
    )
    assert numbers(korean) == numbers(english)
    show = ["show", "--calibration", "station.json", "--image", frame, "--model", str(golden[0])]
    english, korean = both(rooms, [*show, "--png", "view.png"])
    assert korean.startswith(f"{frame}: tiny 1 모델의 검출 ")
    assert "station.json 기준으로 그림" in korean and "저장함: view.png" in korean
    assert numbers(korean) == numbers(english)


def test_thresholds_proposal_and_question_in_korean(tmp_path: Path, golden: tuple[Path, ...]) -> None:  # noqa: F811
    model, good, bad = golden
    out = tmp_path / "station.json"
    argv = ("thresholds", "--good", good, "--bad", bad, "--out", out, "--model", model)
    english = cli_process(*argv, stdin="n\n")
    korean = cli_process(*argv, "--lang", "ko", stdin="n\n")
    print(korean.stdout)
    assert english.returncode == korean.returncode == 1 and not out.exists()
    assert "양품 샘플 5개, 불량 샘플 4개:" in korean.stdout and "양품 최고 점수 " in korean.stdout
    assert "  미검출   0.0%  (불량 4개 중 0개를 양품으로 판정)" in korean.stdout
    assert "  과검출  0.0%  (양품 5개 중 0개를 불량으로 판정)" in korean.stdout
    assert f"{out}에 임계값을 기록할까요? [예(y)/아니요(N)]" in korean.stdout
    assert f"Write thresholds to {out}? [y/N] " in english.stdout
    assert f"{out}에 아무것도 기록하지 않음" in korean.stdout
    assert numbers(korean.stdout) == numbers(english.stdout)
