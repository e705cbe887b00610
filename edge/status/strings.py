"""The status page's words in the station's language: every `page.*`, `verdict.*` and `fault.*` message of
the catalog, the line alarms' chart and rule names (`spc.*`) and who acknowledged them (`ack.*`), served
once as `/api/strings` (the page keeps English in its HTML for a browser that cannot fetch them). Templates
keep their `{parameters}`; the page fills them in. `names` holds the plant's words for class and stage names
in that language (`station.names`), which the page says in place of the codes.
"""

from __future__ import annotations

from edge.i18n import ENGLISH
from edge.locale import FALLBACK, catalog, environment_language, language_from
from edge.locale.names import Glossary, names_in

PREFIXES = ("page.", "verdict.", "fault.", "spc.chart.", "spc.rule.", "spc.side.", "spc.direction.", "ack.")


def page_strings(language: str | None, glossary: Glossary | None = None) -> dict[str, object]:
    """Message id -> template for the page in `language` (None: the locale's), English where a
    translation is missing; `lang` gives the language the page is in (for `<html lang>`)."""
    lang = environment_language() if language is None else language_from(language)
    translated = catalog(lang) if lang != FALLBACK else {}
    words = {
        key: translated.get(key) or english for key, english in ENGLISH.items() if key.startswith(PREFIXES)
    }
    return {"lang": lang, **words, "names": dict(names_in(glossary, lang))}
