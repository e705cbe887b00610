"""Keep the .po catalogs in step with the code: `python -m edge.locale.sync` (docs/i18n.md).

Writes `en/LC_MESSAGES/lineside.po` from `edge.i18n.ENGLISH` (msgid = message id, msgstr = the English
template) and adds every new id to each other language's .po with an empty msgstr and the English as a
translator's comment; translations already there are kept, ids the code no longer has are dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from edge.i18n import ENGLISH
from edge.locale import DOMAIN, FALLBACK, LANGUAGES, LOCALE_DIR, po_path


def sync(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Rewrite every language's .po; the files written."""
    written = []
    for language in LANGUAGES:
        path = po_path(language, locale_dir)
        old: dict[str, str] = {}
        dates: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as handle:
                previous = read_po(handle)
            old = {str(m.id): str(m.string) for m in previous if m.id}
            # The header's dates stay as they were, so a sync that changes nothing changes no file.
            dates = {"creation_date": previous.creation_date, "revision_date": previous.revision_date}
        catalog = Catalog(locale=language, domain=DOMAIN, project="lineside", fuzzy=False, **dates)
        for message_id, english in ENGLISH.items():
            string = english if language == FALLBACK else old.get(message_id, "")
            flags = ["python-brace-format"] if "{" in english else []
            comments = [] if language == FALLBACK else [english]
            catalog.add(message_id, string, auto_comments=comments, flags=flags)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=110, omit_header=False, sort_output=False)
        written.append(path)
    return written


def main() -> int:
    for path in sync():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
