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
    assert "결과: 주의" in capsys.readouterr().out.splitlines()


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
