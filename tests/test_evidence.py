"""Evidence on a real `lineside run`: a REJECT keeps what fired and by how much (in mm once calibrated), its
crops with the box drawn and an evidence picture; a FAULT says why; a near-threshold ACCEPT is marked; the
status page serves the same evidence.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from selenium.webdriver.remote.webdriver import WebDriver

from edge.errors import ErrorCode
from edge.records.images import crop_files
from edge.records.model import InspectionRecord
from edge.records.query import query
from edge.station.calibfile import CameraFrame, ScaleSection, update_calibration
from edge.status.evidence import evidence_response
from edge.status.frame import LastFrame
from edge.status.metrics import LineMetrics
from edge.status.server import StatusServer
from edge.status.state import StationState
from tests.line import FRAME_H, FRAME_W, free_port, lineside, make_station, running_line
from tests.mapmodels import dark_part, make_map_model, with_spot
from tests.test_status_page import browser  # noqa: F401 (the headless Chromium fixture)

pytestmark = pytest.mark.slow

NEAR_GREY = 112  # the tiny model scores a frame by its mean: ~0.44, within 0.1 below its 0.5 threshold
MM_PER_PX = 0.2


def _run(config: Path, parts: int) -> list[InspectionRecord]:
    proc = lineside("run", str(config), "--max-parts", str(parts), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return query(config.parent / "records" / "records.db")


def _show(records: Path, seq: int, out: Path) -> str:
    shown = lineside("records", "show", str(seq), "--dir", str(records), "--out", str(out))
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def _decoded(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable picture"
    return np.asarray(image)


def _assert_the_status_page_serves(
    records_dir: Path, reject: InspectionRecord, fault: InspectionRecord, picture: bytes
) -> None:
    """The status page's routes serve the same evidence as `records show` (read only, from the records)."""
    status, kind, body = evidence_response(records_dir, f"/api/evidence/{reject.boot_id}-{reject.seq}")
    assert status == 200 and kind == "application/json"
    served = json.loads(body)
    assert served["evidence"]["rule"] == reject.evidence["rule"]
    assert served["picture"] == f"/evidence/{reject.boot_id}-{reject.seq}.png"
    status, kind, png = evidence_response(records_dir, f"/evidence/{reject.seq}.png")
    assert status == 200 and kind == "image/png" and png == picture
    assert evidence_response(records_dir, "/evidence/999.png")[0] == 404
    assert evidence_response(records_dir, "/api/evidence/..%2Fx")[0] == 404
    # ...and through the status server's routing, over HTTP on loopback.
    state = StationState("test-line", history=10, quota_bytes=1 << 20)
    server = StatusServer(
        "127.0.0.1", 0, state, LineMetrics(state, records_dir), LastFrame(records_dir, "jpg")
    )
    server.start()
    try:
        host, port = server.address
        with urllib.request.urlopen(f"http://{host}:{port}/evidence/{reject.seq}.png", timeout=10) as reply:
            assert reply.status == 200 and reply.read() == png
        with urllib.request.urlopen(f"http://{host}:{port}/api/evidence/{fault.seq}", timeout=10) as reply:
            assert json.loads(reply.read())["evidence"]["rule"]["code"] == "fault.frame"
    finally:
        server.close()


def test_reject_fault_and_near_threshold_accept_carry_their_evidence_in_a_real_run(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "gdgg", corrupt_at=3)
    cv2.imwrite(str(tmp_path / "parts" / "part_002.png"), np.full((FRAME_H, FRAME_W, 3), NEAR_GREY, np.uint8))
    good, reject, near, fault = _run(config, 4)
    records_dir = tmp_path / "records"
    assert [r.verdict.value for r in (good, reject, near, fault)] == ["ACCEPT", "REJECT", "ACCEPT", "FAULT"]

    # The REJECT: deciding stage, the rule that fired, its margins, and codes rather than sentences.
    evidence = reject.evidence
    assert evidence["verdict"] == "REJECT" and evidence["deciding_stage"] == "detector"
    rule = evidence["rule"]
    assert rule["code"] == "detect.reject" and rule["class"] == "scratch" and rule["threshold"] == 0.5
    assert rule["margin"] == pytest.approx(rule["score"] - 0.5, abs=1e-3) and rule["margin"] > 0.1
    assert rule["units"] == "px" and rule["size_margin"] == pytest.approx(rule["size"] - 0.0, abs=1e-3)
    assert reject.image_path is not None
    raw = _decoded(records_dir / reject.image_path)
    crops = crop_files(records_dir, reject.image_path)
    assert len(crops) == len(evidence["crops"]) >= 1
    drawn, meta = _decoded(crops["0"]), evidence["crops"][0]
    x, y, w, h = meta["rect"]
    plain = cv2.resize(
        raw[y : y + h, x : x + w], (drawn.shape[1], drawn.shape[0]), interpolation=cv2.INTER_NEAREST
    )
    changed = np.any(np.abs(drawn.astype(int) - plain.astype(int)) > 60, axis=2)
    assert 0.01 < changed.mean() < 0.5, "the box is drawn on the crop, and the crop is still the frame"
    assert drawn[changed][:, 2].mean() > 150  # the box is drawn in red (BGR)

    text = _show(records_dir, reject.seq, tmp_path / "reject.png")
    assert "rule: detector: detect.reject scratch score" in text and f"(margin {rule['margin']:+.3f})" in text
    picture = _decoded(tmp_path / "reject.png")
    assert picture.std() > 20 and picture.shape[0] > drawn.shape[0] and picture.shape[1] >= drawn.shape[1]
    assert np.array_equal(picture[8 : 8 + drawn.shape[0], 8 : 8 + drawn.shape[1]], drawn)

    # The near-threshold ACCEPT: marked, and what came close is kept with its (negative) margin.
    assert near.near_threshold and not good.near_threshold
    closest = near.evidence["runner_ups"][0]
    assert closest["code"] == "detect.below_confidence" and -0.1 <= closest["margin"] < 0
    assert near.evidence["near_threshold"] and near.evidence["rule"] is None
    assert "ACCEPT  (near threshold)" in _show(records_dir, near.seq, tmp_path / "near.png")
    assert crop_files(records_dir, near.image_path or "") != {}

    # The FAULT says why: its error code, kind and the reason behind it.
    assert fault.error_code == ErrorCode.FRAME
    why = fault.evidence["rule"]
    assert why["code"] == "fault.frame" and why["error_code"] == int(ErrorCode.FRAME) and why["detail"]
    assert "error 2 (frame)" in _show(records_dir, fault.seq, tmp_path / "fault.png")

    _assert_the_status_page_serves(records_dir, reject, fault, (tmp_path / "reject.png").read_bytes())


def test_a_calibrated_reject_states_its_size_margin_in_mm(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "d")
    calibration = tmp_path / "station.json"
    update_calibration(
        calibration, CameraFrame(width=FRAME_W, height=FRAME_H), scale=ScaleSection(mm_per_px=MM_PER_PX)
    )
    data = yaml.safe_load(config.read_text())
    data["recipes"][0]["calibration"] = str(calibration)
    data["recipes"][0]["rules"] = {"default": {"min_confidence": 0.5, "min_size_mm": 2.0}}
    config.write_text(yaml.safe_dump(data))
    (reject,) = _run(config, 1)
    rule = reject.evidence["rule"]
    x1, y1, x2, y2 = rule["box"]
    assert rule["units"] == "mm" and rule["size_limit"] == 2.0
    assert rule["size"] == pytest.approx(max(x2 - x1, y2 - y1) * MM_PER_PX, abs=0.05)
    assert rule["size_margin"] == pytest.approx(rule["size"] - 2.0, abs=1e-3)
    assert rule["centre_mm"] == pytest.approx(
        [(x1 + x2) / 2 * MM_PER_PX, (y1 + y2) / 2 * MM_PER_PX], abs=0.05
    )
    text = _show(tmp_path / "records", reject.seq, tmp_path / "mm.png")
    assert f"size {rule['size']:.2f} mm >= 2.00 mm (margin {rule['size_margin']:+.2f} mm)" in text


def test_a_chain_reject_names_its_deciding_stage_draws_its_heat_map_and_keeps_the_runner_up(
    tmp_path: Path,
) -> None:
    classifier = make_map_model(tmp_path / "classifier", "classify", threshold=0.41)
    config, _ = make_station(tmp_path, "g")
    # A dark part with a small bright spot: the detector scores it low (a runner-up), the classifier rejects.
    cv2.imwrite(str(tmp_path / "parts" / "part_000.png"), with_spot(dark_part(FRAME_W, FRAME_H), 120, 30, 3))
    text = config.read_text(encoding="utf-8").replace(
        "name: test-part", f"name: test-part\n  stages:\n  - model: {classifier}"
    )
    config.write_text(text, encoding="utf-8")
    (spotted,) = _run(config, 1)
    evidence = spotted.evidence
    assert evidence["deciding_stage"] == "classifier" and evidence["deciding_kind"] == "classify"
    rule = evidence["rule"]
    assert rule["code"] == "classify.reject" and rule["threshold"] == 0.41 and rule["margin"] > 0.5
    hx, hy = rule["hottest"]
    assert abs(hx - 120) < 20 and abs(hy - 30) < 20  # the heat map's hottest point is the spot
    runner = evidence["runner_ups"][0]
    assert (
        runner["stage"] == "detector" and runner["code"] == "detect.below_confidence" and runner["margin"] < 0
    )
    assert [s["stage"] for s in evidence["stages"]] == ["detector", "classifier"]
    meta = evidence["crops"][0]
    assert meta["draw"] == "heat" and meta["stage"] == "classifier"
    records_dir = tmp_path / "records"
    drawn = _decoded(crop_files(records_dir, spotted.image_path or "")["0"])
    raw = _decoded(records_dir / (spotted.image_path or ""))
    x, y, w, h = meta["rect"]
    plain = cv2.resize(
        raw[y : y + h, x : x + w], (drawn.shape[1], drawn.shape[0]), interpolation=cv2.INTER_NEAREST
    )
    assert np.array_equal(plain[..., 0], plain[..., 2]), "the raw crop is grey"
    coloured = (drawn.max(axis=2).astype(int) - drawn.min(axis=2)) > 40
    rows, cols = np.indices(drawn.shape[:2])
    scale = meta["scale"]
    from_centre = np.hypot(cols - (hx - x) * scale, rows - (hy - y) * scale)
    ring = np.abs(from_centre - 10 * scale) <= 2 * round(scale) + 3  # the ring drawn around the hottest point
    assert (coloured & ring).any() and (coloured & ~ring).sum() >= 10, "the heat map is drawn in colour"
    shown = _show(records_dir, spotted.seq, tmp_path / "chain.png")
    assert "deciding stage: classifier (classify)" in shown and "below threshold: detector:" in shown


def test_a_verdict_row_on_the_status_page_opens_its_evidence_picture(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
) -> None:
    from selenium.webdriver.common.by import By

    http = free_port()
    config, _ = make_station(
        tmp_path / "station", "gd", takt_ms=150, extra={"status": {"enabled": True, "port": http}}
    )
    with running_line(config, "--max-parts", "400") as line:
        line.wait_for(lambda: any("status page at" in text for text in line.stderr), 30, "the status page")
        browser.get(f"http://127.0.0.1:{http}/")
        links = lambda: browser.find_elements(By.CSS_SELECTOR, "#stream tr.REJECT td:first-child a")  # noqa: E731
        line.wait_for(lambda: bool(links()), 30, "a REJECT row with its evidence link")
        href = str(links()[-1].get_attribute("href"))
        assert href.startswith(f"http://127.0.0.1:{http}/evidence/") and href.endswith(".png")
        line.wait_for(lambda: _served(href), 10, "the part's record (the recorder writes it just after)")
        browser.get(href)
        width = browser.execute_script(
            "const i = document.images[0]; return i && i.complete && i.naturalWidth"
        )
    assert isinstance(width, int) and width >= 640  # the evidence picture, as `records show` draws it


def _served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return bool(reply.status == 200 and reply.read()[:8] == b"\x89PNG\r\n\x1a\n")
    except OSError:
        return False
