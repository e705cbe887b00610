"""One row per fault case (what was injected, parts, wrong accepts, lost records, recovery time) and the
table printed at the end of the fault suite and kept in docs/reliability.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HEADER = ("case", "injected", "parts", "wrong accepts", "lost records", "recovery s", "visible in", "note")


@dataclass(frozen=True)
class FaultRow:
    """The figures of one fault case; `ok` is False when a fail-closed figure is not zero."""

    case: str
    injected: str  # what was injected and how often, e.g. "SIGKILL inference x2"
    parts: int  # parts the robot triggered
    wrong_accepts: int  # accepted although defective, not a complete in-time ACCEPT, or unknown
    lost_records: int  # triggered parts without exactly one record carrying a final verdict
    recovery_s: float | None  # worst injection-to-READY-again time; None when READY never dropped
    visible: tuple[str, ...] = field(default_factory=tuple)  # "status", "error_code", "records", "logs"
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.wrong_accepts == 0 and self.lost_records == 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "visible": list(self.visible), "ok": self.ok}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRow:
        return cls(
            case=str(data["case"]),
            injected=str(data["injected"]),
            parts=int(data["parts"]),
            wrong_accepts=int(data["wrong_accepts"]),
            lost_records=int(data["lost_records"]),
            recovery_s=None if data.get("recovery_s") is None else float(data["recovery_s"]),
            visible=tuple(str(v) for v in data.get("visible", ())),
            note=str(data.get("note", "")),
        )


def _cells(row: FaultRow) -> tuple[str, ...]:
    recovery = "-" if row.recovery_s is None else f"{row.recovery_s:.2f}"
    return (
        row.case,
        row.injected,
        str(row.parts),
        str(row.wrong_accepts),
        str(row.lost_records),
        recovery,
        ",".join(row.visible) or "-",
        row.note,
    )


def render_table(rows: list[FaultRow], markdown: bool = False) -> str:
    """The rows as an aligned text table, or a Markdown table for docs/reliability.md."""
    cells = [HEADER, *(_cells(r) for r in rows)]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "|".join("---" for _ in HEADER) + "|")
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))).rstrip() for c in cells)
