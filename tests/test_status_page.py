"""The status page in a real browser (headless Chromium driven by selenium) against a real `lineside run`:
the counts change live without a reload, and a screenshot is kept as an artifact."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.debian import require_debian
from tests.line import free_port, make_station, running_line

pytestmark = pytest.mark.slow  # each runs `lineside run` as a process

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    require_debian("chromium", "chromium-driver", programs=("chromium", "chromedriver"))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=str(shutil.which("chromedriver")))
    )
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def _count(driver: WebDriver, element_id: str) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.ID, element_id).text or 0)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_shows_counts_changing_live_and_the_last_frame(tmp_path: Path, browser: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    http = free_port()
    config, _ = make_station(
        tmp_path / "station", "gd", takt_ms=150, extra={"status": {"enabled": True, "port": http}}
    )
    with running_line(config, "--max-parts", "400") as line:
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 30, "the status page")
        driver.get(f"http://127.0.0.1:{http}/")
        _wait(lambda: _count(driver, "count-total") >= 2, 30, "the first parts on the page")
        navigations = driver.execute_script("return performance.getEntriesByType('navigation').length")
        first = _count(driver, "count-total")
        _wait(lambda: _count(driver, "count-total") >= first + 3, 20, "the counts to move without a reload")
        # Still the same document: updated by fetch, not by reloading the page.
        assert (
            driver.execute_script("return performance.getEntriesByType('navigation').length") == navigations
        )
        assert _count(driver, "count-accept") + _count(driver, "count-reject") == _count(
            driver, "count-total"
        )
        assert _count(driver, "count-reject") >= 1
        _wait(
            lambda: (
                driver.execute_script(
                    "const i = document.getElementById('frame'); return i.complete && i.naturalWidth"
                )
                == 480
            ),
            10,
            "the last kept frame",
        )
        assert driver.find_element(By.ID, "line-state").text == "READY"
        assert driver.find_element(By.ID, "link-state").text == "up"
        assert "test-part" in driver.find_element(By.ID, "recipe").text
        assert "scratch" in driver.find_element(By.ID, "pareto").text
        assert "capture" in driver.find_element(By.ID, "workers").text
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    print(f"status page screenshot: {ARTIFACTS / shot.name}")
