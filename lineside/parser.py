"""The `lineside` command line's parser, speaking the reader's language: the commands write their --help
texts from the catalog (edge/locale/help.py), and this parser says argparse's own words (usage, options, its
error lines) in the same language, for lineside's parsers only; in English it is argparse, unchanged.
The language: `--lang` where the command named takes it, else the locale's (docs/i18n.md)."""

from __future__ import annotations

import argparse
import functools
import re
import string
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from edge.i18n import ENGLISH, say
from edge.locale import FALLBACK, LANGUAGES, environment_language

# argparse's error lines, the more specific first; the English template of each is the line argparse writes.
_ERRORS = (
    "argparse.required",
    "argparse.one_required",
    "argparse.unrecognized",
    "argparse.ambiguous",
    "argparse.argument",  # its {message} one of those below, or a command's own words (said as they are)
    "argparse.invalid_choice",
    "argparse.invalid_value",
    "argparse.not_allowed",
    "argparse.expected_one",
    "argparse.expected_at_most_one",
    "argparse.expected_at_least_one",
    "argparse.expected_n",
    "argparse.ignored",
)
_USAGE = "usage: "  # argparse's prefix of the usage line


class LinesideParser(argparse.ArgumentParser):
    """argparse's parser saying its own words in `language` (a class attribute: argparse makes each
    sub-command's parser of the class of its parent, so the whole tree speaks one language)."""

    language: ClassVar[str] = FALLBACK

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.language == FALLBACK:
            return
        # argparse has just named these in English (its gettext, the process's domain): say them again.
        self._positionals.title = say("argparse.positionals", self.language)
        self._optionals.title = say("argparse.options", self.language)
        for action in self._actions:
            if isinstance(action, argparse._HelpAction):
                action.help = say("argparse.help", self.language)
        self.formatter_class = _BY_COLUMNS.get(self.formatter_class, self.formatter_class)

    def format_usage(self) -> str:
        return self._said_usage(super().format_usage())

    def format_help(self) -> str:
        return self._said_usage(super().format_help())

    def error(self, message: str) -> NoReturn:
        if self.language == FALLBACK:
            super().error(message)
        self.print_usage(sys.stderr)
        said = said_error(message, self.language)
        self.exit(2, say("argparse.error", self.language, prog=self.prog, message=said) + "\n")

    def _said_usage(self, text: str) -> str:
        if self.language == FALLBACK or not text.startswith(_USAGE):
            return text
        prefix = say("argparse.usage", self.language) + ": "
        usage, gap, rest = text.partition("\n\n")
        first, *more = usage.split("\n")
        # A wrapped usage's later lines line up under the first's text: shift them by the prefix's new width.
        shift = columns(prefix) - len(_USAGE)
        more = [" " * shift + line if line and shift > 0 else line for line in more]
        return "\n".join([prefix + first[len(_USAGE) :], *more]) + gap + rest


@functools.cache
def parser_class(language: str) -> type[LinesideParser]:
    """The parser class that speaks `language`."""

    class Parser(LinesideParser):
        pass

    Parser.language = language
    return Parser


def said_error(message: str, language: str) -> str:
    """One of argparse's English error lines said in `language`; a line it does not know (a command's own
    words in a type check) as it is."""
    for message_id in _ERRORS:
        match = _pattern(ENGLISH[message_id]).fullmatch(message)
        if match:
            params = match.groupdict()
            if "message" in params:
                params["message"] = said_error(params["message"], language)
            return say(message_id, language, **params)
    return message


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    """A template as a pattern matching its sentences, each {parameter} a group."""
    parts = [
        re.escape(literal) + (f"(?P<{name}>.+?)" if name else "")
        for literal, name, _, _ in string.Formatter().parse(template)
    ]
    return re.compile("".join(parts), re.DOTALL)


def help_language(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The language of the help and of argparse's words: `--lang X` / `--lang=X` where the (sub-)command
    named in `argv` takes `--lang`, else the locale's."""
    asked = None
    for i, arg in enumerate(argv):  # as argparse does, the last one given counts
        if arg == "--lang" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--lang="):
            value = arg.partition("=")[2]
        else:
            continue
        if value in LANGUAGES:
            asked = value
    if asked is not None and "--lang" in _option_strings(_named_parser(parser, argv)):
        return asked
    return environment_language()


def _named_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of the (sub-)command `argv` names: down the tree through each sub-command name given."""
    for arg in argv:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and arg in action.choices:
                parser = action.choices[arg]
                break
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def columns(text: str) -> int:
    """Width on a terminal: wide characters (Hangul, CJK) take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap_columns(text: str, width: int) -> list[str]:
    """`text` broken at spaces into lines of at most `width` columns (a longer word on a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        if lines and columns(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


class _ColumnsFormatter(argparse.HelpFormatter):
    """Help texts wrapped by columns, not characters: argparse counts a Hangul syllable as one, and its
    lines would run twice past the terminal's edge. Text of ASCII only is wrapped by argparse, unchanged."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(text, width) if text.isascii() else wrap_columns(text, width)


class _ColumnsFillFormatter(_ColumnsFormatter):
    """Also descriptions wrapped by columns (argparse's default formatter fills them)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.isascii():
            return super()._fill_text(text, width, indent)
        return "\n".join(indent + line for line in wrap_columns(text, width - len(indent)))


class _ColumnsRawDescriptionFormatter(_ColumnsFormatter, argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written (their lines are broken in the catalog), help texts by columns."""


# argparse's formatters (a parser's formatter_class) -> the same, wrapping by columns
_BY_COLUMNS: dict[object, type[argparse.HelpFormatter]] = {
    argparse.HelpFormatter: _ColumnsFillFormatter,
    argparse.RawDescriptionHelpFormatter: _ColumnsRawDescriptionFormatter,
}
