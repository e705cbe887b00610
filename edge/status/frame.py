"""The page's "last frame": the newest image the recorder kept, with the stages' heat maps under and the
result's detections and each stage's verdict drawn on it, the verdict words in the station's language
(Korean through Pillow and a CJK font, edge/records/picture_text.py; English where none is installed).

Read from the records folder (never from the live pipeline), so the page costs inference nothing.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from edge.i18n import say
from edge.judge.heatmaps import overlay_all
from edge.judge.inspection import Verdict
from edge.locale import FALLBACK
from edge.locale.names import Glossary, name_of
from edge.records.evidence import picture_language
from edge.records.images import heat_files
from edge.records.picture_text import cjk_font, draw_lines
from edge.records.schema import IMAGES_DIR
from edge.runtime.messages import LedgerEvent

MIN_WIDTH = 480  # small frames are enlarged before drawing, so the labels stay legible
COLOURS = {Verdict.ACCEPT: (60, 180, 60), Verdict.REJECT: (40, 40, 230), Verdict.FAULT: (0, 160, 255)}


def kept_image_path(event: LedgerEvent, image_format: str) -> PurePosixPath:
    """Where the recorder keeps this part's image (the layout of edge.records.images.image_relpath)."""
    day = datetime.fromtimestamp(event.trigger.wall_trigger, tz=timezone.utc).strftime("%Y-%m-%d")
    verdict = (event.verdict or Verdict.FAULT).value
    return PurePosixPath(
        IMAGES_DIR, day, f"{event.trigger.boot_id}-{event.trigger.seq}-{verdict}.{image_format}"
    )


def annotate(
    image: np.ndarray, event: LedgerEvent, lang: str | None = "en", glossary: Glossary | None = None
) -> np.ndarray:
    """A copy of `image` (enlarged if small) with each detection's box, class and confidence drawn, the
    verdict and the stages' lines (stage names in the plant's words from `glossary`) in `lang` (None: the
    locale's) where a font can write it; the boxes' class names are the card's (OpenCV's ASCII font)."""
    scale = max(1.0, MIN_WIDTH / max(1, image.shape[1]))
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    canvas = (
        cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        if scale > 1
        else image.copy()
    )
    verdict = event.verdict or Verdict.FAULT
    colour = COLOURS[verdict]
    for detection in event.result.parsed_detections() if event.result is not None else ():
        x1, y1, x2, y2 = (round(v * scale) for v in detection.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        label = f"{detection.class_name} {detection.confidence:.2f}"
        cv2.putText(
            canvas, label, (x1, max(14, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA
        )
    language = picture_language(lang)
    part = event.trigger.part_id or event.trigger.seq
    banner = say("frame.banner", language, verdict=say(f"verdict.{verdict.value}", language), part=part)
    stages = event.result.stages if event.result is not None else ()
    shown = stages if len(stages) > 1 or any(s.get("kind") != "detect" for s in stages) else ()
    font = cjk_font() if language != FALLBACK else None
    if font is not None:
        texts = [banner, *(_stage_line(stage, language, glossary) for stage in shown)]
        inks = [colour, (240, 240, 240)]
        dark = (20, 20, 20)
        drawn = np.asarray(canvas, np.uint8)
        return draw_lines(drawn, texts, origin=(8, 6), line_px=22, inks=inks, font_path=font, outline=dark)
    cv2.putText(canvas, banner, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
    for row, stage in enumerate(shown):
        text = _stage_line(stage, language, glossary)
        y = 44 + 20 * row
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(canvas, (6, y - height - 4), (10 + width, y + 5), (20, 20, 20), cv2.FILLED)
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (240, 240, 240), 1, cv2.LINE_AA)
    return canvas


def _stage_line(stage: dict[str, object], lang: str, glossary: Glossary | None = None) -> str:
    """One stage as a short line: its name, verdict and score against its threshold."""
    score, threshold = stage.get("score"), stage.get("threshold")
    numbers = (
        f" {score:.2f} / {threshold:.2f}" if isinstance(score, float) and isinstance(threshold, float) else ""
    )
    verdict = stage.get("verdict")
    word = say(f"verdict.{verdict}", lang) if verdict in ("ACCEPT", "REJECT", "FAULT") else str(verdict)
    return f"{name_of(str(stage.get('stage')), lang, glossary)}: {word}{numbers}"


def _heatmaps(records_dir: Path, image: Path) -> dict[str, np.ndarray]:
    """The stages' heat maps kept beside the image (none for a detector-only recipe)."""
    maps = {}
    for stage, path in heat_files(records_dir, image.relative_to(records_dir).as_posix()).items():
        heat = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if heat is not None:
            maps[stage] = heat
    return maps


class LastFrame:
    """Finds and renders the newest kept image among recent inspections; caches the rendering."""

    def __init__(
        self,
        records_dir: Path,
        image_format: str,
        language: str | None = "en",
        glossary: Glossary | None = None,
    ) -> None:
        self.records_dir = records_dir
        self.image_format = image_format
        self.language = language
        self.glossary = glossary
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], bytes] | None = None

    def render(self, recent: list[LedgerEvent]) -> tuple[LedgerEvent, bytes] | None:
        """(event, JPEG bytes) of the newest recent inspection whose image exists; None if none has one."""
        for event in recent:
            key = (event.trigger.boot_id, event.trigger.seq)
            with self._lock:
                if self._cached is not None and self._cached[0] == key:
                    return event, self._cached[1]
            path = self.records_dir / kept_image_path(event, self.image_format)
            if not path.is_file():
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                continue  # evicted or half-read: try the next newest
            image = overlay_all(np.asarray(image, dtype=np.uint8), _heatmaps(self.records_dir, path))
            drawn = annotate(image, event, self.language, self.glossary)
            ok, jpeg = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                continue
            data = bytes(jpeg.tobytes())
            with self._lock:
                self._cached = (key, data)
            return event, data
        return None
