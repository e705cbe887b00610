"""The line's own words in Korean and English on a real `lineside run`: its start-up lines, the plant's names
for classes and stages (`station.names`) in its reasons, evidence, summary and status page, and the line
alarms' control chart pictures. One station run twice, in each language, with the same glossary: Korean
says 스크래치 where the model card says `scratch`; English says what it always said, byte for byte; the
records keep `scratch` either way."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.records.alarms import recorded_alarms
from edge.records.evidence import read_record
from edge.records.picture_text import cjk_font
from edge.records.query import query
from edge.station.config import load_config
from edge.status.evidence import evidence_response
from edge.status.strings import page_strings
from tests.line import free_port, lineside, make_station

pytestmark = pytest.mark.slow

SUBGROUP, BASELINE = 10, 5
PATTERN = "ggggdggggg" * BASELINE + "ddgddddgdd" * 3  # the reject rate rises after the baseline: alarms
NAMES = {"ko": {"scratch": "스크래치", "detector": "검출기"}}
SPC = {"pchart": {"subgroup": SUBGROUP, "baseline_subgroups": BASELINE}}
HANGUL = re.compile("[\uac00-\ud7a3]")


class Line:
    """One finished `lineside run` of the station, and where its files are."""

    def __init__(self, root: Path, language: str) -> None:
        extra = {
            "station": {"language": language, "names": NAMES},
            "spc": SPC,
            "status": {"enabled": True, "port": free_port()},
        }
        self.config, self.modbus = make_station(root, PATTERN, extra=extra)
        self.run = lineside("run", str(self.config), "--max-parts", str(len(PATTERN)))
        assert self.run.returncode == 0, self.run.stderr[-3000:]
        self.records = root / "records"
        self.status = load_config(self.config).status.port

    def lineside(self, *args: str) -> str:
        said = lineside(*args, "--config", str(self.config))
        assert said.returncode == 0, said.stderr
        return said.stdout


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Line]:
    return {lang: Line(tmp_path_factory.mktemp(lang), lang) for lang in ("en", "ko")}


def test_the_start_up_lines_are_the_stations_language_and_english_is_as_it_was(
    lines: dict[str, Line],
) -> None:
    en, ko = lines["en"], lines["ko"]
    page = f"http://127.0.0.1:{en.status}/"
    assert en.run.stdout.splitlines()[:2] == [  # the very lines `lineside run` always printed
        f"lineside: station 'test-line', source folder, Modbus server on 127.0.0.1:{en.modbus}, "
        f"records {en.records}",
        f"lineside: status page {page} (metrics at {page}metrics)",
    ]
    page = f"http://127.0.0.1:{ko.status}/"
    assert ko.run.stdout.splitlines()[:2] == [
        f"lineside: 스테이션 'test-line', 영상 소스 folder, Modbus 서버 127.0.0.1:{ko.modbus}, "
        f"기록 {ko.records}",
        f"lineside: 상태 페이지 {page} (메트릭: {page}metrics)",
    ]
    checked = {lang: lineside("run", "--check", str(line.config)) for lang, line in lines.items()}
    assert (
        checked["en"].stdout.splitlines()[-1]
        == f"{en.config}: valid (1 recipe(s), source folder, trigger free_run)"
    )
    assert checked["ko"].stdout.splitlines()[-1] == (
        f"{ko.config}: 유효함 (레시피 1개, 영상 소스 folder, 트리거 free_run)"
    )


def test_korean_reasons_say_the_plants_names_and_english_the_cards(lines: dict[str, Line]) -> None:
    en, ko = lines["en"], lines["ko"]
    parts = {
        lang: [s for s in line.run.stdout.splitlines() if s.startswith(("part ", "부품 "))]
        for lang, line in lines.items()
    }
    records = query(en.records / "records.db")
    assert len(parts["en"]) == len(parts["ko"]) == len(records) == len(PATTERN)
    for line, record in zip(parts["en"], records, strict=True):
        assert line.endswith(f"  {record.reasons[0]}")  # English: the line's own sentence, as always
    rejects = [line for line in parts["ko"] if " 불량 " in line]
    assert len(rejects) == PATTERN.count("d")
    assert all(": 스크래치 0.76, " in line and "scratch" not in line for line in rejects)
    # The records keep the card's name in either language: nothing changes in storage.
    korean_records = query(ko.records / "records.db")
    assert {d.class_name for r in korean_records for d in r.detections} == {"scratch"}
    assert all("스크래치" not in reason for r in korean_records for reason in r.reasons)

    seq = str(next(r.seq for r in korean_records if r.verdict.value == "REJECT"))
    shown = ko.lineside("records", "show", seq, "--out", str(ko.records.parent / "evidence.png"))
    assert "판정 사유: 불량: 스크래치 0.76" in shown and "판정 단계: 검출기 (detect)" in shown
    english = ko.lineside("records", "show", seq, "--lang", "en", "--out", str(ko.records.parent / "en.png"))
    assert "reason: REJECT: scratch 0.76 at" in english and "deciding stage: detector (detect)" in english
    stored = json.loads(ko.lineside("records", "show", seq, "--json"))
    assert stored["rule"]["class"] == "scratch"

    summary = ko.lineside("records", "summary")
    assert re.search(r"^  스크래치: 불량 \d+개 중 \d+개", summary, re.MULTILINE), summary
    assert re.search(r"^  scratch: \d+ of \d+ rejects", en.lineside("records", "summary"), re.MULTILINE)


def test_the_status_page_says_the_plants_names_in_its_language(lines: dict[str, Line]) -> None:
    ko = lines["ko"]
    assert page_strings("ko", NAMES)["names"] == NAMES["ko"]
    assert page_strings("en", NAMES)["names"] == {}  # no English entry: the card's names
    record = next(r for r in query(ko.records / "records.db") if r.verdict.value == "REJECT")
    status, _, body = evidence_response(ko.records, f"/api/evidence/{record.seq}", "ko", NAMES)
    assert status == 200
    evidence = json.loads(body)
    assert evidence["reason"].startswith("불량: 스크래치 0.76, ")
    assert any(line.startswith("적용 규칙: 검출기: ") for line in evidence["lines"])
    _, _, english = evidence_response(ko.records, f"/api/evidence/{record.seq}", "en", NAMES)
    assert json.loads(english)["reason"] == read_record(ko.records, str(record.seq)).reasons[0]


def test_a_name_that_is_not_one_line_is_refused_at_load_naming_the_field(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path, "g", extra={"station": {"names": {"ko": {"scratch": "스크\n래치"}}}})
    checked = lineside("run", "--check", str(config))
    assert checked.returncode == 1 and checked.stderr.count("\n") == 1
    assert "field 'station.names.ko.scratch'" in checked.stderr and "one line" in checked.stderr
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["station"]["names"] = {"de": {"scratch": "Kratzer"}}
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    checked = lineside("run", "--check", str(config))
    assert checked.returncode == 1 and "station.names.de" in checked.stderr and "en or ko" in checked.stderr


def _pixels(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(image)


def test_the_alarm_pictures_are_in_the_stations_language(lines: dict[str, Line], tmp_path: Path) -> None:
    pictures = {}
    for lang, line in lines.items():
        stored = recorded_alarms(line.records)
        assert [a.alarm["chart"] for a in stored] == ["reject_rate", "class_rate:scratch"]
        pictures[lang] = [_pixels(line.records / str(a.chart_png)) for a in stored]
    korean_font = cjk_font() is not None
    for english, korean in zip(pictures["en"], pictures["ko"], strict=True):
        assert english.shape == korean.shape
        # The same chart in other words; without a font with Hangul the Korean station's is the English one.
        assert np.array_equal(english, korean) is not korean_font
    replay = [
        "records",
        "alarms",
        "--replay",
        "--subgroup",
        str(SUBGROUP),
        "--baseline-subgroups",
        str(BASELINE),
    ]
    drawn = {}
    for lang in ("en", "ko"):
        said = lineside(
            *replay, "--config", str(lines["ko"].config), "--lang", lang, "--png", str(tmp_path / lang)
        )
        assert said.returncode == 0, said.stderr
        drawn[lang] = sorted((tmp_path / lang).glob("*.png"))
        if lang == "ko":
            assert "  스크래치 비율: 부분군 5에서 한 점이 3 시그마 밖 (위)" in said.stdout
            assert ("the pictures are in English" in said.stderr) is not korean_font
        else:
            assert "  rate of scratch: a point beyond 3 sigma (above) at subgroup 5" in said.stdout
    assert [p.name for p in drawn["en"]] == [p.name for p in drawn["ko"]]
    assert [p.name for p in drawn["en"]] == [
        "alarm-001-reject_rate-beyond_3sigma.png",
        "alarm-002-class_rate_scratch-beyond_3sigma.png",
    ]
    for english_png, korean_png in zip(drawn["en"], drawn["ko"], strict=True):
        assert (english_png.read_bytes() == korean_png.read_bytes()) is not korean_font


def test_without_a_hangul_font_the_pictures_are_english_and_it_is_said_once(
    lines: dict[str, Line], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import edge.records.evidence
    import edge.spc.picture
    import lineside.commands.records_alarms_png
    from edge.spc.replay import replay
    from lineside.commands.records_alarms import load_spc, run_alarms

    ko = lines["ko"]
    pchart = {"subgroup": SUBGROUP, "baseline_subgroups": BASELINE}
    english, err = tmp_path / "en", io.StringIO()
    out = io.StringIO()
    assert (
        run_alarms(ko.records, png=english, pchart=pchart, lang="en", glossary=NAMES, stdout=out, stderr=err)
        == 0
    )
    assert "English" not in err.getvalue()
    for module in (edge.records.evidence, edge.spc.picture, lineside.commands.records_alarms_png):
        monkeypatch.setattr(module, "cjk_font", lambda: None)  # no font with Hangul on this machine
    hidden, err = tmp_path / "hidden", io.StringIO()
    assert (
        run_alarms(ko.records, png=hidden, pchart=pchart, lang="ko", glossary=NAMES, stdout=out, stderr=err)
        == 0
    )
    assert err.getvalue().count("no font with Hangul installed") == 1
    for picture in sorted(english.glob("*.png")):
        assert (hidden / picture.name).read_bytes() == picture.read_bytes()
    # The live worker's picture (OpenCV): the English one, and the log says so once per language.
    charts, _ = replay(query(ko.records / "records.db"), load_spc(None, pchart))
    caplog.set_level(logging.WARNING, logger="edge.spc.picture")
    edge.spc.picture._said_english_only.cache_clear()
    for alarm in charts.alarms:
        chart = charts.chart(alarm.chart)
        assert chart is not None
        korean = edge.spc.picture.chart_picture(chart, alarm, "ko", NAMES)
        assert np.array_equal(korean, edge.spc.picture.chart_picture(chart, alarm, "en", NAMES))
    assert [r.getMessage() for r in caplog.records].count(
        "line alarm pictures in English, not ko: no font with Hangul installed (Debian fonts-noto-cjk)"
    ) == 1


def test_the_demo_says_every_class_and_stage_of_its_models_in_korean() -> None:
    from edge.modelstore.card import read_card
    from lineside.demo import demo_anomaly_model_dir, demo_config, demo_model_dir

    names = demo_config().station.names["ko"]
    classes = read_card(demo_model_dir()).classes
    assert set(classes) <= set(names) and all(HANGUL.search(names[c]) for c in classes)
    assert {"detector", "anomaly"} <= set(names)  # the demo's stages (the recipes name none)
    assert list(read_card(demo_anomaly_model_dir()).classes) == ["anomaly"]
