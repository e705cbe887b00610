"""`lineside records alarms` on a real `lineside run`: a line whose parts' defect rate rises after a
baseline, replayed from its records, finds the reject-rate alarm on the first subgroup after the rise and
draws its control chart; a steady line gives none; a folder with no records is one clear error."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import cv2
import pytest

from edge.judge.inspection import Verdict
from edge.records.query import query
from edge.spc.config import SpcConfig
from edge.spc.replay import LineCharts
from lineside.commands.records_alarms import load_spc, run_alarms
from tests.line import lineside, make_station
from tests.test_spc import _record

SUBGROUP, BASELINE = 10, 5
# 5 baseline subgroups with 1 defective part in 10 (centre 0.1), then 5 subgroups with 8 in 10: the first of
# them (subgroup 5) must alarm. Exact limits (docs/spc.md): the next subgroup's count given 5 of 50 in the
# baseline is beta-binomial; P(X >= 6 of 10) is under the 3-sigma tail 0.00135, P(X >= 5) is not, so the
# upper limit lies between 5 and 6 of 10 (0.55).
STEADY = "ggggdggggg" * BASELINE
RISING = STEADY + "ddgddddgdd" * 5


@pytest.mark.slow
def test_a_real_run_whose_defect_rate_rises_is_found_by_records_alarms(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, RISING)
    run = lineside("run", str(config), "--max-parts", str(len(RISING)))
    assert run.returncode == 0, run.stderr[-3000:]
    records_dir = tmp_path / "records"
    records = query(records_dir / "records.db")
    assert [r.verdict.value for r in records] == ["REJECT" if k == "d" else "ACCEPT" for k in RISING]

    pngs = tmp_path / "charts"
    proc = lineside(
        "records",
        "alarms",
        "--replay",
        "--dir",
        str(records_dir),
        "--subgroup",
        str(SUBGROUP),
        "--baseline-subgroups",
        str(BASELINE),
        "--png",
        str(pngs),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first_key = f"{records[SUBGROUP * BASELINE].boot_id}:{records[SUBGROUP * BASELINE].seq}"
    last_key = f"{records[SUBGROUP * BASELINE + 9].boot_id}:{records[SUBGROUP * BASELINE + 9].seq}"
    expected = (
        "  reject rate: a point beyond 3 sigma (above) at subgroup 5 (value 0.8, centre 0.1, limits 0 to "
        f"0.55); 10 parts, {first_key} to {last_key}."
    )
    assert expected in lines, proc.stdout
    assert lines[0].endswith(
        f"in {len(RISING)} parts ({len(RISING)} judged, {RISING.count('d')} with a kept image):"
    )
    assert lines[-1] == (
        f"Image drift: {RISING.count('d')} kept images, fewer than the 200 its baseline needs: not charted."
    )
    pictures = sorted(pngs.glob("*.png"))
    assert any("reject_rate-beyond_3sigma" in p.name for p in pictures), pictures
    image = cv2.imread(str(pictures[0]))
    assert image is not None and image.shape[0] > 200

    # The steady first half alone: no alarm, in one line.
    between = (records[SUBGROUP * BASELINE - 1].triggered_at + records[SUBGROUP * BASELINE].triggered_at) / 2
    steady_until = datetime.fromtimestamp(between, tz=timezone.utc)
    out = io.StringIO()
    code = run_alarms(
        records_dir,
        until=steady_until.isoformat(),
        stdout=out,
        pchart={"subgroup": SUBGROUP, "baseline_subgroups": BASELINE},
    )
    assert code == 0
    assert (
        out.getvalue().splitlines()[0]
        == f"No line alarm in {len(STEADY)} parts ({len(STEADY)} judged, 5 with a kept image)."
    )


def test_records_alarms_without_records_is_one_clear_error(tmp_path: Path) -> None:
    err = io.StringIO()
    assert run_alarms(tmp_path, stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue() == f"lineside records alarms: {tmp_path}: no records database (records.db)\n"


def test_the_spc_file_is_validated_and_the_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text("spc:\n  pchart:\n    subgroup: 30\n    run_length: 8\n", encoding="utf-8")
    config = load_spc(path, {"subgroup": 20})
    assert (config.pchart.subgroup, config.pchart.run_length) == (20, 8)
    path.write_text("pchart:\n  subgroups: 30\n", encoding="utf-8")
    err = io.StringIO()
    assert run_alarms(tmp_path, spc_file=path, stdout=io.StringIO(), stderr=err) == 2
    assert "subgroups" in err.getvalue()


def test_an_ewma_alarm_gets_its_control_chart_picture(tmp_path: Path) -> None:
    from lineside.commands.records_alarms_png import write_pngs

    charts = LineCharts(SpcConfig())
    baseline = charts.config.score.baseline
    for seq in range(1, baseline + 120):
        creep = max(0, seq - baseline) * 0.004
        charts.add_record(_record(seq, Verdict.ACCEPT, 0.2 + 0.01 * (seq % 3) + creep))
    assert [a.chart for a in charts.alarms] == ["score"]
    (picture,) = write_pngs(charts, tmp_path / "charts")
    assert picture.name == "alarm-001-score-ewma_high.png"
    assert cv2.imread(str(picture)) is not None


def test_the_calibration_reference_frame_gives_the_image_drift_centres(tmp_path: Path) -> None:
    import numpy as np

    from calibration.check import set_reference
    from edge.errors import LinesideError
    from edge.spc.drift import frame_measures, reference_measures
    from training.synth import render_part

    scene, _ = render_part(np.random.default_rng(1), defective=False, size=(640, 480))
    calibration = tmp_path / "station.json"
    set_reference(calibration, scene)
    grey = np.asarray(cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    assert reference_measures(calibration) == pytest.approx(frame_measures(grey))
    with pytest.raises(LinesideError, match="calibration file missing"):
        reference_measures(tmp_path / "missing.json")
