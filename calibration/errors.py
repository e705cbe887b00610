"""A calibration step's one-line error kept as a catalog message, so that `lineside calibrate --lang` says it
in Korean or English (docs/i18n.md); its str() stays the English line that scripts and tests read."""

from __future__ import annotations

from edge.errors import LinesideError
from edge.i18n import Message, render


class SaidError(LinesideError):
    """A LinesideError whose text is a message: str() is its English, `said(lang)` its words in `lang`."""

    def __init__(self, message: Message) -> None:
        super().__init__(render(message, "en"))
        self.message = message

    def said(self, lang: str | None) -> str:
        return render(self.message, lang)


class InputError(SaidError):
    """What the technician gave cannot be used: a spec, a file, a value; the line names which (exit 2)."""
