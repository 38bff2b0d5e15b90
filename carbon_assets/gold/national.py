"""Gold's national row of one day, from that day's national silver file. Pure Python and Arrow,
no Dagster, no Spark (Spark's workers call `national_daily_rows_of_file`, as for regional gold).

Means are exact (the API sends whole gCO2/kWh) and rounded half away from zero to the cent, as
regional gold's are. The forecast error of a half-hour is forecast - actual: positive when the
forecast was too high.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from carbon_assets.gold.rows import MONEY, SCALE, date_of_day_file, index_mode, mean_to_the_cent
from carbon_assets.lake_files import read_day_file
from carbon_assets.vocabulary import MAX_INTENSITY

NATIONAL_SILVER_INPUT = (
    "timestamp",
    "intensity_forecast",
    "intensity_actual",
    "intensity_index",
    "fetched_at",
)
NATIONAL_GOLD_SCHEMA = pa.schema(
    [
        ("date_recorded", pa.date32()),
        ("forecast_avg", MONEY),
        ("actual_avg", MONEY),
        ("mean_absolute_error", MONEY),
        ("bias", MONEY),
        ("index_mode", pa.string()),
        ("half_hours", pa.int32()),
        ("actual_half_hours", pa.int32()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)
NATIONAL_GOLD_COLUMNS: tuple[str, ...] = tuple(NATIONAL_GOLD_SCHEMA.names)


def national_daily_row(silver_day: pa.Table, date: dt.date) -> pa.Table:
    """The day's one row (none for a day without half-hours).

    forecast_avg is over the half-hours with a forecast; actual_avg, mean_absolute_error and
    bias over those with both; half_hours counts the half-hours, actual_half_hours those with
    an actual. ValueError, naming the half-hour, for a value outside 0-MAX_INTENSITY.
    """
    rows = silver_day.select(list(NATIONAL_SILVER_INPUT)).to_pylist()
    if not rows:
        return NATIONAL_GOLD_SCHEMA.empty_table()
    for row in rows:
        for column in ("intensity_forecast", "intensity_actual"):
            value = row[column]
            if value is not None and not 0 <= value <= MAX_INTENSITY:
                start = row["timestamp"].strftime("%Y-%m-%dT%H:%MZ")
                raise ValueError(
                    f"national silver of {date} holds {column} {value} at {start}, outside "
                    f"0-{MAX_INTENSITY}: gold is not built from it (run `carbon-assets backfill "
                    f"{date} {date}` once the API has corrected the day)"
                )
    forecasts = [row["intensity_forecast"] for row in rows if row["intensity_forecast"] is not None]
    pairs = [
        (row["intensity_forecast"], row["intensity_actual"])
        for row in rows
        if row["intensity_forecast"] is not None and row["intensity_actual"] is not None
    ]
    actuals = [row["intensity_actual"] for row in rows if row["intensity_actual"] is not None]
    labels: dict[str, int] = {}
    for row in rows:
        if (label := row["intensity_index"]) is not None:
            labels[label] = labels.get(label, 0) + 1
    row = {
        "date_recorded": date,
        "forecast_avg": mean_to_the_cent(SCALE * sum(forecasts), len(forecasts)),
        "actual_avg": mean_to_the_cent(SCALE * sum(actuals), len(actuals)),
        "mean_absolute_error": mean_to_the_cent(
            SCALE * sum(abs(f - a) for f, a in pairs), len(pairs)
        ),
        "bias": mean_to_the_cent(SCALE * sum(f - a for f, a in pairs), len(pairs)),
        "index_mode": index_mode(labels),
        "half_hours": len(rows),
        "actual_half_hours": len(actuals),
        "fetched_at": max((r["fetched_at"] for r in rows if r["fetched_at"]), default=None),
    }
    return pa.Table.from_pylist([row], schema=NATIONAL_GOLD_SCHEMA)


def national_daily_rows_of_file(path: str) -> pa.Table:
    """The national gold row of the silver day file at `path` (Spark's workers call this)."""
    silver_day = read_day_file(path, columns=NATIONAL_SILVER_INPUT)
    return national_daily_row(silver_day, date_of_day_file(path))
