"""Warehouse: gold's daily rows and silver's half-hourly rows in PostgreSQL (carbon_data), for
the regions and for the national series."""

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    FreshnessPolicy,
    MetadataValue,
    asset,
)

from carbon_assets.columns import sql_table_schema
from carbon_assets.gold.national import NATIONAL_GOLD_COLUMNS
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.lake import LakeResource
from carbon_assets.lake_files import input_digests, read_day_file
from carbon_assets.lake_source import read_lake_source
from carbon_assets.partitions import DERIVED_DAILY_ASSET
from carbon_assets.warehouse.charts import (
    as_markdown_image,
    gb_fuel_mix,
    intensity_heatmap,
    national_forecast_vs_actual,
)
from carbon_assets.warehouse.load import FetchSource, Pictures, SourcedRows
from carbon_assets.warehouse.tables import (
    DAILY,
    HALF_HOURLY,
    NATIONAL_DAILY,
    NATIONAL_HALF_HOURLY,
    WarehouseTable,
)

WAREHOUSE_TABLE = DAILY.qualified
FRESH_FOR = dt.timedelta(hours=6)
# Silver day files are read and loaded this many at a time: memory stays flat over years.
DAYS_PER_CHUNK = 31
SILVER_TO_HALF_HOURLY = {"timestamp": "period_start"}
SILVER_COLUMN_OF = {table: silver for silver, table in SILVER_TO_HALF_HOURLY.items()}
# What the warehouse assets share: the daily layers' arguments, and the warehouse IO manager.
WAREHOUSE_ASSET = {
    **DERIVED_DAILY_ASSET,
    "io_manager_key": "warehouse_io_manager",
    "kinds": {"postgres"},
}
PREVIEW_COLUMNS = ["regionid", "shortname", "intensity_avg", "index_mode", "fuel_gas", "fuel_wind"]


def lake_fetch_source(context: AssetExecutionContext, lake: LakeResource) -> FetchSource:
    """The API the lake was filled from (its source.json), or "unknown" when the lake does not
    say: the rows are loaded and say so rather than fail or guess."""
    recorded = read_lake_source(lake.storage)
    if recorded is None:
        context.log.warning(f"{lake.url} records no source: its rows are loaded as unknown")
        source = FetchSource.unknown()
    else:
        source = FetchSource(recorded.api_base_url, recorded.emulator)
    context.add_output_metadata({"source": MetadataValue.text(str(source))})
    return source


@asset(
    **WAREHOUSE_ASSET,
    metadata={
        "dagster/table_name": DAILY.qualified,
        "dagster/column_schema": sql_table_schema(DAILY.name, DAILY.key),
    },
    # The daily refresh runs at 00:30 UTC: a warehouse not loaded by 06:00 shows as overdue.
    freshness_policy=FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=FRESH_FOR),
)
def carbon_intensity_daily(
    context: AssetExecutionContext, lake: LakeResource, gold_carbon_intensity_daily: pd.DataFrame
) -> SourcedRows:
    """Daily carbon intensity per region in PostgreSQL: carbon_data.carbon_intensity_daily.

    One row per (regionid, date_recorded), the primary key, with gold's averages as
    DECIMAL(10,2) (time averages of the half-hourly forecasts and shares of the UTC day), the
    day's latest fetch (fetched_at) and the API it came from (source_id, see
    carbon_data.fetch_source). A load replaces its range in one transaction: new rows are
    inserted, changed rows updated, identical rows left alone, rows gold no longer has deleted;
    the counts show in the materialization's metadata. Each load that changes the table also
    records an observation of the range's last day with a preview of that day's rows and two
    charts of the range (intensity by region and day, the GB generation mix); a range loaded
    again as it was keeps the last ones.
    """
    # Gold day files written before gold had fetched_at have no such column: NULL.
    rows = gold_carbon_intensity_daily.reindex(columns=list(GOLD_COLUMNS))
    context.log.info(f"Loading {len(rows):,} gold rows into {WAREHOUSE_TABLE}")
    rows = rows.sort_values(["date_recorded", "regionid"], ignore_index=True)
    return SourcedRows(
        rows,
        lake_fetch_source(context, lake),
        digests_of_days(rows),
        pictures_on_last_day(rows, pictures),
    )


def digests_of_days(rows: pd.DataFrame) -> dict[dt.date, str]:
    """A digest of each day's rows (columns, values and types): what the day was loaded from."""
    types = hashlib.sha256(",".join(map(str, rows.dtypes.items())).encode())
    # Rows hash one by one, so the whole range is hashed at once and then split by day.
    row_hashes = pd.Series(pd.util.hash_pandas_object(rows, index=False).to_numpy())
    digests = {}
    for day, day_hashes in row_hashes.groupby(rows["date_recorded"].to_numpy(), sort=False):
        digest = types.copy()
        digest.update(day_hashes.to_numpy().tobytes())
        digests[pd.Timestamp(day).date()] = digest.hexdigest()
    return digests


def digests_of_files(day_files: Mapping[str, str]) -> dict[dt.date, str]:
    """The SHA-256 of each day's lake file ({date: file})."""
    return input_digests({dt.date.fromisoformat(day): path for day, path in day_files.items()})


def pictures_on_last_day(
    rows: pd.DataFrame, draw: Callable[[pd.DataFrame], dict[str, MetadataValue]]
) -> Pictures | None:
    """A daily load's pictures of its rows, recorded on the range's last day (none without
    rows); drawn only if the load changes the table."""
    if rows.empty:
        return None
    return Pictures(str(rows["date_recorded"].max()), lambda: draw(rows))


def pictures(daily: pd.DataFrame) -> dict[str, MetadataValue]:
    """The latest day's rows and the range's two charts, as UI metadata."""
    latest = daily[daily["date_recorded"] == daily["date_recorded"].max()]
    preview = latest[PREVIEW_COLUMNS].astype({"intensity_avg": float, "fuel_gas": float})
    return {
        "latest_day": MetadataValue.text(str(latest["date_recorded"].iloc[0])),
        "preview": MetadataValue.md(preview.to_markdown(index=False, floatfmt=".2f")),
        "intensity_heatmap": MetadataValue.md(
            as_markdown_image(intensity_heatmap(daily), "Carbon intensity by region and day")
        ),
        "gb_fuel_mix": MetadataValue.md(
            as_markdown_image(gb_fuel_mix(daily), "GB generation mix by day")
        ),
    }


def national_pictures(national_daily: pd.DataFrame) -> dict[str, MetadataValue]:
    """The range's national forecast against its actual, as UI metadata."""
    chart = national_forecast_vs_actual(national_daily)
    return {
        "forecast_vs_actual": MetadataValue.md(
            as_markdown_image(chart, "National forecast vs actual by day")
        )
    }


class SilverDays:
    """A half-hourly table's rows from silver day files, read DAYS_PER_CHUNK days at a time
    as the warehouse IO manager iterates (an iterable, not an iterator: Dagster would take a
    generator returned by an asset for its events)."""

    def __init__(self, day_files: Mapping[str, str], table: WarehouseTable = HALF_HOURLY):
        self.day_files, self.table = day_files, table

    def __iter__(self) -> Iterator[pd.DataFrame]:
        # Silver keeps the day in its folder name, not in the file.
        silver_columns = [
            SILVER_COLUMN_OF.get(c, c) for c in self.table.input_columns if c != "date_recorded"
        ]
        days = sorted(self.day_files)
        for start in range(0, len(days), DAYS_PER_CHUNK):
            chunk = days[start : start + DAYS_PER_CHUNK]
            tables = [read_day_file(self.day_files[day], columns=silver_columns) for day in chunk]
            # One conversion to pandas per chunk, not per day.
            rows = pa.concat_tables(tables, promote_options="default").to_pandas()
            rows["date_recorded"] = np.repeat(
                np.array(chunk, dtype="datetime64[D]"), [len(table) for table in tables]
            )
            yield rows.rename(columns=SILVER_TO_HALF_HOURLY)


@asset(
    **WAREHOUSE_ASSET,
    metadata={
        "dagster/table_name": HALF_HOURLY.qualified,
        "dagster/column_schema": sql_table_schema(HALF_HOURLY.name, HALF_HOURLY.key),
    },
)
def carbon_intensity_halfhourly(
    context: AssetExecutionContext, lake: LakeResource, silver_carbon_intensity: dict[str, str]
) -> SourcedRows:
    """Half-hourly carbon intensity per region in PostgreSQL: carbon_intensity_halfhourly.

    One row per (regionid, period_start), the primary key, with the forecast (the regional API
    publishes no actuals), the index and the nine fuel shares exactly as the API sent them
    (NUMERIC, no binary floating point), when that answer was fetched (fetched_at) and the API
    it came from (source_id): what diurnal and load-shifting studies need. Loaded from silver's
    day files a month at a time, with the same idempotent, range-replacing, counted load as
    the daily table.
    """
    context.log.info(
        f"Loading {len(silver_carbon_intensity):,} silver days into {HALF_HOURLY.qualified}"
    )
    return SourcedRows(
        SilverDays(silver_carbon_intensity),
        lake_fetch_source(context, lake),
        digests_of_files(silver_carbon_intensity),
    )


@asset(
    **WAREHOUSE_ASSET,
    metadata={
        "dagster/table_name": NATIONAL_HALF_HOURLY.qualified,
        "dagster/column_schema": sql_table_schema(
            NATIONAL_HALF_HOURLY.name, NATIONAL_HALF_HOURLY.key
        ),
    },
)
def carbon_intensity_national_halfhourly(
    context: AssetExecutionContext, lake: LakeResource, silver_national_intensity: dict[str, str]
) -> SourcedRows:
    """National carbon intensity per half-hour in PostgreSQL, forecast and actual:
    carbon_data.carbon_intensity_national_halfhourly.

    One row per period_start (the primary key) with the forecast, the actual (NULL until the
    API publishes it; a later load fills it in), the index and forecast_error (forecast -
    actual, a generated column), loaded from national silver with the same idempotent,
    range-replacing, counted load as the regional tables.
    """
    context.log.info(
        f"Loading {len(silver_national_intensity):,} national silver days into "
        f"{NATIONAL_HALF_HOURLY.qualified}"
    )
    rows = SilverDays(silver_national_intensity, NATIONAL_HALF_HOURLY)
    digests = digests_of_files(silver_national_intensity)
    return SourcedRows(rows, lake_fetch_source(context, lake), digests)


@asset(
    **WAREHOUSE_ASSET,
    metadata={
        "dagster/table_name": NATIONAL_DAILY.qualified,
        "dagster/column_schema": sql_table_schema(NATIONAL_DAILY.name, NATIONAL_DAILY.key),
    },
)
def carbon_intensity_national_daily(
    context: AssetExecutionContext, lake: LakeResource, gold_national_daily: pd.DataFrame
) -> SourcedRows:
    """National carbon intensity and forecast accuracy per UTC day in PostgreSQL:
    carbon_data.carbon_intensity_national_daily.

    One row per date_recorded (the primary key): forecast_avg, actual_avg, mean_absolute_error
    and bias (forecast - actual) as DECIMAL(10,2), half_hours and actual_half_hours (equal once
    the day's actuals are all in), loaded like the regional daily table. Each load that changes
    the table records an observation of the range's last day with a chart of the range's
    forecast against its actual.
    """
    rows = gold_national_daily.reindex(columns=list(NATIONAL_GOLD_COLUMNS))
    rows = rows.sort_values("date_recorded", ignore_index=True)
    context.log.info(f"Loading {len(rows):,} national gold rows into {NATIONAL_DAILY.qualified}")
    return SourcedRows(
        rows,
        lake_fetch_source(context, lake),
        digests_of_days(rows),
        pictures_on_last_day(rows, national_pictures),
    )
