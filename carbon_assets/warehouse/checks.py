"""The warehouse's asset checks, measured in SQL on the table itself."""

import datetime as dt

import sqlalchemy
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSpec, multi_asset_check

from carbon_assets.lake import LakeResource, read_parquet_table
from carbon_assets.partitions import FIRST_FULL_DAY, day_range, listed, scope
from carbon_assets.warehouse.assets import WAREHOUSE_TABLE, carbon_intensity_daily
from carbon_assets.warehouse.resource import WarehouseDatabase

WAREHOUSE_UNIQUE_KEY = "warehouse_unique_region_date"
WAREHOUSE_ROWS_MATCH_GOLD = "warehouse_rows_match_gold"
WAREHOUSE_NO_NULLS = "warehouse_no_nulls_in_required_columns"
WAREHOUSE_REGIONS_KNOWN = "warehouse_regions_in_dim_region"


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
    connection: sqlalchemy.Connection,
    gold_rows_per_date: dict[str, int],
    first: dt.date,
    last: dt.date,
) -> dict[str, list[str]]:
    """For each warehouse check, the failing dates in [first, last]."""
    window = {"first": first, "last": last}
    problems = {
        name: sorted(str(row[0]) for row in connection.execute(sqlalchemy.text(query), window))
        for name, query in WAREHOUSE_QUERIES.items()
    }
    stored = {str(d): n for d, n in connection.execute(sqlalchemy.text(ROWS_PER_DATE), window)}
    problems[WAREHOUSE_ROWS_MATCH_GOLD] = sorted(
        d
        for d in set(stored) | set(gold_rows_per_date)
        if stored.get(d, 0) != gold_rows_per_date.get(d, 0)
    )
    return problems


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=carbon_intensity_daily, description=description)
        for name, description in WAREHOUSE_CHECK_DESCRIPTIONS.items()
    ],
)
def warehouse_checks(
    context: AssetCheckExecutionContext, lake: LakeResource, warehouse: WarehouseDatabase
):
    date_range = day_range(context)
    gold = read_parquet_table(lake.gold_dir, date_range)
    gold_rows_per_date = (
        gold["date_recorded"].astype(str).value_counts().to_dict() if not gold.empty else {}
    )
    first, last = (
        (date_range.first, date_range.last) if date_range else (FIRST_FULL_DAY, dt.date.max)
    )
    with warehouse.engine().connect() as connection:
        problems = warehouse_problems(connection, gold_rows_per_date, first, last)
    for name, failing in problems.items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            metadata={
                "scope": scope(date_range),
                "table": WAREHOUSE_TABLE,
                "failing_dates": listed(failing),
            },
        )
