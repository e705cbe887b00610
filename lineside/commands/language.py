"""The language a command speaks: `--lang`, else the config's `station.language`, else None (the locale's,
decided by edge.i18n); and the station's words for class and stage names (`station.names`); docs/i18n.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.i18n import say
from edge.locale import LANGUAGES
from edge.locale.names import Glossary


def add_language(parser: argparse.ArgumentParser, lang: str) -> None:
    """`--lang en|ko`, as `doctor` and the `calibrate` steps have it; its help said in `lang`."""
    parser.add_argument("--lang", choices=LANGUAGES, help=say("help.lang", lang))


def command_language(lang: str | None, config: Path | None) -> str | None:
    """`lang` when given; else the station's language from `config` (LinesideError if it cannot be read)."""
    if lang is not None or config is None:
        return lang
    from edge.station.config import load_config

    return load_config(config).station.language


def command_glossary(config: Path | None, demo: bool = False) -> Glossary:
    """The station's names for classes and stages: `config`'s; the embedded demo's when the command reads the
    demo's records (`demo`); else none (every name said as the model card and the recipe say it)."""
    if config is not None:
        from edge.station.config import load_config

        return load_config(config).station.names
    if demo:
        from lineside.demo import demo_config

        return demo_config().station.names
    return {}
