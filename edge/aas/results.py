"""The inspection results as submodels: counters and yield per shift (ISO 22400-2 terms), the last result
and the model in use, and the record history as Time Series Data (IDTA 02008-1-1) with a LinkedSegment
that points at the appliance's own `/records` endpoint instead of embedding thousands of records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from basyx.aas import model

from edge.aas.counts import ResultsSnapshot, ShiftCount
from edge.aas.elements import Element, collection, element_list, optional, own, prop, submodel, text
from edge.aas.identity import Identity

RESULTS_SEMANTIC = own("InspectionResults")
TIME_SERIES = "https://admin-shell.io/idta/TimeSeries/1/1"
_TS = "https://admin-shell.io/idta/TimeSeries/"
_ISO = "ISO22400/"
RECORDS_PAGE = 1000  # records per page the LinkedSegment's query asks for


def utc(epoch_s: float) -> datetime:
    """An aware UTC datetime without microseconds (xs:dateTime as every reader parses it)."""
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).replace(microsecond=0)


def iso(epoch_s: float) -> str:
    return utc(epoch_s).isoformat().replace("+00:00", "Z")


def results_submodel(snapshot: ResultsSnapshot, identity: Identity) -> model.Submodel:
    current = snapshot.shifts[0] if snapshot.shifts else None
    elements: list[Element] = optional(
        prop("Generated", utc(snapshot.taken_at), own("Generated"), model.datatypes.DateTime),
        None if current is None else _shift("CurrentShift", current),
        element_list(
            "Shifts",
            own("InspectionResults/Shifts"),
            (_shift(None, shift) for shift in snapshot.shifts),
            model.SubmodelElementCollection,
            own("InspectionResults/Shift"),
        ),
        prop(
            "RecordsStored", snapshot.span.count, own("InspectionResults/RecordsStored"), model.datatypes.Long
        ),
        None if snapshot.last is None else _last(snapshot.last),
        None if snapshot.model is None else _model(snapshot.model),
    )
    return submodel(
        identity.submodel_id("InspectionResults"), "InspectionResults", RESULTS_SEMANTIC, elements
    )


def _shift(id_short: str | None, shift: ShiftCount) -> model.SubmodelElementCollection:
    """One shift; the element names are ISO 22400-2's quantities (PQ, GQ, SQ) and quality ratio."""
    quality = shift.quality_ratio
    long = model.datatypes.Long
    return collection(
        id_short,
        own("InspectionResults/Shift"),
        optional(
            prop(
                "ShiftStart", utc(shift.start), own("InspectionResults/ShiftStart"), model.datatypes.DateTime
            ),
            prop("ShiftEnd", utc(shift.end), own("InspectionResults/ShiftEnd"), model.datatypes.DateTime),
            prop("InspectedQuantity", shift.inspected, own(_ISO + "ProducedQuantity"), long),
            prop("GoodQuantity", shift.good, own(_ISO + "GoodQuantity"), long),
            prop("RejectedQuantity", shift.rejected, own(_ISO + "RejectedQuantity"), long),
            prop("FaultQuantity", shift.faults, own(_ISO + "FaultQuantity"), long),
            prop("ScrapQuantity", shift.scrap, own(_ISO + "ScrapQuantity"), long),
            None
            if quality is None
            else prop("QualityRatio", round(quality, 6), own(_ISO + "QualityRatio"), model.datatypes.Double),
        ),
    )


def _last(record: dict[str, Any]) -> model.SubmodelElementCollection:
    reasons = record.get("reasons") or [""]
    return collection(
        "LastResult",
        own("InspectionResults/LastResult"),
        optional(
            prop("BootId", int(record["boot_id"]), own("Record/BootId"), model.datatypes.Int),
            prop("Seq", int(record["seq"]), own("Record/Seq"), model.datatypes.Long),
            None
            if not record.get("part_id")
            else prop("PartId", str(record["part_id"]), own("Record/PartId")),
            prop("Recipe", str(record["recipe"]), own("Record/Recipe")),
            prop("Verdict", str(record["verdict"]), own("Record/Verdict")),
            prop("ErrorCode", int(record["error_code"]), own("Record/ErrorCode"), model.datatypes.Int),
            prop("Reason", str(reasons[0]), own("Record/Reason")),
            prop(
                "TriggeredAt",
                utc(float(record["triggered_at"])),
                own("Record/TriggeredAt"),
                model.datatypes.DateTime,
            ),
        ),
    )


def _model(model_in_use: dict[str, str]) -> model.SubmodelElementCollection:
    return collection(
        "ModelInUse",
        own("InspectionResults/ModelInUse"),
        [
            prop("Name", model_in_use["name"], own("Model/Name")),
            prop("Version", model_in_use["version"], own("Model/Version")),
            prop("Sha256", model_in_use["sha256"], own("Model/Sha256")),
        ],
    )


def time_series_submodel(snapshot: ResultsSnapshot, identity: Identity) -> model.Submodel:
    """Metadata describing one record, and one LinkedSegment: the history lives behind `/records`."""
    record = collection(
        "Record",
        _TS + "Record/1/1",
        [
            prop("Time", None, _TS + "UtcTime/1/1", model.datatypes.DateTime),
            prop("Verdict", None, own("Record/Verdict")),
            prop("Seq", None, own("Record/Seq"), model.datatypes.Long),
            prop("PartId", None, own("Record/PartId")),
            prop("Recipe", None, own("Record/Recipe")),
            prop("ErrorCode", None, own("Record/ErrorCode"), model.datatypes.Int),
            prop("TotalLatencyMs", None, own("Record/TotalLatencyMs"), model.datatypes.Double),
        ],
    )
    metadata = collection(
        "Metadata",
        _TS + "Metadata/1/1",
        [
            text("Name", f"Inspection records of {identity.station}", _TS + "Metadata/Name/1/1"),
            text(
                "Description",
                "One record per inspected part: verdict, reasons, detections, model, latencies (JSON).",
                _TS + "Metadata/Description/1/1",
            ),
            record,
        ],
    )
    span = snapshot.span
    since = iso(span.first_at) if span.first_at is not None else iso(snapshot.taken_at)
    segment = collection(
        "LinkedSegment",
        _TS + "Segments/LinkedSegment/1/1",
        optional(
            text("Name", "records", _TS + "Segment/Name/1/1"),
            text(
                "Description",
                "GET <Endpoint>?<Query>: JSON {records: [...], next_since}, oldest first, "
                f"{RECORDS_PAGE} a page",
                _TS + "Segment/Description/1/1",
            ),
            prop("RecordCount", span.count, _TS + "Segment/RecordCount/1/1", model.datatypes.Long),
            prop("StartTime", since, _TS + "Segment/StartTime/1/1"),
            None if span.last_at is None else prop("EndTime", iso(span.last_at), _TS + "Segment/EndTime/1/1"),
            prop("State", "InProgress", _TS + "Segment/State/1/1"),
            prop("LastUpdate", iso(snapshot.taken_at), _TS + "Segment/LastUpdate/1/1"),
            prop("Endpoint", f"{identity.public_url}/records", _TS + "Endpoint/1/1"),
            prop("Query", f"since={since}&limit={RECORDS_PAGE}", _TS + "Query/1/1"),
        ),
    )
    segments = collection("Segments", _TS + "Segments/1/1", [segment])
    return submodel(
        identity.submodel_id("InspectionRecords"),
        "InspectionRecords",
        TIME_SERIES,
        [metadata, segments],
        version=("1", "1"),
        template_id="https://admin-shell.io/IDTA/02008/1/1",
    )
