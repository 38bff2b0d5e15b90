"""Silver rows of the national series from one bronze day file, as an Arrow table. Pure Python,
no Dagster, no Spark (Spark's Python workers call `national_rows_of_file`, as for regional
silver in rows.py, whose file rules these are).
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib

import msgspec
import pyarrow as pa

from carbon_assets.bronze.day_files import NationalDayRecords
from carbon_assets.bronze.records import NationalIntensity
from carbon_assets.silver.rows import (
    DAY,
    EPOCH,
    HALF_HOUR_MICROS,
    MICROSECOND,
    UTC,
    InvalidHalfHour,
    another_shape_error,
    arrow_array,
    damaged_file_error,
    invalid_day_error,
    utc_micros,
    whole_number,
)
from carbon_assets.storage import read_file

NATIONAL_SILVER_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("date_recorded", pa.date32()),
        ("intensity_forecast", pa.int32()),
        ("intensity_actual", pa.int32()),  # NULL while the API has not published it
        ("intensity_index", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)


class NationalSilverDay(NationalDayRecords, gc=False):
    invalid_half_hours: list[InvalidHalfHour] | None = None


_DECODER = msgspec.json.Decoder(NationalSilverDay)


def national_silver_rows(content: bytes, name: str = "bronze file") -> pa.Table:
    """One row per half-hour starting on the file's date, on the half-hour grid.

    A half-hour fetched more than once keeps its latest fetch (then the later source, then the
    later record), as in regional silver. Raises BronzeFileError, as regional
    silver does, for a file that is not a bronze day document or that bronze marked invalid.
    """
    try:
        text = gzip.decompress(content)
    except (OSError, EOFError, zlib.error) as error:
        raise damaged_file_error(name, f"not gzip ({error})") from None
    try:
        day = _DECODER.decode(text)
    except msgspec.ValidationError as error:
        raise another_shape_error(name, str(error)) from None
    except msgspec.DecodeError as error:
        raise damaged_file_error(name, f"not JSON ({error})") from None
    if day.invalid_half_hours:
        raise invalid_day_error(name, day.date, day.invalid_half_hours)
    try:
        file_date = dt.date.fromisoformat(day.date)
        return _table(file_date, _latest(day, file_date))
    except (ValueError, TypeError) as error:
        raise another_shape_error(name, str(error)) from None


def _latest(
    day: NationalSilverDay, file_date: dt.date
) -> dict[int, tuple[int | None, NationalIntensity]]:
    """{half-hour start: (fetched_at, intensity)}, in micros, in order of start."""
    first = (dt.datetime.combine(file_date, dt.time(), UTC) - EPOCH) // MICROSECOND
    last = first + DAY // MICROSECOND
    chosen: dict[int, tuple[tuple, int | None, NationalIntensity]] = {}
    for source_position, source in enumerate(day.sources or ()):
        fetched_at = utc_micros(source.fetched_at) if source.fetched_at else None
        for record_position, record in enumerate(source.data or ()):
            start = utc_micros(record.start)
            if not first <= start < last or start % HALF_HOUR_MICROS:
                continue
            rank = (fetched_at is not None, fetched_at or 0, source_position, record_position)
            if start not in chosen or rank >= chosen[start][0]:
                chosen[start] = (rank, fetched_at, record.intensity or NationalIntensity())
    return {
        start: (fetched, intensity) for start, (_, fetched, intensity) in sorted(chosen.items())
    }


def _table(file_date: dt.date, latest: dict[int, tuple[int | None, NationalIntensity]]) -> pa.Table:
    intensities = [intensity for _, intensity in latest.values()]
    columns = {
        "timestamp": list(latest),
        "date_recorded": [file_date] * len(latest),
        "intensity_forecast": [whole_number(i.forecast) for i in intensities],
        "intensity_actual": [whole_number(i.actual) for i in intensities],
        "intensity_index": [i.index for i in intensities],
        "fetched_at": [fetched for fetched, _ in latest.values()],
    }
    arrays = [arrow_array(columns[field.name], field.type) for field in NATIONAL_SILVER_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=NATIONAL_SILVER_SCHEMA)


def national_rows_of_file(path: str) -> pa.Table:
    """The national silver rows of the bronze day file at `path` (Spark's workers call this)."""
    return national_silver_rows(read_file(path), path)
