"""The message catalogs: every id the code says is in the English and the Korean .po (and a planted gap
is caught), the language comes from config, `--lang` or the locale, and a missing or broken translation
falls back to English instead of raising."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.i18n import ENGLISH, Message, render, say
from edge.locale import LANGUAGES, environment_language, language_from, po_path, read_catalog
from edge.locale.check import code_ids, gaps
from tests.test_calibrate_station import rolled, run_cli, scene, station  # noqa: F401  (their fixtures)

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile("[\uac00-\ud7a3]")


def test_every_message_the_code_says_is_in_both_catalogs() -> None:
    used = code_ids(ROOT)
    assert len(used) > 20 and "summary.yield" in used  # the walk really saw the code
    assert gaps(used, ENGLISH) == []
    korean = read_catalog(po_path("ko"))
    # Korean, not English copied over: every template has Hangul in it.
    assert [i for i, template in korean.items() if not HANGUL.search(template)] == []


def test_the_english_catalog_says_what_the_code_says() -> None:
    assert read_catalog(po_path("en")) == ENGLISH  # `python -m edge.locale.sync` after any change


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_message_missing_from_a_catalog_is_caught(tmp_path: Path, language: str) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(po_path("en").parents[2], locale, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    po = po_path(language, locale)
    text = po.read_text(encoding="utf-8")
    planted = re.sub(r'msgid "summary\.no_faults"\nmsgstr "[^"]*"\n', "", text)
    assert planted != text
    po.write_text(planted, encoding="utf-8")
    # Only the planted gap is new (the real catalogs' own gaps are the test above's business).
    before = set(gaps(code_ids(ROOT), ENGLISH))
    found = {line.replace(str(locale), "LOCALE") for line in gaps(code_ids(ROOT), ENGLISH, locale)}
    known = {line.replace(str(po_path("en").parents[2]), "LOCALE") for line in before}
    assert found - known == {
        f"summary.no_faults: missing (or empty) in {str(po).replace(str(locale), 'LOCALE')}"
    }


def test_an_id_used_in_the_code_but_never_written_down_is_caught(tmp_path: Path) -> None:
    package = tmp_path / "edge"
    package.mkdir()
    (package / "planted.py").write_text(
        'from edge.i18n import Message\nX = Message("summary.planted" if True else "summary.yield")\n',
        encoding="utf-8",
    )
    assert code_ids(tmp_path, ("edge",)) == {"summary.planted", "summary.yield"}
    found = gaps(code_ids(tmp_path, ("edge",)), ENGLISH)
    assert "summary.planted: used in the code, not in edge.i18n.ENGLISH" in found


def test_a_translation_with_other_parameters_is_caught(tmp_path: Path) -> None:
    locale = tmp_path / "locale"
    shutil.copytree(po_path("en").parents[2], locale, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    po = po_path("ko", locale)
    po.write_text(
        po.read_text(encoding="utf-8").replace("{yield_pct:.1f}%", "{yeild:.1f}%"), encoding="utf-8"
    )
    assert any(line.startswith("summary.yield: ") for line in gaps(set(), ENGLISH, locale))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ko", "ko"), ("ko_KR.UTF-8", "ko"), ("en_US.UTF-8", "en"), ("C", "en"), ("de_DE", "en"), (None, "en")],
)
def test_language_from_a_setting_or_locale_name(value: str | None, expected: str) -> None:
    assert language_from(value) == expected


def test_the_locale_chooses_the_language_in_gettext_order() -> None:
    assert environment_language({"LANG": "ko_KR.UTF-8"}) == "ko"
    assert environment_language({"LC_MESSAGES": "en_US.UTF-8", "LANG": "ko_KR.UTF-8"}) == "en"
    assert environment_language({"LANGUAGE": "ko:en", "LANG": "en_US.UTF-8"}) == "ko"
    assert environment_language({}) == "en"


def test_korean_and_english_render_the_same_message_and_nested_messages_follow() -> None:
    params = {"cause": Message("fault.camera"), "count": 3, "code": 1, "kind": "camera"}
    assert render(Message("summary.fault", params), "en") == "No frame from the camera: 3 (error 1 camera)."
    assert render(Message("summary.fault", params), "ko") == "카메라 영상 없음: 3개 (오류 1 camera)."


def test_a_missing_or_broken_translation_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.i18n

    broken = {"summary.no_faults": "", "summary.yield": "수율 {nonsense}"}
    monkeypatch.setattr(edge.i18n, "catalog", lambda language: broken)
    assert say("summary.no_faults", "ko") == "No faults."
    english = say("summary.yield", "en", yield_pct=50.0, accepted=1, rejected=1, faults=0)
    assert say("summary.yield", "ko", yield_pct=50.0, accepted=1, rejected=1, faults=0) == english
    # An id nobody wrote down is a bug, not a fallback.
    with pytest.raises(KeyError, match=r"summary\.nothing"):
        say("summary.nothing", "ko")


def test_doctor_says_its_results_and_closing_line_in_korean() -> None:
    from lineside.doctor.report import Check, Status, as_text

    checks = [Check("config", Status.PASS, "valid"), Check("disk", Status.FAIL, "0.1 GB free")]
    korean = as_text(checks, "ko").splitlines()
    assert korean == ["통과   config: valid", "실패   disk: 0.1 GB free", "점검 결과: 통과 1, 주의 0, 실패 1"]
    assert as_text(checks, "en").splitlines()[-1] == "doctor: 1 PASS, 0 WARN, 1 FAIL"


@pytest.fixture
def korean_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")


def test_calibration_check_says_its_result_in_the_technicians_locale(
    korean_locale: None, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The calibration tests' own station (a stored reference) and scene, moved 5 px: a WARN.
    reference: Path = request.getfixturevalue("station")
    part: np.ndarray = request.getfixturevalue("scene")
    moved = tmp_path / "moved.png"
    cv2.imwrite(str(moved), rolled(part))
    assert run_cli("check", "--calibration", reference, "--image", moved) == 0
    out = capsys.readouterr().out
    print(out)
    lines = out.splitlines()
    assert "결과: 주의" in lines
    assert "의 기준 영상 " in lines[0] and "스테이션 점검, 영상 1장:" in lines[0]
    # Item by item: the status word, the item's name, its measurement and limits, in Korean.
    shift = next(line for line in lines if "위치 이동" in line)
    assert shift.lstrip().startswith("주의") and "일치 " in shift and "(주의 " in shift and "실패 " in shift
    assert any(line.lstrip().startswith("통과") and "초점" in line and "기준" in line for line in lines)
    assert not re.search("[A-Za-z]{4,}", " ".join(lines[1:]).replace(str(moved), ""))  # no English words left


def test_the_config_names_the_language_and_refuses_one_without_a_catalog(tmp_path: Path) -> None:
    from edge.errors import LinesideError
    from edge.station.config import load_config
    from tests.line import make_station

    config, _ = make_station(tmp_path / "ko", "g", extra={"station": {"language": "ko"}})
    assert load_config(config).station.language == "ko"
    config, _ = make_station(tmp_path / "fr", "g", extra={"station": {"language": "fr"}})
    with pytest.raises(LinesideError, match="language"):
        load_config(config)


def test_a_fault_and_a_map_stage_reject_re_render_from_their_codes_in_both_languages() -> None:
    from edge.judge.evidence import fault_evidence
    from edge.records.explain import reason_message

    fault = reason_message(fault_evidence(1, "camera lost"))
    assert fault is not None
    assert render(fault, "en") == "FAULT: No frame from the camera (error 1)"
    assert render(fault, "ko") == "고장: 카메라 영상 없음 (오류 1)"
    anomaly = {
        "verdict": "REJECT",
        "rule": {"stage": "anomaly", "code": "anomaly.reject", "score": 3.5, "threshold": 2.0, "margin": 1.5},
    }
    said = reason_message(anomaly)
    assert said is not None
    assert render(said, "en") == "REJECT: anomaly score 3.50 >= 2.00 (anomaly)"
    assert render(said, "ko") == "불량: 이상 점수 3.50, 임계값 2.00 이상 (anomaly)"
    assert reason_message({"verdict": "REJECT", "rule": {"code": "something.new"}}) is None  # English stays


def test_the_status_page_gets_the_alarms_panel_words_and_chart_names_in_korean() -> None:
    from edge.status.strings import page_strings

    page = (ROOT / "edge" / "status" / "page.html").read_text(encoding="utf-8")
    for column in ("time", "chart", "rule", "value", "limits", "parts"):
        assert f'data-i18n="page.col_{column}"' in page, column
    korean = page_strings("ko")
    assert korean["page.col_chart"] == "관리도" and korean["page.col_limits"] == "관리 한계"
    assert korean["spc.chart.reject_rate"] == "불량률" and korean["spc.chart.class_rate"] == "{name} 비율"
    assert korean["spc.rule.beyond_3sigma"] == "한 점이 3 시그마 밖 ({side})"
    assert korean["spc.side.above"] == "위"
    assert page_strings("en")["spc.chart.reject_rate"] == "reject rate"


def test_the_login_form_is_said_in_the_stations_language_and_keeps_no_marker() -> None:
    from edge.status.server import login_html

    korean = login_html("login.wrong", "ko").decode("utf-8")
    assert '<html lang="ko">' in korean and ">로그인</button>" in korean and "{{" not in korean
    assert "사용자 이름 또는 비밀번호가 틀렸습니다" in korean
    english = login_html(None, "en").decode("utf-8")
    assert ">log in</button>" in english and ">user name</label>" in english and "{{" not in english
    assert not HANGUL.search(english)


def test_doctor_says_its_findings_in_korean_and_keeps_them_english_in_json(tmp_path: Path) -> None:
    import time

    from edge.station.config import load_config
    from lineside.doctor.report import as_json
    from lineside.doctor.system import check_clock, check_disk, check_modbus
    from tests.line import make_station

    config = load_config(make_station(tmp_path, "g")[0])
    disk = check_disk(config, warn_gb=1e9, fail_gb=0.0)  # more than any disk: a WARN with its limit
    clock = check_clock(config, time.time())  # no records yet
    modbus, running = check_modbus(config.robot_link)
    korean = [check.line("ko") for check in (disk, clock, modbus)]
    print("\n".join(korean))
    assert korean[0].startswith(f"주의   disk: {config.records.dir}: 전체 ")
    assert korean[0].endswith("1e+09 GiB 미만")
    assert korean[1].startswith("통과   clock: ") and korean[1].endswith(" (아직 기록 없음)")
    assert not running and korean[2].startswith("통과   modbus: ") and "사용 가능" in korean[2]
    # English is the sentence it always was, on the text report and in JSON.
    assert disk.line("en").endswith("; under 1e+09 GiB") and clock.line("en").endswith(" (no records yet)")
    assert modbus.line("en").endswith(" is free (bindable)")
    assert not HANGUL.search(as_json([disk, clock, modbus]))


def test_hangul_on_a_picture_is_drawn_as_letters_not_boxes() -> None:
    from edge.records.picture_text import cjk_font, draw_lines

    font = cjk_font()
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Latin only
    if font is None or not dejavu.is_file():
        pytest.skip("SKIPPED: needs Debian fonts-noto-cjk and fonts-dejavu-core")

    def drawn(text: str, with_font: Path) -> np.ndarray:
        blank = np.zeros((40, 200, 3), np.uint8)
        white = [(255, 255, 255)]
        picture = draw_lines(blank, [text], origin=(4, 4), line_px=20, inks=white, font_path=with_font)
        assert picture.shape == blank.shape and picture.any()  # something was drawn
        return picture

    # Without Hangul in the font, two different words are the same boxes (what this check must rule out).
    assert np.array_equal(drawn("양품", dejavu), drawn("불량", dejavu))
    assert not np.array_equal(drawn("양품", font), drawn("불량", font))
    assert not np.array_equal(drawn("양품", font), drawn("양품", dejavu))


def test_the_status_pages_last_frame_says_its_verdict_in_korean_as_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import edge.status.frame
    from edge.judge.inspection import Verdict
    from edge.records.picture_text import cjk_font
    from edge.status.frame import annotate
    from tests.test_status_state import _event

    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Latin only
    if cjk_font() is None or not dejavu.is_file():
        pytest.skip("SKIPPED: needs Debian fonts-noto-cjk and fonts-dejavu-core")
    frame = np.full((240, 320, 3), 90, np.uint8)
    event = _event(3, Verdict.REJECT)
    english, korean = annotate(frame, event, "en"), annotate(frame, event, "ko")
    assert english.shape == korean.shape and np.count_nonzero(english != korean) > 200
    monkeypatch.setattr(edge.status.frame, "cjk_font", lambda: dejavu)  # the same words, drawn as boxes
    tofu = annotate(frame, event, "ko")
    assert np.count_nonzero(tofu != korean) > 200


def test_doctor_says_the_config_model_and_calibration_findings_in_korean(tmp_path: Path) -> None:
    from edge.station.config import load_config
    from lineside.doctor.station import check_calibrations, check_config, check_models
    from tests.line import make_station

    path, _ = make_station(tmp_path, "g")
    config_check, config = check_config(path)
    assert config is not None
    models = check_models(config)
    print(config_check.line("ko"), *(m.line("ko") for m in models), sep="\n")
    assert config_check.line("ko").startswith(f"통과   config: {path}: 유효함 (스테이션 '")
    assert config_check.line("en").startswith(f"PASS config: {path}: valid (station '")
    assert models and all("sha256이 모델 카드와 일치" in m.line("ko") for m in models)
    assert all("sha256 matches its card" in m.message for m in models)  # English kept for --json
    assert check_calibrations(load_config(path), None, 180.0, 0.0) == []  # no calibration file: no line


def test_lineside_doctor_in_korean_says_every_finding_in_korean(tmp_path: Path) -> None:
    from tests.line import lineside
    from tests.test_doctor import SMALL_DISK, calibrated_station

    config, _ = calibrated_station(tmp_path, age_days=400)
    done = lineside("doctor", str(config), "--lang", "ko", "--calibration-max-age-days", "365", *SMALL_DISK)
    print(done.stdout)
    lines = done.stdout.splitlines()
    calibration = next(line for line in lines if "calibration[recipe 1]" in line)
    assert calibration.startswith("주의") and "교정 파일 " in calibration and "400일 전에 만듦" in calibration
    assert calibration.endswith("365일이 지남: lineside calibrate check로 다시 점검하십시오")
    camera = next(line for line in lines if " camera: " in line)
    assert camera.startswith("통과") and "영상 한 장을" in camera
    assert lines[-1].startswith("점검 결과: 통과 ")
    # Every finding of this station is said in Korean: no English sentence is left in the report.
    left = ("valid (", "matches its card", "days ago", "is free", "GiB free", "synchronised", "frame in")
    for english in left:
        assert english not in done.stdout, english
