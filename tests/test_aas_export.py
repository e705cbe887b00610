"""`lineside aas export`: the station's AAS environment, proven valid by checkers nobody here wrote (IDTA's
aas-test-engines and aas-core3.0), read back by BaSyx into the same objects, with counters per shift that
match the records, a one-line error naming the field at fault, and an atomic write."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from basyx.aas.adapter import aasx

from edge.aas.counts import read_snapshot
from edge.aas.environment import build_environment
from edge.aas.files import read_export
from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Verdict
from edge.records.config import RecordsConfig
from edge.records.model import InspectionRecord
from edge.records.store import RecordStore
from edge.station.calibfile import CalibrationFile, CameraFrame, ScaleSection, save_calibration
from edge.station.config import load_config
from lineside.commands.aas import export, run_export
from tests.aascheck import aas_core_errors, canonical, element, idta_errors, submodel_json
from tests.line import lineside, make_station

# A fixed moment (local time) and two shifts a day, so each record's shift is known from its hour alone.
NOW = datetime(2026, 5, 4, 15, 0).timestamp()
SHIFTS = ["00:00", "12:00"]
IDTA_SEMANTIC_IDS = {
    "Nameplate": "https://admin-shell.io/idta/nameplate/3/0/Nameplate",
    "TechnicalData": "0173-1#01-AHX837#002",
    "AssetInterfacesDescription": "https://admin-shell.io/idta/AssetInterfacesDescription/1/0/Submodel",
    "InspectionRecords": "https://admin-shell.io/idta/TimeSeries/1/1",
}


def _record(seq: int, verdict: Verdict, at: datetime) -> InspectionRecord:
    t = at.timestamp()
    return InspectionRecord(
        boot_id=3,
        seq=seq,
        part_id=f"P{seq}",
        recipe="test-part",
        verdict=verdict,
        reasons=(f"{verdict.value}: part {seq}",),
        error_code=ErrorCode.CAMERA if verdict is Verdict.FAULT else ErrorCode.NONE,
        detections=(),
        model_name="test-model",
        model_version="1.0.0",
        model_sha256="cd" * 32,
        triggered_at=t,
        decided_at=t + 0.05,
        latency_ms={"total": 50.0},
        near_threshold=False,
        late=False,
    )


# (hour on 4 May, or None for 23:00 on 3 May; verdict) for every stored part.
PARTS = [
    (None, Verdict.ACCEPT),
    (8, Verdict.ACCEPT),
    (9, Verdict.REJECT),
    (10, Verdict.FAULT),
    (12, Verdict.ACCEPT),
    (13, Verdict.ACCEPT),
    (13, Verdict.REJECT),
    (14, Verdict.ACCEPT),
    (14, Verdict.FAULT),
    (14, Verdict.REJECT),
]


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """A station config with `aas:` identity fields and a records database holding PARTS."""
    config, _ = make_station(
        tmp_path,
        extra={
            "aas": {
                "shell_id": "https://plant.example/aas/station-7",
                "asset_id": "https://plant.example/asset/station-7",
                "serial_number": "SN-0007",
                "manufacturer_name": "Example Automation",
                "shift_starts": SHIFTS,
                "shifts_kept": 3,
            }
        },
    )
    records = RecordsConfig.model_validate({"dir": tmp_path / "records", "quota_mb": 5})
    with RecordStore(records) as store:
        for seq, (hour, verdict) in enumerate(PARTS, start=1):
            at = datetime(2026, 5, 3, 23, 0) if hour is None else datetime(2026, 5, 4, hour, 30)
            store.add(_record(seq, verdict, at))
    return config


def _expected_counts(first_hour: int, last_hour: int) -> dict[str, Any]:
    """The counters the records of one shift (hours first..last on 4 May) must give, from PARTS."""
    verdicts = [v for h, v in PARTS if h is not None and first_hour <= h <= last_hour]
    good = verdicts.count(Verdict.ACCEPT)
    return {
        "InspectedQuantity": len(verdicts),
        "GoodQuantity": good,
        "RejectedQuantity": verdicts.count(Verdict.REJECT),
        "FaultQuantity": verdicts.count(Verdict.FAULT),
        "ScrapQuantity": len(verdicts) - good,
        "QualityRatio": round(good / len(verdicts), 6),
    }


def _shift_values(shift: dict[str, Any]) -> dict[str, Any]:
    return {
        e["idShort"]: (float(e["value"]) if e["valueType"] == "xs:double" else int(e["value"]))
        for e in shift["value"]
        if e["idShort"] not in ("ShiftStart", "ShiftEnd")
    }


@pytest.mark.parametrize("suffix", [".aasx", ".json"])
def test_export_passes_idta_test_engine_and_aas_core_and_reads_back_equal(
    station: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"station{suffix}"
    written, count = export(station, out, now=NOW)
    assert written == out and count == 7  # the shell and 6 submodels (one AI model)
    assert idta_errors(out) == []
    assert aas_core_errors(out) == []
    config = load_config(station)
    expected = build_environment(config, read_snapshot(config.records.dir, tuple(SHIFTS), 3, NOW))
    assert canonical(read_export(out)) == canonical(expected)


def test_counters_per_shift_and_the_linked_record_history_follow_the_records(
    station: Path, tmp_path: Path
) -> None:
    out = tmp_path / "station.json"
    export(station, out, now=NOW)
    env = json.loads(out.read_text(encoding="utf-8"))
    results = submodel_json(env, "InspectionResults")
    assert _shift_values(element(results, "CurrentShift")) == _expected_counts(12, 23)
    shifts = element(results, "Shifts")["value"]
    assert [_shift_values(s) for s in shifts[:2]] == [_expected_counts(12, 23), _expected_counts(0, 11)]
    assert element(results, "RecordsStored")["value"] == str(len(PARTS))
    assert element(results, "LastResult", "Seq")["value"] == str(len(PARTS))
    assert element(results, "ModelInUse", "Sha256")["value"] == "cd" * 32

    segment = element(submodel_json(env, "InspectionRecords"), "Segments", "LinkedSegment")
    assert element(segment, "Endpoint")["value"] == "http://127.0.0.1:8089/records"
    assert element(segment, "RecordCount")["value"] == str(len(PARTS))
    assert element(segment, "Query")["value"].startswith("since=2026-05-03T")
    # A link, never the records themselves.
    assert "Records" not in {
        e["idShort"] for e in element(submodel_json(env, "InspectionRecords"), "Segments")["value"]
    }


def test_the_shell_names_the_station_by_its_ids_and_every_submodel_by_its_template(
    station: Path, tmp_path: Path
) -> None:
    out = tmp_path / "station.json"
    export(station, out, now=NOW)
    env = json.loads(out.read_text(encoding="utf-8"))
    [shell] = env["assetAdministrationShells"]
    assert shell["id"] == "https://plant.example/aas/station-7"
    assert shell["assetInformation"]["globalAssetId"] == "https://plant.example/asset/station-7"
    assert shell["assetInformation"]["specificAssetIds"] == [{"name": "serialNumber", "value": "SN-0007"}]
    semantic = {sm["idShort"]: sm["semanticId"]["keys"][0]["value"] for sm in env["submodels"]}
    assert {k: semantic[k] for k in IDTA_SEMANTIC_IDS} == IDTA_SEMANTIC_IDS
    referenced = {ref["keys"][0]["value"] for ref in shell["submodels"]}
    assert referenced == {sm["id"] for sm in env["submodels"]}
    nameplate = submodel_json(env, "Nameplate")
    mandatory = [
        "URIOfTheProduct",
        "ManufacturerName",
        "ManufacturerProductDesignation",
        "AddressInformation",
    ]
    assert all(element(nameplate, name) for name in [*mandatory, "OrderCodeOfManufacturer"])
    assert element(nameplate, "SerialNumber")["value"] == "SN-0007"
    [model_sm] = [sm for sm in env["submodels"] if sm["idShort"].startswith("AIModel_")]
    card = json.loads((tmp_path / "model" / "card.json").read_text(encoding="utf-8"))
    assert element(model_sm, "ModelCard", "Sha256")["value"] == card["sha256"]
    assert element(model_sm, "ModelCard", "Classes")["value"] == ",".join(card["classes"])
    fingerprint = element(model_sm, "ModelCard", "TrainingDataFingerprint")["value"]
    assert fingerprint == card["training"]["data_fingerprint"]
    modbus = element(submodel_json(env, "AssetInterfacesDescription"), "RobotLinkModbus")
    properties = element(modbus, "InteractionMetadata", "properties")["value"]
    assert {p["idShort"] for p in properties} >= {"STATUS", "RESULT_WORD", "TRIGGER_SEQ", "RECIPE"}


def test_export_of_the_demo_line_with_no_config_runs_as_a_process(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    for name in ("demo.aasx", "demo.json"):
        out = tmp_path / name
        result = _lineside_env(env, "aas", "export", "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert f"wrote {out}" in result.stderr
        assert idta_errors(out) == [] and aas_core_errors(out) == []
    demo = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    models = sorted(sm["idShort"] for sm in demo["submodels"] if sm["idShort"].startswith("AIModel_"))
    assert models == ["AIModel_demo_1_0_0", "AIModel_demo_anomaly_1_1_0"]  # recipe 2's chain has both


def _lineside_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("aas", "field"),
    [
        ({"shell_id": "not an id"}, "aas.shell_id"),
        ({"asset_id": "station-7"}, "aas.asset_id"),
        ({"manufacturer_name": ""}, "aas.manufacturer_name"),
        ({"bind": "0.0.0.0"}, "token_file"),
    ],
)
def test_a_bad_id_or_missing_value_is_one_line_naming_the_field(
    tmp_path: Path, aas: dict[str, Any], field: str
) -> None:
    config, _ = make_station(tmp_path, extra={"aas": aas})
    result = lineside("aas", "export", str(config), "--out", str(tmp_path / "x.aasx"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], result.stderr
    assert not (tmp_path / "x.aasx").exists()


def test_a_model_without_its_card_names_the_recipe_field(station: Path, tmp_path: Path) -> None:
    (tmp_path / "model" / "card.json").unlink()
    with pytest.raises(LinesideError, match=r"^recipes\.0\.model: "):
        export(station, tmp_path / "x.json", now=NOW)


def test_a_failed_write_leaves_the_previous_file_whole_and_no_partial_file(
    station: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "station.json"
    export(station, out, now=NOW)
    before = out.read_bytes()

    def fail(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(LinesideError, match="No space left on device"):
        export(station, out, now=NOW + 3600)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".station")) == []
    err = io.StringIO()
    assert run_export(station, tmp_path / "other.aasx", now=NOW, stderr=err) == 2
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "other.aasx").exists()


def test_the_package_declares_aas_3_0_because_the_checkers_refuse_basyx_s_own_3_1_package(
    station: Path, tmp_path: Path
) -> None:
    """Why files.py rebinds the namespace: IDTA's engine checks AAS 3.0 and refuses BaSyx 2.2's 3.1 AASX."""
    out = tmp_path / "station.aasx"
    export(station, out, now=NOW)
    native = tmp_path / "native.aasx"
    config = load_config(station)
    store = build_environment(config, read_snapshot(config.records.dir, tuple(SHIFTS), 3, NOW))
    raw = io.BytesIO()
    with aasx.AASXWriter(raw) as writer:
        writer.write_aas([config.aas.shell_id or ""], store, aasx.DictSupplementaryFileContainer())
    native.write_bytes(raw.getvalue())
    assert any("invalid namespace" in e for e in idta_errors(native))
    assert idta_errors(out) == []


def test_run_check_refuses_an_unreadable_or_short_token_naming_the_field(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("short\n", encoding="utf-8")
    aas = {"enabled": True, "bind": "127.0.0.2", "token_file": str(token)}
    config, _ = make_station(tmp_path, extra={"aas": aas})
    short = lineside("run", "--check", str(config))
    assert short.returncode == 1 and "aas.token_file" in short.stderr and "16 characters" in short.stderr
    token.write_text("x" * 32 + "\n", encoding="utf-8")
    good = lineside("run", "--check", str(config))
    assert good.returncode == 0, good.stderr
    assert "aas: bearer token read from" in good.stdout


def test_technical_data_carries_the_camera_frame_size_and_each_recipe_s_lens_calibration(
    tmp_path: Path,
) -> None:
    calibration = CalibrationFile(
        camera=CameraFrame(width=160, height=120), scale=ScaleSection(mm_per_px=0.125)
    )
    save_calibration(tmp_path / "station.cal.json", calibration)
    recipe = {"number": 1, "name": "test-part", "calibration": "station.cal.json"}
    config, _ = make_station(tmp_path, extra={"source": {"expected_width": 160, "expected_height": 120}})
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["recipes"][0].update(recipe)
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "station.json"
    export(config, out, now=NOW)
    assert idta_errors(out) == [] and aas_core_errors(out) == []
    technical = submodel_json(json.loads(out.read_text(encoding="utf-8")), "TechnicalData")
    camera, recipe_area = element(technical, "TechnicalPropertyAreas")["value"]
    by_name = {e["idShort"]: e.get("value") for e in camera["value"]}
    assert (by_name["FrameWidth"], by_name["FrameHeight"], by_name["SourceKind"]) == ("160", "120", "folder")
    lens = {e["idShort"]: e["value"] for e in element(recipe_area, "LensCalibration")["value"]}
    assert lens["MmPerPixel"] == "0.125" and (lens["FrameWidth"], lens["FrameHeight"]) == ("160", "120")
    judges = element(recipe_area, "Judges")["value"]
    card = json.loads((tmp_path / "model" / "card.json").read_text(encoding="utf-8"))
    assert [j["value"] for j in judges] == [f"{card['name']} {card['version']} (detect)"]
