"""Korean and English on a real line: `lineside run` records parts, then `lineside records summary` and
`lineside records show` say them in either language from the same records (codes and numbers, never the
text of the language they were made in), and the status page in Korean, in a real browser with a CJK font
from Debian, is saved as a screenshot artifact."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.debian import require_debian
from tests.line import free_port, lineside, make_station, running_line
from tests.test_status_page import browser  # noqa: F401  (the fixture korean_browser builds on)

pytestmark = pytest.mark.slow  # each runs `lineside run` as a process

HANGUL = re.compile("[\uac00-\ud7a3]")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _records(records: Path, verdict: str) -> list[dict[str, Any]]:
    listed = lineside("records", "--dir", str(records), "--verdict", verdict, "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("made_in", ["en", "ko"])
def test_records_made_in_either_language_read_in_both(tmp_path: Path, made_in: str) -> None:
    config, _ = make_station(
        tmp_path / "station", "gdgd", takt_ms=20, extra={"station": {"language": made_in}}
    )
    run = lineside("run", str(config), "--max-parts", "8", timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    records = tmp_path / "station" / "records"
    # What the line keeps does not depend on its language: the same verdicts, codes and English sentence.
    every = sorted(_records(records, "ACCEPT") + _records(records, "REJECT"), key=lambda r: int(r["seq"]))
    assert [r["verdict"] for r in every] == ["ACCEPT", "REJECT"] * 4
    assert all(r["reasons"][0].startswith(f"{r['verdict']}: ") for r in every)

    other = "en" if made_in == "ko" else "ko"
    own = lineside("records", "summary", "--config", str(config))  # the station's language, from its config
    switched = lineside("records", "summary", "--config", str(config), "--lang", other)
    assert own.returncode == switched.returncode == 0, own.stderr + switched.stderr
    ko, en = (own, switched) if made_in == "ko" else (switched, own)
    print(ko.stdout)
    assert "부품 8개를 검사했습니다." in ko.stdout and "수율은" in ko.stdout and "주요 불량 원인" in ko.stdout
    assert "8 parts were inspected." in en.stdout and "Yield was" in en.stdout
    assert not HANGUL.search(en.stdout)
    assert len(ko.stdout.splitlines()) == len(en.stdout.splitlines())  # the same sentences, in two languages

    reject = _records(records, "REJECT")[0]
    key = f"{reject['boot_id']}:{reject['seq']}"
    shown = {
        lang: lineside(
            "records",
            "show",
            key,
            "--dir",
            str(records),
            "--lang",
            lang,
            "--out",
            str(tmp_path / f"evidence-{lang}.png"),
        )
        for lang in ("ko", "en", "ko")  # Korean, English, and Korean again: nothing kept between them
    }
    assert all(s.returncode == 0 for s in shown.values()), [s.stderr for s in shown.values()]
    print(shown["ko"].stdout)
    # The English reason re-rendered from the stored codes is the very sentence the line wrote.
    assert f"reason: {reject['reasons'][0]}" in shown["en"].stdout.splitlines()
    assert not HANGUL.search(shown["en"].stdout)
    korean_reason = next(x for x in shown["ko"].stdout.splitlines() if x.startswith("판정 사유: "))
    assert korean_reason.startswith("판정 사유: 불량: scratch") and "임계값" in korean_reason
    assert "적용 규칙:" in shown["ko"].stdout and "검출 불량" in shown["ko"].stdout
    # The verdict is the record's, whatever the language.
    assert f"  {reject['verdict']}" in shown["en"].stdout.splitlines()[0]
    assert "  불량" in shown["ko"].stdout.splitlines()[0]
    _the_korean_evidence_picture_has_hangul(records, key, tmp_path)


DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Latin letters only: Hangul as boxes


def _the_korean_evidence_picture_has_hangul(records: Path, key: str, tmp_path: Path) -> None:
    """The picture `records show --lang ko` wrote is Korean (not the English one, not boxes for letters)."""
    import cv2

    from edge.records.evidence import evidence_png, read_record
    from edge.records.picture_text import cjk_font

    korean = cv2.imread(str(tmp_path / "evidence-ko.png"))
    english = cv2.imread(str(tmp_path / "evidence-en.png"))
    assert korean is not None and english is not None
    if cjk_font() is None:  # no font with Hangul: the picture is the English one, and the command said so
        assert np.array_equal(korean, english)
        return
    assert korean.shape != english.shape or np.any(korean != english)
    if not DEJAVU.is_file():
        pytest.skip("SKIPPED: needs Debian fonts-dejavu-core (a font without Hangul) for the tofu check")
    record = read_record(records, key)
    tofu = cv2.imdecode(np.frombuffer(evidence_png(records, record, "ko", font=DEJAVU), np.uint8), 1)
    assert tofu is not None
    # The same Korean lines drawn with a font that lacks Hangul are another picture: the real one has letters.
    assert tofu.shape != korean.shape or int(np.count_nonzero(tofu != korean)) > 500


def _cjk_fonts() -> list[Path]:
    return list(Path("/usr/share/fonts").rglob("NotoSansCJK*"))


@pytest.fixture
def korean_browser(request: pytest.FixtureRequest) -> WebDriver:
    """The status page test's headless Chromium, with a CJK font from Debian so Hangul is drawn."""
    if not _cjk_fonts():
        require_debian("fonts-noto-cjk")  # skips loudly where it cannot be installed
        if not _cjk_fonts():
            pytest.skip("SKIPPED: needs Debian fonts-noto-cjk: installed, but no NotoSansCJK font found")
    driver: WebDriver = request.getfixturevalue("browser")
    return driver


def test_the_status_page_in_korean_in_a_real_browser(tmp_path: Path, korean_browser: WebDriver) -> None:
    import cv2
    from selenium.webdriver.common.by import By

    from tests.test_status_page import _count, _wait

    driver = korean_browser
    http = free_port()
    config, _ = make_station(
        tmp_path / "station",
        "gd",
        takt_ms=150,
        extra={"status": {"enabled": True, "port": http}, "station": {"language": "ko"}},
    )
    with running_line(config, "--max-parts", "400") as line:
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 90, "the status page")
        driver.get(f"http://127.0.0.1:{http}/")
        _wait(lambda: _count(driver, "count-reject") >= 1, 90, "the first reject on the page")
        _wait(lambda: driver.find_element(By.ID, "line-state").text == "준비 완료", 60, "the line READY")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert driver.execute_script("return document.documentElement.lang") == "ko"
        words_seen = ("이번 근무조", "양품", "불량", "수율", "결함 종류별 불량", "판정", "작업 프로세스")
        for words in (*words_seen, "라인 경보", "관리도", "관리 한계"):  # the alarms panel and its headers
            assert words in body, words
        assert "This shift" not in body and "Rejects by class" not in body and "limits" not in body
        # The verdict and its reason, in Korean: re-rendered from the record's codes, not the line's English.
        _wait(lambda: "불량: scratch" in driver.find_element(By.ID, "stream").text, 60, "a Korean reason")
        _wait(lambda: "양품: 검사 영역에" in driver.find_element(By.ID, "stream").text, 60, "a Korean accept")
        assert driver.title == "lineside 상태"
        shot = tmp_path / "status-page-ko.png"
        assert driver.save_screenshot(str(shot))
    picture = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert picture is not None and picture.shape[1] >= 1000
    assert float(np.std(picture)) > 10  # not blank: text, tiles and the frame drawn
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    print(f"Korean status page screenshot: {ARTIFACTS / shot.name}")


SUBGROUP, BASELINE = 10, 5
SMALL_SPC = {"pchart": {"subgroup": SUBGROUP, "baseline_subgroups": BASELINE}}
STEADY = "ggggdggggg" * BASELINE  # 1 defective in 10: the centre 0.1 (as tests/test_spc_line.py)
RISE = "ddgddddgdd" * 2  # then 8 in 10: the reject rate and scratch's rate alarm on the first subgroup


@pytest.mark.parametrize("returned", [False, True], ids=["still-active", "returned"])
def test_records_summary_says_the_alarms_of_a_real_run_in_both_languages(
    tmp_path: Path, returned: bool
) -> None:
    from datetime import datetime

    from edge.records.alarms import recorded_alarms

    # Back to 1 in 10 after the rise: 3 calm subgroups in a row release the latch.
    parts = STEADY + RISE + ("ggggdggggg" * 4 if returned else "")
    config, _ = make_station(tmp_path, parts, takt_ms=20, loop=False, extra={"spc": SMALL_SPC})
    run = lineside("run", str(config), "--max-parts", str(len(parts)), timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    stored = recorded_alarms(tmp_path / "records")
    assert [(a.alarm["chart"], a.alarm["rule"]) for a in stored] == [
        ("reject_rate", "beyond_3sigma"),
        ("class_rate:scratch", "beyond_3sigma"),
    ]
    t1, t2 = (datetime.fromtimestamp(a.raised_at).strftime("%Y-%m-%d %H:%M:%S") for a in stored)
    said = {
        lang: lineside("records", "summary", "--config", str(config), "--lang", lang) for lang in ("en", "ko")
    }
    assert all(s.returncode == 0 for s in said.values()), [s.stderr for s in said.values()]
    print(said["en"].stdout, said["ko"].stdout, sep="\n")
    en_state = (
        "no longer active (the process returned)"
        if returned
        else "still active (latched until the process returns or it is acknowledged)"
    )
    ko_state = (
        "경보 해제됨 (공정이 돌아옴)" if returned else "아직 경보 중 (공정이 돌아오거나 확인될 때까지 유지됨)"
    )
    assert said["en"].stdout.splitlines()[-3:] == [
        f"Line alarms: 2 raised on 2 chart(s), the first at {t1}, the last at {t2}:",
        f"  reject rate: 1 alarm(s) (a point beyond 3 sigma (above)), the first at {t1}, the last at {t1}; "
        f"{en_state}.",
        f"  rate of scratch: 1 alarm(s) (a point beyond 3 sigma (above)), the first at {t2}, "
        f"the last at {t2}; {en_state}.",
    ]
    assert said["ko"].stdout.splitlines()[-3:] == [
        f"라인 경보: 관리도 2개에서 2건 발생, 첫 경보 {t1}, 마지막 경보 {t2}:",
        f"  불량률: 경보 1건 (한 점이 3 시그마 밖 (위)), 첫 경보 {t1}, 마지막 경보 {t1}; {ko_state}.",
        f"  scratch 비율: 경보 1건 (한 점이 3 시그마 밖 (위)), 첫 경보 {t2}, 마지막 경보 {t2}; {ko_state}.",
    ]


def test_lineside_run_says_its_part_lines_and_summary_in_the_stations_language(tmp_path: Path) -> None:
    lines = {}
    for lang in ("en", "ko"):
        config, _ = make_station(tmp_path / lang, "gd", takt_ms=20, extra={"station": {"language": lang}})
        run = lineside("run", str(config), "--max-parts", "4", timeout=240)
        assert run.returncode == 0, run.stderr[-3000:]
        lines[lang] = run.stdout.splitlines()
    print("\n".join(lines["ko"]))
    en_parts = [line for line in lines["en"] if line.startswith("part ")]
    ko_parts = [line for line in lines["ko"] if line.startswith("부품 ")]
    assert len(en_parts) == len(ko_parts) == 4
    assert "ACCEPT" in en_parts[0] and "ACCEPT: no defect >= threshold in ROI" in en_parts[0]
    assert "REJECT: scratch" in en_parts[1] and ">= 0.50" in en_parts[1]
    # Korean: the verdict and the reason from the catalog, the numbers the same as the English line's.
    assert ko_parts[0].endswith("양품: 검사 영역에 임계값 이상의 결함 없음 (임계값 미만 1개)")
    assert "불량" in ko_parts[1] and "불량: scratch 0.76, 위치 (80,60) px, 크기 25x25 px" in ko_parts[1]
    assert ko_parts[1].endswith("임계값 0.50 이상")
    assert not any(HANGUL.search(line) for line in lines["en"])
    assert [x for x in lines["en"] if x.startswith("summary: parts 4, accepted 2, rejected 2, faults 0")]
    assert [x for x in lines["ko"] if x.startswith("요약: 부품 4개, 양품 2개, 불량 2개, 고장 0개")]


def test_the_login_page_in_korean_to_a_plain_http_client(tmp_path: Path) -> None:
    from tests.test_status_auth import HOST, PASSWORD, USER, _login, _request, _secured_station

    port = free_port()
    with running_line(_secured_station(tmp_path / "secured", port, "ko"), "--max-parts", "600") as line:
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 90, "the status page")
        status, _, body = _request(port, "/", {"Accept": "text/html"})
        page = body.decode("utf-8")
        assert status == 401 and 'id="login"' in page and '<html lang="ko">' in page
        title = "<title>lineside 상태: 로그인</title>"
        for words in (title, ">사용자 이름</label>", ">비밀번호</label>", ">로그인</button>"):
            assert words in page, words
        assert "user name" not in page and "{{" not in page
        status, _, body = _login(port, USER, PASSWORD + "!")
        assert status == 401 and "사용자 이름 또는 비밀번호가 틀렸습니다" in body.decode("utf-8")
        assert _login(port, USER, PASSWORD)[0] == 303, HOST  # the login itself is the same in any language
