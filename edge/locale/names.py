"""The plant's own words for class and stage names (`station.names` in the config): the model card says
`scratch`, the recipe `classifier`; a Korean line may call them 스크래치 and 분류기.

Records keep the card's and the recipe's names (the codes); a sentence says the plant's word for one only
when it is said, and only in that language: a name without an entry is said as the code. `NAME_PARAMS`
lists which parameters of which messages are such names, so the messages are built as before and the
glossary is applied where they are said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from edge.i18n import Message, render
from edge.locale import environment_language, language_from

Glossary = Mapping[str, Mapping[str, str]]  # language -> class or stage name -> the plant's word for it

NAME_PARAMS: dict[str, tuple[str, ...]] = {
    "reason.detect.reject": ("cls",),
    "reason.classify.reject": ("stage",),
    "reason.anomaly.reject": ("stage",),
    "spc.chart.class_rate": ("name",),
    "summary.cause": ("cause",),
}


def names_in(glossary: Glossary | None, lang: str | None) -> Mapping[str, str]:
    """The glossary's words in `lang` (None: the locale's language); empty when it has none."""
    language = environment_language() if lang is None else language_from(lang)
    return (glossary or {}).get(language, {})


def name_of(code: str, lang: str | None, glossary: Glossary | None) -> str:
    """A class or stage name as the plant says it in `lang`; the code itself without an entry."""
    return names_in(glossary, lang).get(code, code)


def named(message: Message, lang: str | None, glossary: Glossary | None) -> Message:
    """`message` with the class and stage names among its parameters (and its parameters' parameters) in
    the plant's words for `lang`; the same message when the glossary has none."""
    words = names_in(glossary, lang)
    return _named(message, words) if words else message


def say_named(message: Message, lang: str | None, glossary: Glossary | None) -> str:
    """`message` said in `lang` (None: the locale's) with the plant's names."""
    return render(named(message, lang, glossary), lang)


def _named(message: Message, words: Mapping[str, str]) -> Message:
    names = NAME_PARAMS.get(message.id, ())
    params = {
        key: words.get(value, value) if key in names and isinstance(value, str) else _inner(value, words)
        for key, value in message.params.items()
    }
    return replace(message, params=params)


def _inner(value: Any, words: Mapping[str, str]) -> Any:
    if isinstance(value, Message):
        return _named(value, words)
    if isinstance(value, tuple) and value and all(isinstance(v, Message) for v in value):
        return tuple(_named(v, words) for v in value)
    return value
