"""Silver rows from one bronze day file, as an Arrow table. Pure Python, no Dagster, no Spark.

Spark runs this inside its Python workers (silver/assets.py): each task gets the paths of some
bronze files and sends back their rows. Parsing the nested JSON here, with msgspec and the
typed record shapes of bronze/records.py as the explicit schema, costs half of what Spark's
JSON reader and its explode-and-lookup plan cost in a JVM that has not warmed up
(docs/performance.md), and a day's rows are deduplicated without a shuffle because every
version of a day's half-hours sits in that day's file.

This module is imported by every Python worker, so it imports nothing heavy.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import zlib
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import msgspec
import pyarrow as pa

from carbon_assets.bronze.day_files import DayRecords
from carbon_assets.bronze.records import FuelShare, Intensity, RegionRecord, parse_api_datetime
from carbon_assets.gc_pause import paused_gc
from carbon_assets.storage import read_file
from carbon_assets.vocabulary import FUELS

UTC = dt.UTC
KNOWN_FUELS = frozenset(FUELS)

SILVER_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("date_recorded", pa.date32()),
        ("regionid", pa.int32()),
        ("shortname", pa.string()),
        ("dno", pa.string()),
        ("intensity_forecast", pa.int32()),
        ("intensity_index", pa.string()),
        *((f"fuel_{fuel}", pa.float64()) for fuel in FUELS),
        # Schema drift is kept, never dropped: fuels beyond the nine, and the nine's absentees.
        # NULL when there are none (nearly always).
        ("extra_fuels", pa.map_(pa.string(), pa.float64())),
        ("missing_fuels", pa.list_(pa.string())),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        # How many different versions of this (regionid, half-hour) the bronze file held (the
        # latest fetch's won); NULL when it came once or every copy agreed.
        ("conflicting_versions", pa.int32()),
    ]
)
SILVER_COLUMNS: tuple[str, ...] = tuple(SILVER_SCHEMA.names)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = dt.timedelta(microseconds=1)
DAY = dt.timedelta(days=1)
HALF_HOUR_MICROS = dt.timedelta(minutes=30) // MICROSECOND  # the epoch is on the grid


# The winning version of one (regionid, half-hour): (start, fetched_at, region), the times in
# microseconds since the epoch. Plain tuples: there is one per silver row.
Version = tuple[int, int | None, RegionRecord]


class BronzeFileError(ValueError):
    """A bronze day file silver cannot read, or must not: the message names the file, what is
    wrong and the command that repairs it."""


class InvalidHalfHour(msgspec.Struct, gc=False):
    """One half-hour bronze found values out of range in (contract: bronze/day_files.py)."""

    start: str = ""
    problems: list[str] = []


class SilverDay(DayRecords, gc=False):
    """A day document as silver reads it: the records, and the half-hours bronze marked
    invalid (absent or empty when none)."""

    invalid_half_hours: list[InvalidHalfHour] | None = None


_SILVER_DAY_DECODER = msgspec.json.Decoder(SilverDay)
_FILE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})\.json\.gz$")
SHOWN_PROBLEMS = 3


def fetch_again(name: str, day: str | None = None) -> str:
    """The command that fetches the day of bronze file `name` again."""
    day = day or (found[1] if (found := _FILE_DATE.search(name)) else "DAY")
    return f"carbon-assets backfill {day} {day}"


def invalid_day_error(name: str, day: str, invalid: list[InvalidHalfHour]) -> BronzeFileError:
    problems = [problem for half_hour in invalid for problem in half_hour.problems]
    shown = "; ".join(problems[:SHOWN_PROBLEMS]) or ", ".join(h.start for h in invalid)
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    return BronzeFileError(
        f"{name}: bronze marked {len(invalid)} half-hour(s) of {day} invalid, so silver does "
        f"not read the day; run `{fetch_again(name, day)}` once the API has corrected it "
        f"(bronze fetches an invalid day again on every run that covers it): {shown}{more}"
    )


def utc_micros(text: str) -> int:
    """Microseconds since the epoch (UTC), as Arrow stores timestamps."""
    return (parse_api_datetime(text) - EPOCH) // MICROSECOND


def whole_number(forecast: int | float | None) -> int | None:  # noqa: PYI041
    if forecast is None or isinstance(forecast, int):
        return forecast
    return int(Decimal(forecast).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def silver_rows(content: bytes, name: str = "bronze file") -> pa.Table:
    """The silver rows of one gzip bronze day document: one per (regionid, half-hour).

    Only half-hours that start on the file's date are kept (a source may reach into the next
    day), and only records that start on the half-hour grid (a record the API sent at 09:15 is
    no half-hour: it stays in bronze, where bronze_records_on_half_hour_grid names it). When
    the file holds a (regionid, half-hour) more than once (a re-fetch kept beside an
    earlier one, or the API repeating a period with other values), the latest fetch wins
    (a source without fetched_at loses to any with one), then the later source in the file,
    then the later record within the source, then the later region entry within the record.
    `conflicting_versions` counts the different versions when the copies disagree, so that the
    API's conflicting answers are recorded, not silently resolved.

    Raises BronzeFileError, naming `name`, the problem and the command that repairs it, when
    the bytes are not such a document or bronze marked half-hours of the day invalid (values
    out of physical range: silver is the second line of defence, bronze the first).
    """
    try:
        with paused_gc():
            try:
                text = gzip.decompress(content)
            except (OSError, EOFError, zlib.error) as error:
                raise damaged_file_error(name, f"not gzip ({error})") from None
            try:
                day = _SILVER_DAY_DECODER.decode(text)
            except msgspec.ValidationError as error:  # JSON, but not of the day file's shape
                raise another_shape_error(name, str(error)) from None
            except msgspec.DecodeError as error:
                raise damaged_file_error(name, f"not JSON ({error})") from None
            if day.invalid_half_hours:
                raise invalid_day_error(name, day.date, day.invalid_half_hours)
            file_date = dt.date.fromisoformat(day.date)
            return _table(file_date, *_latest_versions(day, file_date))
    except BronzeFileError:
        raise
    except (ValueError, TypeError) as error:
        raise another_shape_error(name, str(error)) from None


def damaged_file_error(name: str, problem: str) -> BronzeFileError:
    return BronzeFileError(
        f"{name} is not a bronze day document: {problem}. Run `{fetch_again(name)}`: bronze "
        "sets a damaged day file aside (bronze/_damaged/) and fetches the day again"
    )


def another_shape_error(name: str, problem: str) -> BronzeFileError:
    return BronzeFileError(
        f"{name} is not a bronze day document: {problem}. Move the file into bronze/_damaged/ "
        f"and run `{fetch_again(name)}`: bronze fetches a day that has no file"
    )


def _latest_versions(
    day: DayRecords, file_date: dt.date
) -> tuple[list[Version], list[int | None] | None]:
    """The version of each (regionid, half-hour) that wins and, for each, how many different
    versions the file held of it when more than one (None instead of the list when no
    (regionid, half-hour) came twice)."""
    first_micros = (dt.datetime.combine(file_date, dt.time(), UTC) - EPOCH) // MICROSECOND
    last_micros = first_micros + DAY // MICROSECOND
    chosen: dict[tuple[int | None, int], tuple] = {}
    # Only for the (rare) keys seen more than once: their distinct versions.
    seen: dict[tuple[int | None, int], list[RegionRecord]] = {}
    for source_position, source in enumerate(day.sources or ()):
        fetched_at = utc_micros(source.fetched_at) if source.fetched_at else None
        for record_position, period in enumerate(source.data or ()):
            start = utc_micros(period.start)
            if not first_micros <= start < last_micros or start % HALF_HOUR_MICROS:
                continue
            rank = (fetched_at is not None, fetched_at or 0, source_position, record_position)
            for region in period.regions or ():
                key = (region.regionid, start)
                kept = chosen.get(key)
                if kept is not None:
                    versions = seen.setdefault(key, [kept[3]])
                    if region not in versions:  # the same values again are no conflict
                        versions.append(region)
                if kept is None or rank >= kept[0]:
                    chosen[key] = (rank, start, fetched_at, region)
    winners = [version[1:] for version in chosen.values()]
    if not seen:  # nearly always
        return winners, None
    distinct = [len(seen.get(key, ())) for key in chosen]
    return winners, [count if count > 1 else None for count in distinct]


def _table(
    file_date: dt.date, versions: list[Version], conflicting: list[int | None] | None
) -> pa.Table:
    regions = [region for _, _, region in versions]
    intensities = [region.intensity or Intensity() for region in regions]
    columns = {
        "timestamp": [start for start, _, _ in versions],
        "date_recorded": [file_date] * len(regions),
        "regionid": [region.regionid for region in regions],
        "shortname": [region.shortname for region in regions],
        "dno": [region.dnoregion for region in regions],
        "intensity_forecast": [whole_number(intensity.forecast) for intensity in intensities],
        "intensity_index": [intensity.index for intensity in intensities],
        **_fuel_columns([region.generationmix or () for region in regions]),
        "fetched_at": [fetched_at for _, fetched_at, _ in versions],
        "conflicting_versions": conflicting or [None] * len(versions),
    }
    arrays = [arrow_array(columns[field.name], field.type) for field in SILVER_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SILVER_SCHEMA)


def arrow_array(values: list, arrow_type: pa.DataType) -> pa.Array:
    """Arrow checks types and ranges here (a regionid beyond int32 is an error, not a wrap)."""
    # From int64 microseconds: much faster than converting zone-aware datetimes.
    if pa.types.is_timestamp(arrow_type):
        return pa.array(values, type=pa.int64()).view(arrow_type)
    return pa.array(values, type=arrow_type)


def _fuel_columns(mixes: list[Sequence[FuelShare]]) -> dict[str, list]:
    """fuel_* shares, plus extra_fuels and missing_fuels (NULL when the mix is the nine)."""
    if all(tuple([entry.fuel for entry in mix]) == FUELS for mix in mixes):  # nearly always
        return {
            **{f"fuel_{fuel}": [mix[i].perc for mix in mixes] for i, fuel in enumerate(FUELS)},
            "extra_fuels": [None] * len(mixes),
            "missing_fuels": [None] * len(mixes),
        }
    # A fuel given twice in one mix: the last share wins.
    by_fuel = [{entry.fuel: entry.perc for entry in mix} for mix in mixes]
    return {
        **{f"fuel_{fuel}": [shares.get(fuel) for shares in by_fuel] for fuel in FUELS},
        "extra_fuels": [
            [(fuel, perc) for fuel, perc in shares.items() if fuel not in KNOWN_FUELS] or None
            for shares in by_fuel
        ],
        "missing_fuels": [[f for f in FUELS if f not in shares] or None for shares in by_fuel],
    }


def silver_rows_of_file(path: str) -> pa.Table:
    """The silver rows of the bronze day file at `path` (Spark's workers call this)."""
    return silver_rows(read_file(path), path)
