"""The gettext catalogs (`<lang>/LC_MESSAGES/lineside.po`) and which language a person reads.

The .po files are read by Babel when first needed (no compile step, nothing to build at install): msgid is
the message id (`summary.yield`), msgstr its template. docs/i18n.md says how to add or translate one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from babel.messages.pofile import read_po

DOMAIN = "lineside"
LANGUAGES = ("en", "ko")
FALLBACK = "en"
LOCALE_DIR = Path(__file__).resolve().parent


def po_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(path: Path) -> dict[str, str]:
    """A .po file as message id -> template; untranslated (empty) and fuzzy entries are left out, so the
    English template stands in for them."""
    with path.open("rb") as handle:
        catalog = read_po(handle)
    return {
        str(m.id): str(m.string)
        for m in catalog
        if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string and not m.fuzzy
    }


@functools.cache
def catalog(language: str) -> Mapping[str, str]:
    """The installed catalog of `language`; empty for a language with none (everything falls back)."""
    path = po_path(language)
    return read_catalog(path) if path.is_file() else {}


def language_from(value: str | None) -> str:
    """A supported language from a config value, `--lang` or a locale name (`ko_KR.UTF-8` -> `ko`);
    English for anything else."""
    if not value:
        return FALLBACK
    code = value.split(".")[0].split("@")[0].split("_")[0].split("-")[0].lower()
    return code if code in LANGUAGES else FALLBACK


def environment_language(environ: Mapping[str, str] | None = None) -> str:
    """The language the process's locale asks for, in gettext's order (LANGUAGE, LC_ALL, LC_MESSAGES,
    LANG); English when none is set or none is supported."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            # LANGUAGE may be a preference list (ko:en); the first supported one wins.
            for candidate in value.split(":"):
                if language_from(candidate) != FALLBACK or candidate.lower().startswith("en"):
                    return language_from(candidate)
            return FALLBACK
    return FALLBACK
