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
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 30, "the status page")
        driver.get(f"http://127.0.0.1:{http}/")
        _wait(lambda: _count(driver, "count-reject") >= 1, 30, "the first reject on the page")
        _wait(lambda: driver.find_element(By.ID, "line-state").text == "준비 완료", 10, "the line READY")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert driver.execute_script("return document.documentElement.lang") == "ko"
        for words in ("이번 근무조", "양품", "불량", "수율", "결함 종류별 불량", "판정", "작업 프로세스"):
            assert words in body, words
        assert "This shift" not in body and "Rejects by class" not in body
        # The verdict and its reason, in Korean: re-rendered from the record's codes, not the line's English.
        _wait(lambda: "불량: scratch" in driver.find_element(By.ID, "stream").text, 10, "a Korean reason")
        _wait(lambda: "양품: 검사 영역에" in driver.find_element(By.ID, "stream").text, 10, "a Korean accept")
        assert driver.title == "lineside 상태"
        shot = tmp_path / "status-page-ko.png"
        assert driver.save_screenshot(str(shot))
    picture = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert picture is not None and picture.shape[1] >= 1000
    assert float(np.std(picture)) > 10  # not blank: text, tiles and the frame drawn
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    print(f"Korean status page screenshot: {ARTIFACTS / shot.name}")
