"""The language a command speaks: `--lang`, else the config's `station.language`, else None (the locale's,
decided by edge.i18n); docs/i18n.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.locale import LANGUAGES


def add_language(parser: argparse.ArgumentParser) -> None:
    """`--lang en|ko`, as `records show`, `doctor` and the `calibrate` steps have it."""
    parser.add_argument("--lang", choices=LANGUAGES, help="language (default: the locale, LANG; else en)")


def command_language(lang: str | None, config: Path | None) -> str | None:
    """`lang` when given; else the station's language from `config` (LinesideError if it cannot be read)."""
    if lang is not None or config is None:
        return lang
    from edge.station.config import load_config

    return load_config(config).station.language
