"""`lineside ... --help` run as a process, in Korean and English: every help text of the operators' and
technicians' commands comes from the catalog (in Korean every argument's help has Hangul, no English help
text is left and the lines fit the terminal), argparse's own words and error lines are said in Korean too,
English is byte for byte what it was, and `--lang` counts only where the command takes it (docs/i18n.md)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from edge.i18n import ENGLISH, say
from edge.locale import po_path
from edge.locale.check import code_ids, gaps
from lineside.cli import build_parser
from lineside.parser import columns, said_error, wrap_columns

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "expected"
HANGUL = re.compile("[\uac00-\ud7a3]")
COLUMNS = 80
# The engineers' commands keep their own help in English (docs/i18n.md); only their line in `lineside --help`
# is said in the reader's language.
ENGINEERS = {"train", "eval", "dataset", "bench", "soak"}
HEADINGS = {say("argparse.options", "ko") + ":", say("argparse.positionals", "ko") + ":"}


def lineside(*argv: str, locale: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env.update(LANG=locale, COLUMNS=str(COLUMNS), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


ENGLISH_PARSERS = {
    path: parser for path, parser in _parsers(build_parser(language="en")) if not set(path[:1]) & ENGINEERS
}
IN_SCOPE = sorted(ENGLISH_PARSERS)
TAKING_LANG = [p for p in IN_SCOPE if "--lang" in ENGLISH_PARSERS[p]._option_string_actions]


def listed_lines(text: str) -> list[str]:
    """The lines under a Korean help's headings (options, positional arguments): arguments and their help."""
    lines, listing = [], False
    for line in text.splitlines():
        if line in HEADINGS or not line.strip():
            listing = line in HEADINGS
        elif listing:
            lines.append(line)
    return lines


def help_entries(text: str) -> list[tuple[str, str]]:
    """(argument, its help) for each argument or sub-command listed under a Korean help's headings."""
    entries: list[tuple[str, str]] = []
    for line in listed_lines(text):
        if len(line) - len(line.lstrip()) in (2, 4):  # an argument, or a sub-command
            argument, _, said = line.strip().partition("  ")
            entries.append((argument, said.strip()))
        else:  # its help, continued
            argument, said = entries[-1]
            entries[-1] = (argument, f"{said} {line.strip()}".strip())
    return entries


def english_texts(parser: argparse.ArgumentParser) -> list[str]:
    """What the English help of `parser` says in words: each argument's help, the description, and the
    heading of the examples."""
    texts = [a.help for a in parser._actions if a.help and a.help != argparse.SUPPRESS]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts += [choice.help for choice in action._choices_actions if choice.help]
    if parser.description:
        texts.append(parser.description)
    if parser.epilog:
        texts.append(parser.epilog.splitlines()[0])  # "examples:", "checks, in order:", ...
    return [" ".join(text.split()) for text in texts]


@pytest.mark.parametrize("path", IN_SCOPE, ids=lambda p: " ".join(p) or "lineside")
def test_every_help_text_of_an_operator_command_is_korean_in_a_korean_locale(path: tuple[str, ...]) -> None:
    proc = lineside(*path, "--help", locale="ko_KR.UTF-8")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith(f"사용법: lineside {' '.join(path)}".rstrip())
    assert say("argparse.help", "ko") in text
    entries = help_entries(text)
    assert entries and all(HANGUL.search(said) for _, said in entries if said), entries
    flat = " ".join(text.split())
    assert [t for t in english_texts(ENGLISH_PARSERS[path]) if t in flat] == []
    # Wrapped by columns: a Hangul syllable is two, and no argument's help runs past the terminal's edge.
    said = [line for line in listed_lines(text) if HANGUL.search(line)]
    assert [line for line in said if columns(line) > COLUMNS] == []


def test_known_korean_help_texts_are_where_they_belong() -> None:
    top = lineside("--help", locale="ko_KR.UTF-8").stdout
    assert "옵션:" in top and "위치 인자:" in top
    assert "검사 라인 실행 (설정을 주지 않으면 내장 데모)" in top
    assert "YOLO 형식 데이터셋 검증, 분할, 가져오기" in top  # an engineer's command: its line only
    intrinsics = lineside("calibrate", "intrinsics", "--help", locale="ko_KR.UTF-8").stdout
    assert "  --out OUT          갱신할 교정 파일 (없으면 새로 만듦)\n" in intrinsics
    assert "선명한 뷰를 8-20장 찍되" in intrinsics  # the examples' advice, its number from the code
    assert "\n예:\n  lineside calibrate intrinsics --images views/" in intrinsics


@pytest.mark.parametrize("given", [("--lang", "ko"), ("--lang=ko",)], ids=["--lang ko", "--lang=ko"])
def test_lang_ko_gives_korean_help_in_an_english_locale_where_the_command_takes_it(
    given: tuple[str, ...],
) -> None:
    assert len(TAKING_LANG) >= 10  # doctor, every calibrate step, records show/summary/alarms
    for path in (("doctor",), ("calibrate", "check"), ("records", "show"), ("records", "summary")):
        assert path in TAKING_LANG
        proc = lineside(*path, *given, "--help")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("사용법: lineside ")
        assert all(HANGUL.search(said) for _, said in help_entries(proc.stdout) if said)
        flat = " ".join(proc.stdout.split())
        assert say("help.lang", "ko") in flat or say("help.lang_config", "ko") in flat


def test_lang_en_gives_the_english_help_in_a_korean_locale() -> None:
    proc = lineside("doctor", "--lang", "en", "--help", locale="ko_KR.UTF-8")
    assert proc.stdout == (EXPECTED / "help-doctor.en.txt").read_text(encoding="utf-8")


def test_lang_counts_only_where_the_command_takes_it() -> None:
    # `run` has no --lang: its help stays in the locale's language (the error for --lang comes after --help).
    assert ("run",) not in TAKING_LANG
    assert lineside("run", "--lang", "ko", "--help").stdout == lineside("run", "--help").stdout


@pytest.mark.parametrize("path", [("calibrate", "intrinsics"), ("doctor",)], ids=" ".join)
def test_english_help_is_byte_for_byte_what_it_was(path: tuple[str, ...]) -> None:
    expected = (EXPECTED / f"help-{'-'.join(path)}.en.txt").read_text(encoding="utf-8")
    assert lineside(*path, "--help").stdout == expected
    assert lineside(*path, "--help", locale="de_DE.UTF-8").stdout == expected  # not Korean: English


def test_argparse_error_lines_are_korean_in_a_korean_locale_and_unchanged_in_english() -> None:
    missing = lineside("calibrate", "intrinsics", locale="ko_KR.UTF-8")
    assert missing.returncode == 2
    assert missing.stderr.startswith("사용법: lineside calibrate intrinsics [-h]")
    assert missing.stderr.endswith(
        "lineside calibrate intrinsics: 오류: 다음 인자가 필요합니다: --images, --board, --out\n"
    )
    wrong = lineside("doctor", "--lang", "fr", locale="ko_KR.UTF-8")
    assert wrong.stderr.endswith(
        "lineside doctor: 오류: 인자 --lang: 잘못된 선택: 'fr' (선택할 수 있는 값: 'en', 'ko')\n"
    )
    english = lineside("doctor", "--lang", "fr")
    assert english.returncode == 2
    assert english.stderr == (
        "usage: lineside doctor [-h] [--json] [--lang {en,ko}]\n"
        "                       [--calibration-max-age-days DAYS] [--disk-warn-gb GIB]\n"
        "                       [--disk-fail-gb GIB] [--camera-timeout-s S]\n"
        "                       [config]\n"
        "lineside doctor: error: argument --lang: invalid choice: 'fr' (choose from 'en', 'ko')\n"
    )


class _ArgparseError(Exception):
    """The line argparse would have written."""


class _Catching(argparse.ArgumentParser):
    """Plain argparse, its error line caught instead of printed."""

    def error(self, message: str) -> NoReturn:
        raise _ArgparseError(message)


def _positive(text: str) -> int:
    if int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return int(text)


def _argparse_line(*argv: str) -> str:
    """The error line real argparse writes for `argv`."""
    parser = _Catching(prog="x")
    parser.add_argument("--count", type=int)
    parser.add_argument("--pick", choices=("a", "b"))
    parser.add_argument("--two", nargs=2)
    parser.add_argument("--many", nargs="+")
    parser.add_argument("--flag", action="store_true")
    parser.add_argument("--size", type=_positive)
    parser.add_argument("--abc")
    parser.add_argument("--abd")
    one = parser.add_mutually_exclusive_group()
    one.add_argument("--rect")
    one.add_argument("--polygon")
    with pytest.raises(_ArgparseError) as refused:
        parser.parse_args(argv)
    return str(refused.value)


@pytest.mark.parametrize(
    ("argv", "korean"),
    [
        (("--abc",), "인자 --abc: 값이 하나 필요합니다"),
        (("--count", "x"), "인자 --count: 잘못된 int 값: 'x'"),
        (("--pick", "z"), "인자 --pick: 잘못된 선택: 'z' (선택할 수 있는 값: 'a', 'b')"),
        (("--two", "1"), "인자 --two: 값이 2개 필요합니다"),
        (("--many",), "인자 --many: 값이 하나 이상 필요합니다"),
        (("--flag=yes",), "인자 --flag: 값을 받지 않는 옵션에 준 값: 'yes'"),
        (("--rect", "1", "--polygon", "2"), "인자 --polygon: --rect 인자와 함께 쓸 수 없습니다"),
        (("--ab", "1"), "모호한 옵션: --ab (해당할 수 있는 옵션: --abc, --abd)"),
        (("stray",), "알 수 없는 인자: stray"),
        (("--size", "0"), "인자 --size: must be > 0, got 0"),  # the command's own words, as they are
    ],
)
def test_argparse_error_lines_are_recognised_and_said_again(argv: tuple[str, ...], korean: str) -> None:
    english = _argparse_line(*argv)
    assert said_error(english, "en") == english  # the English templates are argparse's own lines
    assert said_error(english, "ko") == korean


def test_a_missing_required_argument_is_said_in_korean() -> None:
    parser = _Catching(prog="x")
    parser.add_argument("--a", required=True)
    with pytest.raises(_ArgparseError) as refused:
        parser.parse_args([])
    assert said_error(str(refused.value), "ko") == "다음 인자가 필요합니다: --a"
    group = _Catching(prog="x")
    shape = group.add_mutually_exclusive_group(required=True)
    shape.add_argument("--rect")
    shape.add_argument("--polygon")
    with pytest.raises(_ArgparseError) as refused:
        group.parse_args([])
    assert said_error(str(refused.value), "ko") == "인자 --rect --polygon 중 하나가 필요합니다"


def test_korean_is_wrapped_by_terminal_columns() -> None:
    assert columns("사용법: x") == 9
    lines = wrap_columns("검출기와 판정 규칙으로 이미지 파일이나 폴더를 판정", 20)
    assert lines == ["검출기와 판정", "규칙으로 이미지", "파일이나 폴더를 판정"]  # the last exactly 20
    assert all(columns(line) <= 20 for line in lines)


def test_the_help_ids_are_seen_in_the_code_and_one_missing_from_korean_is_caught(tmp_path: Path) -> None:
    used = code_ids(ROOT)
    assert {"help.run.check", "help.records.seq", "help.calibrate.out", "help.lang"} <= used
    locale = tmp_path / "locale"
    shutil.copytree(po_path("ko").parents[2], locale, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    po = po_path("ko", locale)
    text = po.read_text(encoding="utf-8")
    planted = re.sub(r'msgid "help\.calibrate\.intrinsics\.k3"\nmsgstr "[^"]*"\n', "", text)
    assert planted != text
    po.write_text(planted, encoding="utf-8")
    before = {line.replace(str(po_path("en").parents[2]), "LOCALE") for line in gaps(used, ENGLISH)}
    found = {line.replace(str(locale), "LOCALE") for line in gaps(used, ENGLISH, locale)}
    assert found - before == {
        f"help.calibrate.intrinsics.k3: missing (or empty) in {str(po).replace(str(locale), 'LOCALE')}"
    }
