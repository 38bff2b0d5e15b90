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
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from carbon_assets.request_plan import api_datetime, half_hours_of, parse_api_datetime
from carbon_assets.schema import FUELS, REGION_IDS

DayDocument = dict[str, Any]
PeriodRecord = dict[str, Any]


def period_start(record: PeriodRecord) -> dt.datetime:
    return parse_api_datetime(record["from"])


_ALL_REGIONS, _ALL_FUELS = frozenset(REGION_IDS), frozenset(FUELS)
# C-level getters: this runs for every region of every half-hour of years of data.
_regionid_of, _fuel_of = operator.methodcaller("get", "regionid"), operator.methodcaller("get", "fuel")


def is_full_period(record: PeriodRecord) -> bool:
    """A half-hour with all 18 regions, each with all 9 fuels."""
    regions = record.get("regions") or ()
    if not _ALL_REGIONS.issubset(map(_regionid_of, regions)):
        return False
    for region in regions:
        if not _ALL_FUELS.issubset(map(_fuel_of, region.get("generationmix") or ())):
            return False
    return True


@dataclass(frozen=True)
class DayCompleteness:
    half_hours: int  # distinct half-hours with every region and fuel
    region_records: int
    missing: tuple[dt.datetime, ...]  # half-hours absent or short of regions/fuels

    @property
    def complete(self) -> bool:
        return not self.missing


def assess(day: dt.date, records: Iterable[PeriodRecord]) -> DayCompleteness:
    full: set[dt.datetime] = set()
    region_records = 0
    for record in records:
        region_records += len(record.get("regions") or [])
        if is_full_period(record):
            full.add(period_start(record))
    missing = tuple(start for start in half_hours_of(day) if start not in full)
    return DayCompleteness(half_hours=48 - len(missing), region_records=region_records, missing=missing)


def day_records(document: DayDocument) -> list[PeriodRecord]:
    return [record for source in document["sources"] for record in source["data"]]


def build_document(day: dt.date, sources: list[dict[str, Any]]) -> DayDocument:
    """A day document from its sources (each {url, status, attempts, fetched_at, data})."""
    completeness = assess(day, (record for source in sources for record in source["data"]))
    return {
        "date": day.isoformat(),
        "complete": completeness.complete,
        "half_hours": completeness.half_hours,
        "region_records": completeness.region_records,
        "missing_half_hours": [api_datetime(start) for start in completeness.missing],
        "sources": sources,
    }


def merge_with_previous(new: DayDocument, previous: DayDocument | None) -> DayDocument:
    """Keep half-hours that only the previous file had: a re-fetch must never lose data."""
    if previous is None:
        return new
    day = dt.date.fromisoformat(new["date"])
    fetched = {period_start(r) for r in day_records(new) if is_full_period(r)}
    kept_sources = []
    for source in previous["sources"]:
        kept = [r for r in source["data"] if period_start(r) not in fetched]
        if kept:
            kept_sources.append({**source, "data": kept})
    if not kept_sources:
        return new
    return build_document(day, new["sources"] + kept_sources)
