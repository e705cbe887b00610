"""A calibration step refused with advice (too few views, views tilted alike): one line the technician reads,
kept as a catalog message so that `lineside calibrate --lang` says it in Korean or English."""

from __future__ import annotations

from edge.errors import LinesideError
from edge.i18n import Message, render


class RefusalError(LinesideError):
    """A LinesideError whose text is a message: str() is its English, `said(lang)` its words in `lang`."""

    def __init__(self, message: Message) -> None:
        super().__init__(render(message, "en"))
        self.message = message

    def said(self, lang: str | None) -> str:
        return render(self.message, lang)
