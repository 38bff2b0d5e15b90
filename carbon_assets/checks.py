"""Asset checks: per layer, is the data complete, unique and sane?

Checks run in the same run as their asset and on their own from the UI. In a run over a
partition range they look at that range; run alone they look at the whole asset. Each result
names the failing dates in its metadata. The check computations are pure functions of a
DataFrame (or of bronze documents) so they are tested without Dagster.
"""


import datetime as dt
from collections.abc import Iterable

import pandas as pd
import sqlalchemy
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from carbon_assets.bronze import bronze_carbon_intensity
from carbon_assets.gold import gold_carbon_intensity_daily
from carbon_assets.io_managers.spark_parquet import read_parquet_table
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import partition_dates
from carbon_assets.resources import WarehouseDatabase
from carbon_assets.schema import FUEL_COLUMNS, HALF_HOURS_PER_DAY, INDEX_LABELS, REGION_COUNT
from carbon_assets.silver import silver_carbon_intensity
from carbon_assets.warehouse import WAREHOUSE_TABLE, carbon_intensity_daily

# Check names (constants: schedules, sensors and tests refer to them).
BRONZE_DAYS_COMPLETE = "bronze_days_complete"
SILVER_UNIQUE_HALF_HOURS = "silver_unique_region_half_hours"
SILVER_NO_UNKNOWN_FUELS = "silver_no_unknown_fuels"
SILVER_FUEL_MIX_SUMS_TO_100 = "silver_fuel_mix_sums_to_100"
SILVER_INTENSITY_NON_NEGATIVE = "silver_intensity_non_negative"
SILVER_INDEX_LABELS_KNOWN = "silver_index_labels_known"
GOLD_REGIONS_PER_DATE = "gold_18_regions_per_date"
GOLD_COMPLETE_DAYS = "gold_complete_days_have_48_half_hours"
GOLD_UNIQUE_KEY = "gold_unique_region_date"
WAREHOUSE_UNIQUE_KEY = "warehouse_unique_region_date"
WAREHOUSE_ROWS_MATCH_GOLD = "warehouse_rows_match_gold"
WAREHOUSE_NO_NULLS = "warehouse_no_nulls_in_required_columns"
WAREHOUSE_REGIONS_KNOWN = "warehouse_regions_in_dim_region"

MIX_TOLERANCE = 0.5  # percentage points; the API's own rounding stays within 0.2
MAX_LISTED = 50  # dates listed in metadata before "... and N more"


def listed(dates: Iterable) -> MetadataValue:
    values = sorted({str(d) for d in dates})
    shown = values[:MAX_LISTED] + ([f"... and {len(values) - MAX_LISTED} more"] if len(values) > MAX_LISTED else [])
    return MetadataValue.json(shown)


def checked_range(context: AssetCheckExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The run's partition range, or None when the check runs on its own (whole asset)."""
    op_context = context.op_execution_context
    if not op_context.has_partition_key_range:
        return None
    key_range = op_context.partition_key_range
    return dt.date.fromisoformat(key_range.start), dt.date.fromisoformat(key_range.end)


def scope_text(date_range: tuple[dt.date, dt.date] | None) -> str:
    return "whole asset" if date_range is None else f"{date_range[0]}...{date_range[1]}"


# --- bronze -----------------------------------------------------------------------------

@multi_asset_check(
    specs=[
        AssetCheckSpec(
            BRONZE_DAYS_COMPLETE,
            asset=bronze_carbon_intensity,
            description=(
                "Every day has 48 half-hours x 18 regions x 9 fuels. A failure lists the days "
                "the API had no or partial data for: their daily averages cover fewer half-hours."
            ),
        )
    ],
)
def bronze_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    store = lake.bronze
    date_range = checked_range(context)
    if date_range is None:
        days = sorted(dt.date.fromisoformat(p.name[:10]) for p in store.root.glob("*/*.json.gz"))
    else:
        days = partition_dates(date_range[0].isoformat(), date_range[1].isoformat())
    incomplete: dict[str, int] = {}
    without_records: list[str] = []
    absent: list[str] = []
    for day in days:
        if store.is_complete(day):
            continue
        document = store.read(day)
        if document is None:
            absent.append(day.isoformat())
            continue
        incomplete[day.isoformat()] = document["half_hours"]
        if document["region_records"] == 0:
            without_records.append(day.isoformat())
    yield AssetCheckResult(
        check_name=BRONZE_DAYS_COMPLETE,
        passed=not incomplete and not absent,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "scope": scope_text(date_range),
            "days_checked": len(days),
            "incomplete_days": len(incomplete),
            "incomplete_half_hours_by_date": MetadataValue.json(dict(list(incomplete.items())[:MAX_LISTED])),
            "days_with_no_data": listed(without_records),
            "days_not_stored": listed(absent),
        },
    )


# --- silver -----------------------------------------------------------------------------

def silver_problems(silver: pd.DataFrame) -> dict[str, pd.Series]:
    """For each silver check, the date_recorded of each offending row (empty when it passes)."""
    if silver.empty:
        return {name: pd.Series(dtype=object) for name in (
            SILVER_UNIQUE_HALF_HOURS, SILVER_NO_UNKNOWN_FUELS, SILVER_FUEL_MIX_SUMS_TO_100,
            SILVER_INTENSITY_NON_NEGATIVE, SILVER_INDEX_LABELS_KNOWN)}
    dates = silver["date_recorded"]
    mix_total = silver[list(FUEL_COLUMNS)].sum(axis=1, min_count=1)
    extra = silver["extra_fuels"].map(lambda value: bool(value is not None and len(value) > 0))
    return {
        SILVER_UNIQUE_HALF_HOURS: dates[silver.duplicated(["regionid", "timestamp"], keep=False)],
        SILVER_NO_UNKNOWN_FUELS: dates[extra],
        SILVER_FUEL_MIX_SUMS_TO_100: dates[~((mix_total - 100).abs() <= MIX_TOLERANCE)],
        SILVER_INTENSITY_NON_NEGATIVE: dates[~(silver["intensity_forecast"] >= 0)],
        SILVER_INDEX_LABELS_KNOWN: dates[~silver["intensity_index"].isin(INDEX_LABELS)],
    }


SILVER_CHECK_DESCRIPTIONS = {
    SILVER_UNIQUE_HALF_HOURS: (
        "Each (regionid, timestamp) appears once. A failure means half-hours would be "
        "double-counted in daily averages; gold is not built from such silver."
    ),
    SILVER_NO_UNKNOWN_FUELS: (
        "The API reported only the nine known fuels. A failure means it added a fuel that the "
        "fuel columns do not hold (kept in extra_fuels); gold is not built until the schema has it."
    ),
    SILVER_FUEL_MIX_SUMS_TO_100: (
        f"Each generation mix sums to 100 +/- {MIX_TOLERANCE}. A failure means fuel shares are "
        "missing or wrong for the listed dates."
    ),
    SILVER_INTENSITY_NON_NEGATIVE: (
        "Every carbon intensity is present and >= 0. A failure means impossible or missing "
        "intensities on the listed dates; gold is not built from them."
    ),
    SILVER_INDEX_LABELS_KNOWN: (
        "Every intensity index is one of: very low, low, moderate, high, very high. A failure "
        "means the API changed its labels; index_mode on those dates may be wrong."
    ),
}
# Bad silver must not reach gold: duplicates, fuels gold has no column for, impossible values.
# Only what the checks read: three years of silver as pandas objects would cost a gigabyte.
SILVER_CHECKED_COLUMNS = [
    "date_recorded", "regionid", "timestamp", "intensity_forecast", "intensity_index",
    *FUEL_COLUMNS, "extra_fuels",
]
BLOCKING_SILVER_CHECKS = {SILVER_UNIQUE_HALF_HOURS, SILVER_NO_UNKNOWN_FUELS, SILVER_INTENSITY_NON_NEGATIVE}


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            name,
            asset=silver_carbon_intensity,
            description=description,
            blocking=name in BLOCKING_SILVER_CHECKS,
        )
        for name, description in SILVER_CHECK_DESCRIPTIONS.items()
    ],
)
def silver_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    date_range = checked_range(context)
    silver = read_parquet_table(lake.silver_dir, *(date_range or (None, None)), columns=SILVER_CHECKED_COLUMNS)
    for name, offending in silver_problems(silver).items():
        yield AssetCheckResult(
            check_name=name,
            passed=offending.empty,
            metadata={
                "scope": scope_text(date_range),
                "rows_checked": len(silver),
                "failing_rows": len(offending),
                "failing_dates": listed(offending),
            },
        )


# --- gold -------------------------------------------------------------------------------

def gold_problems(gold: pd.DataFrame, complete_days: set[str] | None = None) -> dict[str, list[str]]:
    """For each gold check, the failing dates."""
    if gold.empty:
        return {GOLD_REGIONS_PER_DATE: [], GOLD_COMPLETE_DAYS: [], GOLD_UNIQUE_KEY: []}
    dates = gold["date_recorded"].astype(str)
    regions_per_date = gold.groupby(dates)["regionid"].nunique()
    short_days = dates[gold["half_hours"] != HALF_HOURS_PER_DAY]
    if complete_days is not None:
        short_days = short_days[short_days.isin(complete_days)]
    return {
        GOLD_REGIONS_PER_DATE: sorted(regions_per_date[regions_per_date != REGION_COUNT].index),
        GOLD_COMPLETE_DAYS: sorted(set(short_days)),
        GOLD_UNIQUE_KEY: sorted(set(dates[gold.duplicated(["regionid", "date_recorded"], keep=False)])),
    }


GOLD_CHECK_DESCRIPTIONS = {
    GOLD_REGIONS_PER_DATE: (
        "Every date has exactly 18 regional rows. A failure means regions are missing (or extra) "
        "on the listed dates, so national comparisons for them are biased."
    ),
    GOLD_COMPLETE_DAYS: (
        "Days that are complete in bronze have half_hours = 48 in gold. A failure means gold lost "
        "half-hours between bronze and the daily averages on the listed dates."
    ),
    GOLD_UNIQUE_KEY: (
        "(regionid, date_recorded) is unique. A failure means duplicate daily rows, which the "
        "warehouse's primary key would reject."
    ),
}


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=gold_carbon_intensity_daily, description=description)
        for name, description in GOLD_CHECK_DESCRIPTIONS.items()
    ],
)
def gold_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    date_range = checked_range(context)
    gold = read_parquet_table(lake.gold_dir, *(date_range or (None, None)))
    dates = sorted(set(gold["date_recorded"])) if not gold.empty else []
    complete_days = {d.isoformat() for d in dates if lake.bronze.is_complete(d)}
    for name, failing in gold_problems(gold, complete_days).items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            metadata={
                "scope": scope_text(date_range),
                "rows_checked": len(gold),
                "failing_dates": listed(failing),
            },
        )


# --- warehouse --------------------------------------------------------------------------

# Each query returns the failing dates within [:first, :last]. They measure the table itself
# rather than trusting its constraints: a constraint dropped by hand must not go unnoticed.
WAREHOUSE_QUERIES = {
    WAREHOUSE_UNIQUE_KEY: f"""
        SELECT DISTINCT date_recorded FROM (
            SELECT date_recorded FROM {WAREHOUSE_TABLE}
            WHERE date_recorded BETWEEN :first AND :last
            GROUP BY regionid, date_recorded HAVING count(*) > 1) AS duplicated""",
    WAREHOUSE_NO_NULLS: f"""
        SELECT DISTINCT date_recorded FROM {WAREHOUSE_TABLE}
        WHERE date_recorded BETWEEN :first AND :last
          AND (regionid IS NULL OR shortname IS NULL OR dno IS NULL OR intensity_avg IS NULL
               OR half_hours IS NULL OR loaded_at IS NULL OR updated_at IS NULL)""",
    WAREHOUSE_REGIONS_KNOWN: f"""
        SELECT DISTINCT daily.date_recorded FROM {WAREHOUSE_TABLE} AS daily
        LEFT JOIN carbon_data.dim_region AS region USING (regionid)
        WHERE daily.date_recorded BETWEEN :first AND :last AND region.regionid IS NULL""",
}
ROWS_PER_DATE = f"""
    SELECT date_recorded, count(*) AS n FROM {WAREHOUSE_TABLE}
    WHERE date_recorded BETWEEN :first AND :last GROUP BY date_recorded"""

WAREHOUSE_CHECK_DESCRIPTIONS = {
    WAREHOUSE_UNIQUE_KEY: (
        "(regionid, date_recorded) is unique, counted in SQL. A failure means queries that join "
        "or sum by region and date double-count the listed dates."
    ),
    WAREHOUSE_ROWS_MATCH_GOLD: (
        "The warehouse has as many rows per date as gold. A failure means the load missed or "
        "kept extra rows: the listed dates in PostgreSQL differ from the lake."
    ),
    WAREHOUSE_NO_NULLS: (
        "No NULL in the required columns (key, names, intensity_avg, half_hours, timestamps). "
        "A failure means incomplete rows on the listed dates."
    ),
    WAREHOUSE_REGIONS_KNOWN: (
        "Every regionid has a row in carbon_data.dim_region. A failure means joins to region "
        "names drop the listed dates' rows."
    ),
}


def warehouse_problems(
    connection: sqlalchemy.Connection, gold_rows_per_date: dict[str, int], first: dt.date, last: dt.date
) -> dict[str, list[str]]:
    """For each warehouse check, the failing dates in [first, last]."""
    window = {"first": first, "last": last}
    problems = {
        name: sorted(str(row[0]) for row in connection.execute(sqlalchemy.text(query), window))
        for name, query in WAREHOUSE_QUERIES.items()
    }
    stored = {str(d): n for d, n in connection.execute(sqlalchemy.text(ROWS_PER_DATE), window)}
    problems[WAREHOUSE_ROWS_MATCH_GOLD] = sorted(
        d for d in set(stored) | set(gold_rows_per_date) if stored.get(d, 0) != gold_rows_per_date.get(d, 0)
    )
    return problems


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=carbon_intensity_daily, description=description)
        for name, description in WAREHOUSE_CHECK_DESCRIPTIONS.items()
    ],
)
def warehouse_checks(context: AssetCheckExecutionContext, lake: LakeResource, warehouse: WarehouseDatabase):
    date_range = checked_range(context)
    gold = read_parquet_table(lake.gold_dir, *(date_range or (None, None)))
    gold_rows_per_date = gold["date_recorded"].astype(str).value_counts().to_dict() if not gold.empty else {}
    first, last = date_range or (dt.date.fromisoformat("2018-05-11"), dt.date(9999, 12, 31))
    with warehouse.engine().connect() as connection:
        problems = warehouse_problems(connection, gold_rows_per_date, first, last)
    for name, failing in problems.items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            metadata={"scope": scope_text(date_range), "table": WAREHOUSE_TABLE, "failing_dates": listed(failing)},
        )


ALL_CHECKS = [bronze_checks, silver_checks, gold_checks, warehouse_checks]
