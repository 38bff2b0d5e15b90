"""Bronze day documents: the API's records for one UTC day plus where they came from. Pure.

A day document is what one bronze file holds:

    {"date": "2024-01-01", "complete": true, "half_hours": 48, "region_records": 864,
     "missing_half_hours": [], "sources": [
        {"url": ".../regional/intensity/2024-01-01T00:00Z/2024-01-14T00:00Z",
         "status": 200, "attempts": 1, "fetched_at": "2024-02-01T10:00:00.123456+00:00",
         "data": [<the API's period records for this day, unchanged and in API order>]}]}

Several sources appear when a day came from two requests (31 Dec) or when a re-fetch kept
half-hours that only an earlier fetch had.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from carbon_assets.request_plan import api_datetime, half_hours_of, parse_api_datetime
from carbon_assets.schema import FUELS, REGION_IDS

DayDocument = dict[str, Any]

_ALL_REGIONS, _ALL_FUELS = frozenset(REGION_IDS), frozenset(FUELS)


# What the pipeline reads of a record; msgspec skips every other field without building it.
class _Mix(msgspec.Struct, gc=False):
    fuel: str | None = None


class _Region(msgspec.Struct, gc=False):
    regionid: int | None = None
    generationmix: list[_Mix] | None = None


class _PeriodShape(msgspec.Struct, gc=False):
    start: str = msgspec.field(name="from")
    regions: list[_Region] | None = None


class _Response(msgspec.Struct):
    data: list[msgspec.Raw] | None = None


_PERIOD_DECODER = msgspec.json.Decoder(_PeriodShape)
_RESPONSE_DECODER = msgspec.json.Decoder(_Response)


class Period:
    """One API record (a half-hour of every region) kept as the exact JSON bytes it came in.

    Bronze stores records unchanged, so they are never turned into Python dicts: decoding
    years of them that way, only to encode them again, was most of the client's CPU and
    held the GIL while the event loop waited to send the next request. Only the start, the
    number of regions and whether every region has every fuel are decoded.
    """

    __slots__ = ("full", "raw", "regions", "start")

    def __init__(self, raw: bytes):
        """Raises ValueError when `raw` is not a period record of the API's shape."""
        try:
            shape = _PERIOD_DECODER.decode(raw)
            start = parse_api_datetime(shape.start)
        except (msgspec.DecodeError, ValueError) as error:
            raise ValueError(f"not a period record: {error}") from error
        regions = shape.regions or ()
        self.raw = bytes(raw)
        self.start: dt.datetime = start
        self.regions = len(regions)
        self.full = _ALL_REGIONS.issubset({region.regionid for region in regions}) and all(
            _ALL_FUELS.issubset({mix.fuel for mix in region.generationmix or ()}) for region in regions
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Period:
        return cls(msgspec.json.encode(record))

    def record(self) -> dict[str, Any]:
        return msgspec.json.decode(self.raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Period) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Period({api_datetime(self.start)}, {self.regions} regions{'' if self.full else ', short'})"


def periods_in_response(body: bytes) -> list[Period] | None:
    """The periods of a range answer (None when it has no data); ValueError if malformed."""
    try:
        response = _RESPONSE_DECODER.decode(body)
    except msgspec.DecodeError as error:  # includes a valid JSON of another shape
        raise ValueError(str(error)) from error
    if not response.data:  # {} or {"data": null} or {"data": []}
        return None
    return [Period(raw) for raw in response.data]


@dataclass(frozen=True)
class DayCompleteness:
    half_hours: int  # distinct half-hours with every region and fuel
    region_records: int
    missing: tuple[dt.datetime, ...]  # half-hours absent or short of regions/fuels

    @property
    def complete(self) -> bool:
        return not self.missing


def assess(day: dt.date, periods: Iterable[Period]) -> DayCompleteness:
    full: set[dt.datetime] = set()
    region_records = 0
    for period in periods:
        region_records += period.regions
        if period.full:
            full.add(period.start)
    missing = tuple(start for start in half_hours_of(day) if start not in full)
    return DayCompleteness(half_hours=48 - len(missing), region_records=region_records, missing=missing)


def day_periods(document: DayDocument) -> list[Period]:
    return [period for source in document["sources"] for period in source["data"]]


def build_document(day: dt.date, sources: list[dict[str, Any]]) -> DayDocument:
    """A day document from its sources (each {url, status, attempts, fetched_at, data}), where
    data is a list of Periods."""
    completeness = assess(day, (period for source in sources for period in source["data"]))
    return {
        "date": day.isoformat(),
        "complete": completeness.complete,
        "half_hours": completeness.half_hours,
        "region_records": completeness.region_records,
        "missing_half_hours": [api_datetime(start) for start in completeness.missing],
        "sources": sources,
    }


def merge_with_previous(new: DayDocument, previous: DayDocument | None) -> DayDocument:
    """Keep half-hours that only the previous file had: a re-fetch must never lose data.

    `previous` is the day's file as BronzeStore.read returns it (records as plain dicts).
    """
    if previous is None:
        return new
    day = dt.date.fromisoformat(new["date"])
    fetched = {period.start for period in day_periods(new) if period.full}
    kept_sources = []
    for source in previous["sources"]:
        kept = [period for period in map(Period.from_record, source["data"]) if period.start not in fetched]
        if kept:
            kept_sources.append({**source, "data": kept})
    if not kept_sources:
        return new
    return build_document(day, new["sources"] + kept_sources)
