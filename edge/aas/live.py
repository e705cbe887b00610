"""The shell as the live API serves it: the static submodels built once, the results with current values.

Counters and yield come from the records database (the same query as the export), at most once a
second however many clients ask; the last result and the model in use come from the line's stream
of final inspections, which the AAS worker hands in, so they are current before the record is written.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

from basyx.aas import model
from basyx.aas.adapter.json import AASToJsonEncoder

from edge.aas.api import ApiError, Repository
from edge.aas.counts import ResultsSnapshot, read_snapshot, records_since
from edge.aas.environment import result_submodels, static_submodels, station_shell
from edge.aas.identity import station_identity
from edge.runtime.messages import LedgerEvent
from edge.station.config import LinesideConfig

REFRESH_S = 1.0
RECORDS_PAGE_MAX = 10000


def to_json(obj: model.Identifiable) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(obj, cls=AASToJsonEncoder))
    return data


class LiveShell:
    """Thread-safe: HTTP threads read `repository()`, the worker's loop calls `observe()`.

    The repository is rebuilt at most every `refresh_s`, however many clients ask and however fast
    parts come, so a busy client costs the appliance one records query a second.
    """

    def __init__(self, config: LinesideConfig, refresh_s: float = REFRESH_S) -> None:
        self.config = config
        self.identity = station_identity(config.aas, config.station.name)
        self._static = static_submodels(config, self.identity)
        self._static_json = [to_json(sm) for sm in self._static]
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._last_event: dict[str, Any] | None = None
        self._model: dict[str, str] | None = None
        self._cached: tuple[float, Repository] | None = None

    def observe(self, event: LedgerEvent) -> None:
        """A final inspection from the line: it becomes the last result (and its model the one in use)."""
        if event.kind != "finalised" or event.verdict is None:
            return
        trigger, result = event.trigger, event.result
        last = {
            "boot_id": trigger.boot_id,
            "seq": trigger.seq,
            "part_id": trigger.part_id,
            "recipe": result.recipe_name
            if result is not None and result.recipe_name
            else str(trigger.recipe),
            "verdict": event.verdict.value,
            "error_code": int(event.error_code),
            "reasons": list(event.reasons),
            "triggered_at": trigger.wall_trigger,
        }
        with self._lock:
            self._last_event = last
            if result is not None and result.model.sha256:
                self._model = result.model.model_dump()

    def repository(self) -> Repository:
        now = time.time()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < self._refresh_s:
                return self._cached[1]
            last_event, model_in_use = self._last_event, self._model
        snapshot = self._snapshot(now, last_event, model_in_use)
        results = result_submodels(snapshot, self.identity)
        submodels = [*self._static, *results]
        shell = to_json(station_shell(self.identity, submodels))
        # BaSyx keeps a shell's references in a set; list them in the submodels' order, the same every time.
        order = {sm.id: index for index, sm in enumerate(submodels)}
        shell["submodels"].sort(key=lambda ref: order[ref["keys"][0]["value"]])
        repo = Repository([shell], [*self._static_json, *(to_json(sm) for sm in results)])
        with self._lock:
            self._cached = (now, repo)
        return repo

    def _snapshot(
        self, now: float, last_event: dict[str, Any] | None, model_in_use: dict[str, str] | None
    ) -> ResultsSnapshot:
        aas = self.config.aas
        snapshot = read_snapshot(self.config.records.dir, aas.shift_starts, aas.shifts_kept, now)
        last, current_model = snapshot.last, snapshot.model
        # The stream is ahead of the database by the recorder's write: take whichever part is newer.
        if last_event is not None and (last is None or last_event["triggered_at"] >= last["triggered_at"]):
            last = last_event
            current_model = model_in_use or current_model
        return ResultsSnapshot(snapshot.taken_at, snapshot.shifts, snapshot.span, last, current_model)

    def records(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """`/records?since=ISO-or-epoch&limit=N`: records oldest first and where the next page starts."""
        since = _since(query.get("since", [None])[-1])
        limit_text = query.get("limit", ["1000"])[-1]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= RECORDS_PAGE_MAX:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"limit must be 1..{RECORDS_PAGE_MAX}")
        records = records_since(self.config.records.dir, since, int(limit_text))
        next_since = records[-1]["triggered_at"] if records else None
        # The next page starts at the last record's instant, inclusive: a strict `>` would skip a record
        # triggered at that very instant; the client drops the repeat by its (boot_id, seq).
        return {"records": records, "next_since": next_since}


def _since(text: str | None) -> float:
    if text is None or text == "":
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "since must be an ISO 8601 time or epoch seconds") from None
    return moment.timestamp()
