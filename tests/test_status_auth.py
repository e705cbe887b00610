"""The status page off 127.0.0.1 asks who is looking: a real `lineside run` bound to 127.0.0.2 refuses a plain
HTTP client without credentials on every route (401), takes the bearer token and a browser login (an HttpOnly,
SameSite=Strict session cookie), and a real browser logs in on the form and sees the live page."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from edge.opcua.users import add_user
from edge.status.config import StatusConfig
from edge.status.evidence import PREFIXES as EVIDENCE_ROUTES
from tests.line import RunningLine, free_port, lineside, make_station, running_line
from tests.test_status_page import browser  # noqa: F401 (the real browser fixture, shared)

HOST = "127.0.0.2"  # loopback, but not 127.0.0.1: the page must ask for credentials here
USER, PASSWORD = "shift-lead", "correct horse battery staple"
TOKEN = "scrape-token-0123456789abcdef"
# Every route, a part's evidence (pictures of the plant's parts) included, and one that does not exist.
ROUTES: tuple[str, ...] = ("/", "/index.html", "/api/status", "/api/frame.jpg", "/metrics", "/healthz")
ROUTES += ("/no-such-page", *(f"{prefix}2" for prefix in EVIDENCE_ROUTES))


def _secured_station(root: Path, port: int, language: str | None = None) -> Path:
    root.mkdir(parents=True)
    add_user(root / "status-users", USER, PASSWORD)
    (root / "status-token").write_text(TOKEN + "\n", encoding="utf-8")
    status = {
        "enabled": True,
        "bind": HOST,
        "port": port,
        "users_file": "status-users",  # relative to the config file, like every path there
        "token_file": "status-token",
    }
    extra: dict[str, object] = {"status": status}
    if language is not None:
        extra["station"] = {"language": language}
    config, _ = make_station(root / "station", "gd", takt_ms=100, extra=extra)
    for name in ("status-users", "status-token"):
        (root / name).rename(root / "station" / name)
    return config


@contextmanager
def _secured_line(tmp_path: Path) -> Iterator[tuple[RunningLine, int]]:
    port = free_port()
    with running_line(_secured_station(tmp_path / "secured", port), "--max-parts", "600") as line:
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 30, "the status page")
        yield line, port


def _request(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET", body: str | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        conn.close()


def _login(port: int, user: str, password: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    form = urlencode({"user": user, "password": password})
    kind = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    return _request(port, "/login", kind, "POST", form)


@pytest.mark.slow
def test_a_plain_http_client_needs_the_token_or_a_login_on_every_route(tmp_path: Path) -> None:
    with _secured_line(tmp_path) as (line, port):
        for route in ROUTES:
            status, headers, body = _request(port, route)
            assert status == 401, route
            assert headers["WWW-Authenticate"] == 'Bearer realm="lineside-status"', route
            assert b"count-total" not in body and b"lineside_" not in body, route
        # A browser without a session gets the login form, not the page.
        status, _, body = _request(port, "/", {"Accept": "text/html"})
        assert status == 401 and b'id="login"' in body and b"count-total" not in body
        for wrong in (f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN} extra", f"Basic {TOKEN}", TOKEN):
            assert _request(port, "/api/status", {"Authorization": wrong})[0] == 401, wrong
        assert _request(port, "/api/status", method="POST", body="{}")[0] == 401

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        status, _, body = _request(port, "/metrics", bearer)
        assert status == 200 and b"lineside_" in body
        status, _, body = _request(port, "/api/status", bearer)
        assert status == 200 and b'"counts"' in body

        status, _, body = _login(port, USER, PASSWORD + "!")
        assert status == 401 and b"wrong user name or password" in body
        status, headers, _ = _login(port, USER, PASSWORD)
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        session = {"Cookie": cookie.split(";", 1)[0]}
        for route in ("/", "/api/status", "/metrics"):
            assert _request(port, route, session)[0] == 200, route
        assert _request(port, "/logout", session, "POST", "")[0] == 303
        assert _request(port, "/api/status", session)[0] == 401  # that session is gone
        # Nothing else answers: the page is bound to 127.0.0.2 only.
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()
    log = "".join(line.stderr)
    assert "login or bearer token required" in log
    assert f"status: login refused for '{USER}'" in log and f"status: {USER} logged in" in log
    assert PASSWORD not in log and TOKEN not in log  # secrets are never logged


@pytest.mark.slow
def test_a_real_browser_logs_in_on_the_form_and_sees_the_live_page(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    with _secured_line(tmp_path) as (_, port):
        driver.get(f"http://{HOST}:{port}/")
        assert driver.find_elements(By.ID, "login") and not driver.find_elements(By.ID, "count-total")
        _submit(driver, USER, "not the password")
        _wait(lambda: "wrong user name or password" in driver.find_element(By.ID, "login-message").text, 10)
        _submit(driver, USER, PASSWORD)
        _wait(lambda: bool(driver.find_elements(By.ID, "count-total")), 10)
        first = _count(driver)
        _wait(lambda: _count(driver) >= first + 2, 20)  # live: the page's own fetches carry the cookie
        (session,) = [c for c in driver.get_cookies() if c["name"] == "lineside_status"]
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"
        assert driver.execute_script("return document.cookie") == ""  # no script can read it
        # Logged out behind its back (the cookie gone), the page goes back to the login form by itself.
        driver.delete_all_cookies()
        _wait(lambda: bool(driver.find_elements(By.ID, "login")), 10)


def _submit(driver: WebDriver, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "login-user").clear()
    driver.find_element(By.ID, "login-user").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def _count(driver: WebDriver) -> int:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, "count-total")
    return int(found[0].text or 0) if found else -1


def _wait(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:  # the page may be between documents; ask again
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s")


def test_off_loopback_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bind 0\.0\.0\.0 needs users_file"):
        StatusConfig(bind="0.0.0.0")
    assert StatusConfig(bind="0.0.0.0", token_file=Path("t")).protected
    assert not StatusConfig().protected


def test_run_check_refuses_a_missing_users_file_and_a_short_token(tmp_path: Path) -> None:
    port = free_port()
    config = _secured_station(tmp_path / "ok", port)
    proc = lineside("run", "--check", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "status: page asks for a login: 1 user(s) from" in proc.stdout + proc.stderr
    (config.parent / "status-users").unlink()
    proc = lineside("run", "--check", str(config))
    assert proc.returncode != 0 and "status.users_file" in proc.stderr
    config = _secured_station(tmp_path / "short", port)
    (config.parent / "status-token").write_text("short\n", encoding="utf-8")
    proc = lineside("run", "--check", str(config))
    assert proc.returncode != 0 and "status.token_file" in proc.stderr and "at least 16" in proc.stderr
