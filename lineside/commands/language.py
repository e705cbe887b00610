"""The language a command speaks: `--lang`, else the config's `station.language`, else None (the locale's,
decided by edge.i18n); docs/i18n.md."""

from __future__ import annotations

from pathlib import Path


def command_language(lang: str | None, config: Path | None) -> str | None:
    """`lang` when given; else the station's language from `config` (LinesideError if it cannot be read)."""
    if lang is not None or config is None:
        return lang
    from edge.station.config import load_config

    return load_config(config).station.language
