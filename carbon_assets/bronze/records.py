"""The API's records: its datetime format, one period record (a half-hour of every region, or
of the national series), a range answer. The one place that describes the shape of what the API
sends. Pure.

Two views of a period record: `Period` (regional) and `NationalPeriod`, which bronze keeps as
the bytes they came in, with what is wrong with them, and `PeriodRecord` / `NationalRecord`,
every field that silver reads.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from carbon_assets.vocabulary import FUELS, REGION_IDS, REGIONS

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


# Physical ranges of the values silver reads (docs/api-contract.md, section 2). A record outside
# them is invalid: bronze keeps it as sent but never calls its day complete.
MAX_FORECAST = 2000  # gCO2/kWh
MAX_SHARE = 100  # % of a region's generation
MIX_TOLERANCE = 0.5  # percentage points around 100; the API's own rounding stays within 0.2
_REGION_NAMES = {regionid: shortname for regionid, _, shortname in REGIONS}
_INT32 = 2**31


class Period:
    """One API record (a half-hour of every region) kept as the exact JSON bytes it came in.

    Bronze stores records unchanged, so they are never turned into Python dicts: decoding
    years of them that way, only to encode them again, was most of the client's CPU and
    held the GIL while the event loop waited to send the next request. The record is decoded
    with the typed schema silver reads into structs that are checked and dropped: `problems`
    names every field silver could not read and every value outside its physical range.
    """

    __slots__ = ("full", "problems", "raw", "regions", "start")
    # The regional API publishes forecasts only: nothing is ever still to come.
    actual_pending = False

    def __init__(self, raw: bytes):
        """Raises ValueError only when `raw` has no readable "from" (no day can be named);
        any other fault of the record is one of its `problems`."""
        self.raw = bytes(raw)
        self.problems: tuple[str, ...] = ()
        try:  # nearly always: every value within its range, checked by msgspec as it decodes
            record: _CheckedRecord | PeriodRecord = _CHECKED_DECODER.decode(raw)
        except msgspec.DecodeError:
            try:
                record = _RECORD_DECODER.decode(raw)
            except msgspec.DecodeError as error:
                self._undecodable(error)
                return
        self.start: dt.datetime = _start(record.start)
        regions = record.regions or ()
        self.regions = len(regions)
        self.full, suspect = _survey(regions)
        if suspect or isinstance(record, PeriodRecord):
            self.problems = _value_problems(self.start, regions)

    def _undecodable(self, error: msgspec.DecodeError) -> None:
        """A record the typed schema cannot read: its problem names the field (and its region
        when the record shows it)."""
        try:
            self.start = _start(_START_DECODER.decode(self.raw).start)
        except msgspec.DecodeError as start_error:
            raise ValueError(f"not a period record: {start_error}") from start_error
        try:
            regions = _SHAPE_DECODER.decode(self.raw).regions or []
        except msgspec.DecodeError:
            regions = []
        self.regions, self.full = len(regions), False
        where = api_datetime(self.start)
        if (match := _ERROR_REGION.search(str(error))) and int(match[1]) < len(regions):
            where = _where(self.start, regions[int(match[1])].regionid)
        self.problems = (f"{where}: cannot be read as the API's record ({error})",)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Period:
        return cls(msgspec.json.encode(record))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Period) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        short = "" if self.full else ", short"
        invalid = f", {len(self.problems)} problems" if self.problems else ""
        return f"Period({api_datetime(self.start)}, {self.regions} regions{short}{invalid})"


def _start(text: str) -> dt.datetime:
    try:
        return parse_api_datetime(text)
    except ValueError as error:
        raise ValueError(f"not a period record: {error}") from error


def _survey(regions: Sequence[_CheckedRegion | RegionRecord]) -> tuple[bool, bool]:
    """(full: every region with every fuel, suspect: a mix that may not sum to 100 or names a
    fuel twice). One pass, as this runs for every region of every record fetched."""
    full, suspect = True, False
    for region in regions:
        if mix := region.generationmix:
            fuels = {share.fuel for share in mix}
            full = full and _ALL_FUELS.issubset(fuels)
            total = sum([share.perc or 0 for share in mix])
            suspect = (
                suspect
                or len(fuels) < len(mix)
                or not -MIX_TOLERANCE <= total - 100 <= MIX_TOLERANCE
            )
        else:
            full = False
    return full and _ALL_REGIONS.issubset({region.regionid for region in regions}), suspect


def _value_problems(
    start: dt.datetime, regions: Sequence[_CheckedRegion | RegionRecord]
) -> tuple[str, ...]:
    """What is outside the physical ranges in a decoded record."""
    problems: list[str] = []
    for region in regions:
        found: list[str] = []
        regionid = region.regionid
        if regionid is not None and not -_INT32 <= regionid < _INT32:
            found.append(f"regionid {_shown(regionid)} is not a region id")
        forecast = region.intensity.forecast if region.intensity else None
        if forecast is not None and not 0 <= forecast <= MAX_FORECAST:
            found.append(
                f"intensity forecast {_shown(forecast)} gCO2/kWh is outside 0-{MAX_FORECAST}"
            )
        # A fuel given twice: the last share counts, as in silver.
        shares = {
            share.fuel: share.perc for share in region.generationmix or () if share.perc is not None
        }
        outside = [
            f"{fuel} share {_shown(perc)} % is outside 0-{MAX_SHARE}"
            for fuel, perc in shares.items()
            if not 0 <= perc <= MAX_SHARE
        ]
        found += outside
        total = sum(shares.values())
        if shares and not outside and not abs(total - 100) <= MIX_TOLERANCE:
            found.append(f"fuel shares sum to {total:g} %, not 100 +/- {MIX_TOLERANCE:g}")
        if found:
            where = _where(start, regionid, region.shortname)
            problems += [f"{where}: {problem}" for problem in found]
    return tuple(problems)


def _shown(value: float) -> str:
    """A number as a problem names it: 1e+09, 2000.5, -1, 1099511627776."""
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    try:
        short = f"{value:g}"
    except OverflowError:  # an integer of hundreds of digits
        return f"{str(value)[:12]}... ({len(str(value))} digits)"
    return short if float(short) == value else repr(value)  # 2000.0000001 is not 2000


def _where(start: dt.datetime, regionid: object, shortname: object = None) -> str:
    name = shortname if isinstance(shortname, str) else _REGION_NAMES.get(regionid)  # type: ignore[call-overload]
    shown = _shown(regionid) if isinstance(regionid, int) else regionid
    return f"{api_datetime(start)} region {shown}" + (f" ({name})" if name else "")


class NationalPeriod:
    """One record of the national endpoint (a half-hour's forecast, actual and index) kept as
    the exact JSON bytes it came in, with the same attributes as `Period`.

    `full` means the forecast is there: the actual is published hours later (null until then,
    `actual_pending`), so a half-hour without it is stored and fetched again until it settles.
    """

    __slots__ = ("actual_pending", "full", "problems", "raw", "start")
    regions = 1  # one record per half-hour: what a day file counts as its records

    def __init__(self, raw: bytes):
        """Raises ValueError only when `raw` has no readable "from"."""
        self.raw = bytes(raw)
        try:
            record = _NATIONAL_DECODER.decode(raw)
        except msgspec.DecodeError as error:
            try:
                self.start = _start(_START_DECODER.decode(self.raw).start)
            except msgspec.DecodeError as start_error:
                raise ValueError(f"not a period record: {start_error}") from start_error
            self.full, self.actual_pending = False, True
            where = f"{api_datetime(self.start)} national"
            self.problems = (f"{where}: cannot be read as the API's record ({error})",)
            return
        self.start = _start(record.start)
        intensity = record.intensity or NationalIntensity()
        self.full = intensity.forecast is not None
        self.actual_pending = intensity.actual is None
        self.problems = tuple(
            f"{api_datetime(self.start)} national: intensity {name} {_shown(value)} gCO2/kWh "
            f"is outside 0-{MAX_FORECAST}"
            for name, value in (("forecast", intensity.forecast), ("actual", intensity.actual))
            if value is not None and not 0 <= value <= MAX_FORECAST
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NationalPeriod:
        return cls(msgspec.json.encode(record))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NationalPeriod) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        pending = ", actual pending" if self.actual_pending else ""
        return f"NationalPeriod({api_datetime(self.start)}{pending})"


AnyPeriod = Period | NationalPeriod


def periods_in_response(
    body: bytes, period_type: type[AnyPeriod] = Period
) -> list[AnyPeriod] | None:
    """The periods of a range answer (None when it has no data); ValueError if malformed."""
    try:
        response = _RESPONSE_DECODER.decode(body)
    except msgspec.DecodeError as error:  # includes a valid JSON of another shape
        raise ValueError(str(error)) from error
    if not response.data:  # {} or {"data": null} or {"data": []}
        return None
    return [period_type(raw) for raw in response.data]


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


class NationalIntensity(msgspec.Struct, gc=False):
    forecast: int | float | None = None
    actual: int | float | None = None  # null until the API publishes it
    index: str | None = None


class NationalRecord(msgspec.Struct, gc=False):
    start: str = msgspec.field(name="from")
    intensity: NationalIntensity | None = None


# PeriodRecord with every value bounded to its physical range, for the fast path of `Period`: a
# record that decodes with it needs no check value by value. The same fields and types as
# silver's schema above (bronze/test_validation.py compares them).
Forecast = Annotated[int, msgspec.Meta(ge=0, le=MAX_FORECAST)]
Share = Annotated[float, msgspec.Meta(ge=0, le=MAX_SHARE)]
RegionId = Annotated[int, msgspec.Meta(ge=-_INT32, lt=_INT32)]


class _CheckedShare(msgspec.Struct, gc=False):
    fuel: str
    perc: Share | None = None


class _CheckedIntensity(msgspec.Struct, gc=False):
    forecast: Forecast | Annotated[float, msgspec.Meta(ge=0, le=MAX_FORECAST)] | None = None
    index: str | None = None


class _CheckedRegion(msgspec.Struct, gc=False):
    regionid: RegionId | None = None
    dnoregion: str | None = None
    shortname: str | None = None
    intensity: _CheckedIntensity | None = None
    generationmix: list[_CheckedShare] | None = None


class _CheckedRecord(msgspec.Struct, gc=False):
    start: str = msgspec.field(name="from")
    regions: list[_CheckedRegion] | None = None


# What a record the typed schema cannot read still shows: its start, and its regions to name
# the one at fault.
class _Start(msgspec.Struct, gc=False):
    start: str = msgspec.field(name="from")


class _Region(msgspec.Struct, gc=False):
    regionid: object = None


class _PeriodShape(msgspec.Struct, gc=False):
    regions: list[_Region] | None = None


class _Response(msgspec.Struct):
    data: list[msgspec.Raw] | None = None


_CHECKED_DECODER = msgspec.json.Decoder(_CheckedRecord)
_RECORD_DECODER = msgspec.json.Decoder(PeriodRecord)
_START_DECODER = msgspec.json.Decoder(_Start)
_NATIONAL_DECODER = msgspec.json.Decoder(NationalRecord)
_SHAPE_DECODER = msgspec.json.Decoder(_PeriodShape)
_RESPONSE_DECODER = msgspec.json.Decoder(_Response)
_ERROR_REGION = re.compile(r"\$\.regions\[(\d+)\]")
