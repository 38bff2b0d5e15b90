"""The warehouse's asset checks, measured in SQL on the tables themselves."""

import datetime as dt

import sqlalchemy
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from carbon_assets.bronze.records import NationalPeriod
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.check_metadata import listed, scope
from carbon_assets.lake import LakeResource, day_files, read_parquet_table
from carbon_assets.lake_files import day_file_rows
from carbon_assets.partitions import FIRST_FULL_DAY, day_range
from carbon_assets.vocabulary import HALF_HOURS_PER_DAY, REGION_COUNT
from carbon_assets.warehouse.assets import (
    WAREHOUSE_TABLE,
    carbon_intensity_daily,
    carbon_intensity_halfhourly,
    carbon_intensity_national_daily,
    carbon_intensity_national_halfhourly,
)
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets.warehouse.tables import (
    DAILY,
    HALF_HOURLY,
    NATIONAL_DAILY,
    NATIONAL_HALF_HOURLY,
    WarehouseTable,
)

WAREHOUSE_UNIQUE_KEY = "warehouse_unique_region_date"
WAREHOUSE_ROWS_MATCH_GOLD = "warehouse_rows_match_gold"
WAREHOUSE_NO_NULLS = "warehouse_no_nulls_in_required_columns"
WAREHOUSE_REGIONS_KNOWN = "warehouse_regions_in_dim_region"
WAREHOUSE_ONE_SOURCE = "warehouse_rows_from_one_source"


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
    WAREHOUSE_ONE_SOURCE: (
        "Every row of the whole table came from one API (source_id, see "
        "carbon_data.fetch_source); a warning. A failure lists each source and its rows: the "
        "table mixes APIs (the emulator's synthetic data with the real API's, say), holds "
        "rows loaded before sources were recorded, or a source_id carbon_data.fetch_source "
        "lacks."
    ),
}
# The source of every row of a table: {source: rows}. The whole table, not the run's range:
# rows of another source anywhere in it make every query over it a mix.
NOT_LISTED = ", not in fetch_source"
SQL_ROWS_BY_SOURCE = """
    SELECT CASE
             WHEN t.source_id IS NULL THEN 'not recorded (loaded before sources were)'
             WHEN s.source_id IS NULL THEN 'source_id ' || t.source_id || '{NOT_LISTED}'
             ELSE s.api_base_url || CASE WHEN s.emulator THEN ' (the emulator)' ELSE '' END
           END AS source, t.rows
    FROM (SELECT source_id, count(*) AS rows FROM {table} GROUP BY source_id) AS t
    LEFT JOIN carbon_data.fetch_source AS s USING (source_id)
    ORDER BY t.rows DESC"""


def rows_by_source(connection: sqlalchemy.Connection, table: WarehouseTable) -> dict[str, int]:
    """{source: rows} over the whole table (a table of one source has one entry)."""
    query = sqlalchemy.text(SQL_ROWS_BY_SOURCE.format(table=table.qualified, NOT_LISTED=NOT_LISTED))
    return {source: rows for source, rows in connection.execute(query)}


def one_source_result(
    check_name: str, table: WarehouseTable, sources: dict[str, int]
) -> AssetCheckResult:
    """Passes when the table's rows come from one source of fetch_source at most; a warning
    otherwise."""
    passed = len(sources) <= 1 and not any(source.endswith(NOT_LISTED) for source in sources)
    return AssetCheckResult(
        check_name=check_name,
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        metadata={"table": table.qualified, "rows_by_source": MetadataValue.json(sources)},
        description=None
        if passed
        else f"{table.qualified} holds rows of {len(sources)} source(s): "
        + "; ".join(f"{source}: {rows:,} rows" for source, rows in sources.items()),
    )


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
    problems[WAREHOUSE_ROWS_MATCH_GOLD] = dates_counted_differently(stored, gold_rows_per_date)
    return problems


def dates_counted_differently(stored: dict[str, int], expected: dict[str, int]) -> list[str]:
    """The dates whose row count in the table is not the expected one (absent counts as 0)."""
    return sorted(d for d in set(stored) | set(expected) if stored.get(d, 0) != expected.get(d, 0))


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
    gold = read_parquet_table(lake.gold, date_range)
    gold_rows_per_date = (
        gold["date_recorded"].astype(str).value_counts().to_dict() if not gold.empty else {}
    )
    first, last = (
        (date_range.first, date_range.last) if date_range else (FIRST_FULL_DAY, dt.date.max)
    )
    with warehouse.engine().connect() as connection:
        problems = warehouse_problems(connection, gold_rows_per_date, first, last)
        sources = rows_by_source(connection, DAILY)
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
    yield one_source_result(WAREHOUSE_ONE_SOURCE, DAILY, sources)


# --- the half-hourly table ---------------------------------------------------------------

HALF_HOURLY_UNIQUE_KEY = "halfhourly_unique_region_half_hour"
HALF_HOURLY_COMPLETE_DAYS = "halfhourly_complete_days_have_864_rows"
HALF_HOURLY_ROWS_MATCH_SILVER = "halfhourly_rows_match_silver"
HALF_HOURLY_ONE_SOURCE = "halfhourly_rows_from_one_source"
ROWS_PER_COMPLETE_DAY = HALF_HOURS_PER_DAY * REGION_COUNT

HALF_HOURLY_CHECK_DESCRIPTIONS = {
    HALF_HOURLY_UNIQUE_KEY: (
        "(regionid, period_start) is unique, counted in SQL. A failure means a half-hour is "
        "counted twice on the listed dates."
    ),
    HALF_HOURLY_COMPLETE_DAYS: (
        f"Days complete in bronze have {ROWS_PER_COMPLETE_DAY} rows (48 half-hours x 18 regions). "
        "A failure means half-hours were lost on the way to PostgreSQL on the listed dates."
    ),
    HALF_HOURLY_ROWS_MATCH_SILVER: (
        "The table has as many rows per date as silver. A failure means the load missed or kept "
        "extra rows: the listed dates in PostgreSQL differ from the lake."
    ),
    HALF_HOURLY_ONE_SOURCE: WAREHOUSE_CHECK_DESCRIPTIONS[WAREHOUSE_ONE_SOURCE],
}
SQL_HALF_HOURLY_DUPLICATED_DATES = f"""
    SELECT DISTINCT date_recorded FROM (
        SELECT date_recorded FROM {HALF_HOURLY.qualified}
        WHERE date_recorded BETWEEN :first AND :last
        GROUP BY regionid, period_start, date_recorded HAVING count(*) > 1) AS duplicated"""
SQL_HALF_HOURLY_ROWS_PER_DATE = f"""
    SELECT date_recorded, count(*) FROM {HALF_HOURLY.qualified}
    WHERE date_recorded BETWEEN :first AND :last GROUP BY date_recorded"""


def halfhourly_problems(
    connection: sqlalchemy.Connection,
    silver_rows_per_date: dict[str, int],
    complete_days: set[str],
    first: dt.date,
    last: dt.date,
) -> dict[str, list[str]]:
    """For each half-hourly check, the failing dates in [first, last]."""
    window = {"first": first, "last": last}
    duplicated = connection.execute(sqlalchemy.text(SQL_HALF_HOURLY_DUPLICATED_DATES), window)
    stored = {
        str(d): n
        for d, n in connection.execute(sqlalchemy.text(SQL_HALF_HOURLY_ROWS_PER_DATE), window)
    }
    return {
        HALF_HOURLY_UNIQUE_KEY: sorted(str(row[0]) for row in duplicated),
        HALF_HOURLY_COMPLETE_DAYS: sorted(
            d for d in complete_days if stored.get(d, 0) != ROWS_PER_COMPLETE_DAY
        ),
        HALF_HOURLY_ROWS_MATCH_SILVER: dates_counted_differently(stored, silver_rows_per_date),
    }


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=carbon_intensity_halfhourly, description=description)
        for name, description in HALF_HOURLY_CHECK_DESCRIPTIONS.items()
    ],
)
def halfhourly_checks(
    context: AssetCheckExecutionContext, lake: LakeResource, warehouse: WarehouseDatabase
):
    date_range = day_range(context)
    # Row counts from the Parquet footers: the checks read no rows of silver.
    silver_rows_per_date = {
        day: day_file_rows(path) for day, path in day_files(lake.silver, date_range).items()
    }
    bronze = BronzeStore(lake.bronze)
    complete_days = {
        day for day in silver_rows_per_date if bronze.is_complete(dt.date.fromisoformat(day))
    }
    first, last = (
        (date_range.first, date_range.last) if date_range else (FIRST_FULL_DAY, dt.date.max)
    )
    with warehouse.engine().connect() as connection:
        problems = halfhourly_problems(connection, silver_rows_per_date, complete_days, first, last)
        sources = rows_by_source(connection, HALF_HOURLY)
    for name, failing in problems.items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            metadata={
                "scope": scope(date_range),
                "table": HALF_HOURLY.qualified,
                "failing_dates": listed(failing),
            },
        )
    yield one_source_result(HALF_HOURLY_ONE_SOURCE, HALF_HOURLY, sources)


# --- the national tables -----------------------------------------------------------------

NATIONAL_UNIQUE_KEY = "national_unique_half_hour"
NATIONAL_COMPLETE_DAYS = "national_complete_days_have_48_rows"
NATIONAL_ROWS_MATCH_SILVER = "national_rows_match_silver"
NATIONAL_ACTUALS_SETTLED = "national_actual_present_once_settled"
NATIONAL_ONE_SOURCE = "national_rows_from_one_source"
NATIONAL_DAILY_MATCHES_HALF_HOURS = "national_daily_matches_half_hours"
NATIONAL_DAILY_ONE_SOURCE = "national_daily_rows_from_one_source"

NATIONAL_CHECK_DESCRIPTIONS = {
    NATIONAL_UNIQUE_KEY: "period_start is unique, counted in SQL. A failure means a half-hour "
    "is counted twice on the listed dates.",
    NATIONAL_COMPLETE_DAYS: f"Days complete in national bronze have {HALF_HOURS_PER_DAY} rows. A "
    "failure means half-hours were lost on the way to PostgreSQL on the listed dates.",
    NATIONAL_ROWS_MATCH_SILVER: "The table has as many rows per date as national silver. A "
    "failure means the load missed or kept extra rows on the listed dates.",
    NATIONAL_ACTUALS_SETTLED: "Every half-hour fetched after its values settled "
    "(CARBON_SETTLE_HOURS after its end) has an actual; a warning. A failure lists the dates "
    "whose actuals the API never published: the API keeps such holes (2023-01-26 has five), "
    "so forecast accuracy there counts fewer half-hours.",
    NATIONAL_ONE_SOURCE: WAREHOUSE_CHECK_DESCRIPTIONS[WAREHOUSE_ONE_SOURCE],
}
NATIONAL_DAILY_CHECK_DESCRIPTIONS = {
    NATIONAL_DAILY_MATCHES_HALF_HOURS: "Each day's half_hours and actual_half_hours equal the "
    "rows and the published actuals of carbon_intensity_national_halfhourly for that date. A "
    "failure means the two national tables disagree on the listed dates (load them again).",
    NATIONAL_DAILY_ONE_SOURCE: WAREHOUSE_CHECK_DESCRIPTIONS[WAREHOUSE_ONE_SOURCE],
}
SQL_NATIONAL_DUPLICATED_DATES = f"""
    SELECT DISTINCT date_recorded FROM (
        SELECT date_recorded FROM {NATIONAL_HALF_HOURLY.qualified}
        WHERE date_recorded BETWEEN :first AND :last
        GROUP BY period_start, date_recorded HAVING count(*) > 1) AS duplicated"""
SQL_NATIONAL_ROWS_PER_DATE = f"""
    SELECT date_recorded, count(*) FROM {NATIONAL_HALF_HOURLY.qualified}
    WHERE date_recorded BETWEEN :first AND :last GROUP BY date_recorded"""
SQL_NATIONAL_UNSETTLED_ACTUALS = f"""
    SELECT DISTINCT date_recorded FROM {NATIONAL_HALF_HOURLY.qualified}
    WHERE date_recorded BETWEEN :first AND :last AND intensity_actual IS NULL
      AND fetched_at >= period_start + interval '30 minutes'
                        + make_interval(secs => :settle_hours * 3600)"""
SQL_NATIONAL_DAILY_DISAGREES = f"""
    SELECT coalesce(d.date_recorded, h.date_recorded) FROM {NATIONAL_DAILY.qualified} AS d
    FULL JOIN (
        SELECT date_recorded, count(*) AS half_hours, count(intensity_actual) AS actuals
        FROM {NATIONAL_HALF_HOURLY.qualified}
        WHERE date_recorded BETWEEN :first AND :last GROUP BY date_recorded) AS h
      USING (date_recorded)
    WHERE coalesce(d.date_recorded, h.date_recorded) BETWEEN :first AND :last
      AND (d.half_hours, d.actual_half_hours) IS DISTINCT FROM (h.half_hours, h.actuals)"""


def _dates(connection: sqlalchemy.Connection, query: str, **window) -> list[str]:
    return sorted(str(row[0]) for row in connection.execute(sqlalchemy.text(query), window))


def _results(problems: dict[str, list[str]], table: WarehouseTable, date_range, warn=()):
    for name, failing in problems.items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            severity=AssetCheckSeverity.WARN if name in warn else AssetCheckSeverity.ERROR,
            metadata={
                "scope": scope(date_range),
                "table": table.qualified,
                "failing_dates": listed(failing),
            },
        )


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=carbon_intensity_national_halfhourly, description=description)
        for name, description in NATIONAL_CHECK_DESCRIPTIONS.items()
    ],
)
def national_checks(
    context: AssetCheckExecutionContext,
    lake: LakeResource,
    warehouse: WarehouseDatabase,
    refresh_policy: RefreshPolicy,
):
    date_range = day_range(context)
    silver_rows_per_date = {
        day: day_file_rows(path)
        for day, path in day_files(lake.silver_national, date_range).items()
    }
    bronze = BronzeStore(lake.bronze_national, period_type=NationalPeriod)
    complete_days = {
        day for day in silver_rows_per_date if bronze.is_complete(dt.date.fromisoformat(day))
    }
    first, last = (
        (date_range.first, date_range.last) if date_range else (FIRST_FULL_DAY, dt.date.max)
    )
    window = {"first": first, "last": last}
    with warehouse.engine().connect() as connection:
        stored = {
            str(d): n
            for d, n in connection.execute(sqlalchemy.text(SQL_NATIONAL_ROWS_PER_DATE), window)
        }
        problems = {
            NATIONAL_UNIQUE_KEY: _dates(connection, SQL_NATIONAL_DUPLICATED_DATES, **window),
            NATIONAL_COMPLETE_DAYS: sorted(
                d for d in complete_days if stored.get(d, 0) != HALF_HOURS_PER_DAY
            ),
            NATIONAL_ROWS_MATCH_SILVER: dates_counted_differently(stored, silver_rows_per_date),
            NATIONAL_ACTUALS_SETTLED: _dates(
                connection,
                SQL_NATIONAL_UNSETTLED_ACTUALS,
                settle_hours=refresh_policy.final_after_hours,
                **window,
            ),
        }
        sources = rows_by_source(connection, NATIONAL_HALF_HOURLY)
    yield from _results(problems, NATIONAL_HALF_HOURLY, date_range, warn={NATIONAL_ACTUALS_SETTLED})
    yield one_source_result(NATIONAL_ONE_SOURCE, NATIONAL_HALF_HOURLY, sources)


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=carbon_intensity_national_daily, description=description)
        for name, description in NATIONAL_DAILY_CHECK_DESCRIPTIONS.items()
    ],
)
def national_daily_checks(context: AssetCheckExecutionContext, warehouse: WarehouseDatabase):
    date_range = day_range(context)
    first, last = (
        (date_range.first, date_range.last) if date_range else (FIRST_FULL_DAY, dt.date.max)
    )
    with warehouse.engine().connect() as connection:
        disagreeing = _dates(connection, SQL_NATIONAL_DAILY_DISAGREES, first=first, last=last)
        sources = rows_by_source(connection, NATIONAL_DAILY)
    problems = {NATIONAL_DAILY_MATCHES_HALF_HOURS: disagreeing}
    yield from _results(problems, NATIONAL_DAILY, date_range)
    yield one_source_result(NATIONAL_DAILY_ONE_SOURCE, NATIONAL_DAILY, sources)
