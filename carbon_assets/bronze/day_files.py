"""The bronze day file: the API's records for one UTC day plus where they came from. Pure.

The one place that knows the format: building a day document, encoding it to a file's bytes and
decoding it back (as plain JSON for tools, or typed for silver).

A day document is what one bronze file holds:

    {"date": "2024-01-01", "complete": true,
     "first_fetched_at": "2024-02-01T10:00:00.123456+00:00",
     "last_fetched_at": "2024-02-01T10:00:00.123456+00:00",
     "half_hours": 48, "region_records": 864,
     "missing_half_hours": [], ["off_grid_starts": [...],] ["invalid_half_hours": [...],]
     "sources": [
        {"url": ".../regional/intensity/2024-01-01T00:00Z/2024-01-14T00:00Z",
         "status": 200, "attempts": 1, "fetched_at": "2024-02-01T10:00:00.123456+00:00",
         "data": [<the API's period records for this day, unchanged and in API order>]}]}

A national day file (request_plan.NATIONAL) has the same shape with the national endpoint's
records, one per half-hour ("region_records" counts them), and, right after the fetch times,
"actuals_pending": the number of its half-hours whose actual the API had not yet published
(absent when none; a regional file never has it).

Several sources appear when a day came from two requests (31 Dec) or when a re-fetch kept
half-hours that only an earlier fetch had. first_/last_fetched_at are the earliest and latest
fetch behind the file (whether its values have settled, when to try an incomplete day again).
`off_grid_starts` is present only when the API sent records that do not start on :00 or :30
(kept like any other, listed for the bronze check). `invalid_half_hours` is present only when
a record has problems (a value silver cannot read or outside its physical range, records.py):
[{"start": "2024-01-02T10:00Z", "problems": ["..."]}]. Such a day is never complete, so every
later run fetches it again, and silver refuses to read it. Everything before "sources" is the
file's summary, read without decoding the records.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgspec

from carbon_assets.bronze.records import (
    AnyPeriod,
    NationalRecord,
    Period,
    PeriodRecord,
    api_datetime,
)
from carbon_assets.bronze.request_plan import half_hours_of, is_on_grid

DayDocument = dict[str, Any]

# "complete" and the fetch times are the first keys of every document written here, so they
# are read from a file's head: checking years of days does not parse years of records.
HEAD = re.compile(
    rb'^\{"date":"[0-9-]+","complete":(?P<complete>true|false)'
    rb'(,"first_fetched_at":(?:"(?P<first>[^"]*)"|null),"last_fetched_at":(?:"(?P<last>[^"]*)"|null))?'
    rb'(,"actuals_pending":(?P<pending>[0-9]+))?'
)
HEAD_WITHIN = 200


@dataclass(frozen=True)
class DayHead:
    """What a day file says before its records: complete or not, and when it was fetched;
    `invalid` when it holds invalid half-hours (the head of the file cannot show it: see
    refresh.stored_head)."""

    complete: bool
    first_fetched_at: dt.datetime | None
    last_fetched_at: dt.datetime | None
    invalid: bool = False
    actuals_pending: int = 0  # national half-hours whose actual is not yet published


# Where the records start: what comes before is the summary (date, completeness, lists).
SOURCES_KEY = b',"sources":'


# Problems listed per invalid half-hour in a file's summary; a hostile answer can have one in
# every value, and the summary is read by every check.
PROBLEMS_LISTED = 10


@dataclass(frozen=True)
class DayCompleteness:
    half_hours: int  # distinct half-hours with every region and fuel and no invalid record
    region_records: int
    missing: tuple[dt.datetime, ...]  # half-hours absent or short of regions/fuels
    off_grid: tuple[dt.datetime, ...] = ()  # starts of records not on :00/:30, in order
    # (start, problems) of each start with an invalid record, in order of start
    invalid: tuple[tuple[dt.datetime, tuple[str, ...]], ...] = ()
    actuals_pending: int = 0  # whole half-hours whose actual is still to come (national)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.invalid


def assess(day: dt.date, periods: Iterable[AnyPeriod]) -> DayCompleteness:
    full: set[dt.datetime] = set()
    settled: set[dt.datetime] = set()  # half-hours some record of which has its actual
    off_grid: dict[dt.datetime, None] = {}
    invalid: dict[dt.datetime, dict[str, None]] = {}
    region_records = 0
    for period in periods:
        region_records += period.regions
        if period.problems:
            invalid.setdefault(period.start, {}).update(dict.fromkeys(period.problems))
        if not is_on_grid(period.start):
            off_grid[period.start] = None
        elif period.full:
            full.add(period.start)
            if not period.actual_pending:
                settled.add(period.start)
    day_half_hours = half_hours_of(day)
    missing = tuple(start for start in day_half_hours if start not in full)
    return DayCompleteness(
        half_hours=sum(start in full and start not in invalid for start in day_half_hours),
        region_records=region_records,
        missing=missing,
        off_grid=tuple(off_grid),
        invalid=tuple((start, tuple(invalid[start])) for start in sorted(invalid)),
        actuals_pending=sum(start in full and start not in settled for start in day_half_hours),
    )


def _listed(problems: tuple[str, ...]) -> list[str]:
    if len(problems) <= PROBLEMS_LISTED:
        return list(problems)
    return [*problems[:PROBLEMS_LISTED], f"... and {len(problems) - PROBLEMS_LISTED} more"]


def day_periods(document: DayDocument) -> list[AnyPeriod]:
    return [period for source in document["sources"] for period in source["data"]]


def moment_text(moment: dt.datetime) -> str:
    """The API's format (2024-01-01T09:15Z), or ISO 8601 when the moment has seconds."""
    return moment.isoformat() if moment.second or moment.microsecond else api_datetime(moment)


def build_document(day: dt.date, sources: list[dict[str, Any]]) -> DayDocument:
    """A day document from its sources (each {url, status, attempts, fetched_at, data}), where
    data is a list of Periods."""
    completeness = assess(day, (period for source in sources for period in source["data"]))
    fetched = sorted(source["fetched_at"] for source in sources if source.get("fetched_at"))
    document = {
        "date": day.isoformat(),
        "complete": completeness.complete,
        "first_fetched_at": fetched[0] if fetched else None,
        "last_fetched_at": fetched[-1] if fetched else None,
    }
    if completeness.actuals_pending:  # national only; read with the head (HEAD)
        document["actuals_pending"] = completeness.actuals_pending
    document |= {
        "half_hours": completeness.half_hours,
        "region_records": completeness.region_records,
        "missing_half_hours": [api_datetime(start) for start in completeness.missing],
    }
    if completeness.off_grid:  # nearly never: files stay as they were without it
        document["off_grid_starts"] = [moment_text(start) for start in completeness.off_grid]
    if completeness.invalid:  # the same
        document["invalid_half_hours"] = [
            {"start": moment_text(start), "problems": _listed(problems)}
            for start, problems in completeness.invalid
        ]
    return {**document, "sources": sources}


def merge_with_previous(
    new: DayDocument, previous: DayDocument | None, period_type: type[AnyPeriod] = Period
) -> DayDocument:
    """Keep half-hours that only the previous file had: a re-fetch must never lose data.

    A half-hour the new fetch brought whole, or invalid, replaces the previous file's records
    of it, except that a valid whole record is kept beside a new invalid one (the day stays
    invalid, so it is fetched again; the valid values are not lost meanwhile). So an invalid
    record goes only when another fetch of its half-hour comes, and a day is complete only
    once every invalid value has been replaced by a valid one; repeated invalid answers do not
    pile up.

    `previous` is the day's file as `decode_periods` (records as `period_type`) or `decode`
    (records as plain dicts) returns it.
    """
    if previous is None:
        return new
    day = dt.date.fromisoformat(new["date"])
    fetched: set[dt.datetime] = set()
    fetched_valid: set[dt.datetime] = set()
    for period in day_periods(new):
        if period.full or period.problems:
            fetched.add(period.start)
            if not period.problems:
                fetched_valid.add(period.start)
    kept_sources = []
    for source in previous["sources"]:
        kept = [
            period
            for period in (_as_period(record, period_type) for record in source["data"])
            if period.start not in fetched
            or (period.start not in fetched_valid and period.full and not period.problems)
        ]
        if kept:
            kept_sources.append({**source, "data": kept})
    if not kept_sources:
        return new
    return build_document(day, new["sources"] + kept_sources)


def _as_period(record: AnyPeriod | dict[str, Any], period_type: type[AnyPeriod]) -> AnyPeriod:
    return record if isinstance(record, period_type) else period_type.from_record(record)


# --- bytes -------------------------------------------------------------------------------


def _period_as_sent(value: object) -> msgspec.Raw:
    """Periods are written as the bytes the API sent them in, not re-encoded."""
    if isinstance(value, AnyPeriod):
        return msgspec.Raw(value.raw)
    raise TypeError(f"a day document cannot hold a {type(value).__name__}")


_DOCUMENT_ENCODER = msgspec.json.Encoder(enc_hook=_period_as_sent)


def encode(document: DayDocument) -> bytes:
    """A day file's bytes: the document as compact JSON, gzip-compressed."""
    # mtime=0 keeps the gzip bytes a pure function of the document.
    return gzip.compress(_DOCUMENT_ENCODER.encode(document), compresslevel=3, mtime=0)


def decode(content: bytes) -> DayDocument:
    """A day file's document as plain JSON data (its records are dicts)."""
    return msgspec.json.decode(gzip.decompress(content))


_FIELDS_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])


def decode_periods(text: bytes, period_type: type[AnyPeriod] = Period) -> DayDocument:
    """A day file's decompressed document with its records as `period_type`, as the API sent
    them.

    Unlike plain JSON data, this keeps a record plain JSON cannot hold in Python (1e309, an
    invalid record kept as sent) and needs no re-encoding to write the records again.
    """
    document = {}
    for key, value in _FIELDS_DECODER.decode(text).items():
        if key != "sources":
            document[key] = msgspec.json.decode(value)
            continue
        document["sources"] = sources = []
        for raw_source in _LIST_DECODER.decode(value):
            source: dict[str, Any] = {}
            for field, field_value in _FIELDS_DECODER.decode(raw_source).items():
                if field == "data":
                    source["data"] = [period_type(raw) for raw in _LIST_DECODER.decode(field_value)]
                else:
                    source[field] = msgspec.json.decode(field_value)
            sources.append(source)
    return document


def _moment(text: bytes | str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.decode() if isinstance(text, bytes) else text)


def read_head(start: bytes) -> DayHead | None:
    """The head of a day file from the first HEAD_WITHIN bytes of its decompressed content, or
    None when they do not show it (a file of another tool)."""
    if (match := HEAD.match(start)) is None:
        return None
    return DayHead(
        complete=match["complete"] == b"true",
        first_fetched_at=_moment(match["first"]),
        last_fetched_at=_moment(match["last"]),
        actuals_pending=int(match["pending"] or 0),
    )


def head_of(document: DayDocument) -> DayHead:
    """The same from a whole document; fetch times from its sources when the head lacks them
    (files written before the head carried them)."""
    fetched = sorted(
        _moment(source["fetched_at"])
        for source in document.get("sources", ())
        if source.get("fetched_at")
    )
    return DayHead(
        complete=bool(document.get("complete")),
        first_fetched_at=fetched[0] if fetched else None,
        last_fetched_at=fetched[-1] if fetched else None,
        invalid=bool(document.get("invalid_half_hours")),
        actuals_pending=int(document.get("actuals_pending") or 0),
    )


def summary(stream: BinaryIO, chunk_size: int = 4096) -> DayDocument:
    """The document without its records ("sources"), read from the start of a decompressed
    stream: a check over years of days does not decode years of records."""
    head = b""
    while (cut := head.find(SOURCES_KEY)) < 0:
        chunk = stream.read(chunk_size)
        if not chunk:  # a file written by another tool: decode all of it
            return {k: v for k, v in msgspec.json.decode(head).items() if k != "sources"}
        head += chunk
    return msgspec.json.decode(head[:cut] + b"}")


# The typed shape of a day file as silver reads it.
class SourceRecords(msgspec.Struct, gc=False):
    fetched_at: str | None = None
    data: list[PeriodRecord] | None = None


class DayRecords(msgspec.Struct, gc=False):
    date: str
    sources: list[SourceRecords] | None = None


class NationalSourceRecords(msgspec.Struct, gc=False):
    fetched_at: str | None = None
    data: list[NationalRecord] | None = None


class NationalDayRecords(msgspec.Struct, gc=False):
    date: str
    sources: list[NationalSourceRecords] | None = None


_DAY_RECORDS_DECODER = msgspec.json.Decoder(DayRecords)


def decode_records(content: bytes) -> DayRecords:
    """A day file's records, typed; msgspec.DecodeError (a ValueError) for another shape."""
    return _DAY_RECORDS_DECODER.decode(gzip.decompress(content))
