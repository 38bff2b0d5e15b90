"""The API's records: its datetime format, one period record (a half-hour of every region), a
range answer. The one place that describes the shape of what the API sends. Pure.

Two views of a period record: `Period`, which bronze keeps as the bytes it came in and decodes
only the little it checks, and `PeriodRecord`, every field that silver reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from carbon_assets.grid import FUELS, REGION_IDS

UTC = dt.UTC
_ALL_REGIONS, _ALL_FUELS = frozenset(REGION_IDS), frozenset(FUELS)


def api_datetime(moment: dt.datetime) -> str:
    """The API's datetime format, e.g. 2024-01-01T00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def parse_api_datetime(text: str) -> dt.datetime:
    """Parse 2024-01-01T00:00Z (fromisoformat reads the Z since Python 3.11, far faster than
    strptime)."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"datetime without a zone: {text!r}")
    return moment.astimezone(UTC)


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
            _ALL_FUELS.issubset({mix.fuel for mix in region.generationmix or ()})
            for region in regions
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Period:
        return cls(msgspec.json.encode(record))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Period) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        short = "" if self.full else ", short"
        return f"Period({api_datetime(self.start)}, {self.regions} regions{short})"


def periods_in_response(body: bytes) -> list[Period] | None:
    """The periods of a range answer (None when it has no data); ValueError if malformed."""
    try:
        response = _RESPONSE_DECODER.decode(body)
    except msgspec.DecodeError as error:  # includes a valid JSON of another shape
        raise ValueError(str(error)) from error
    if not response.data:  # {} or {"data": null} or {"data": []}
        return None
    return [Period(raw) for raw in response.data]


# Every field of a period record that silver reads. Fields not named here are skipped by the
# decoder; a field of another type is an error.
class FuelShare(msgspec.Struct, gc=False):
    fuel: str  # a share without a fuel name cannot be kept anywhere: the record is rejected
    perc: float | None = None


class Intensity(msgspec.Struct, gc=False):
    # Whole numbers stay ints (a plain `float` would convert them); a fraction is rounded half-up.
    forecast: int | float | None = None
    index: str | None = None


class RegionRecord(msgspec.Struct, gc=False):
    regionid: int | None = None
    dnoregion: str | None = None
    shortname: str | None = None
    intensity: Intensity | None = None
    generationmix: list[FuelShare] | None = None


class PeriodRecord(msgspec.Struct, gc=False):
    start: str = msgspec.field(name="from")
    regions: list[RegionRecord] | None = None
