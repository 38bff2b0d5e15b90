"""Silver: one typed row per (region, half-hour), flattened from bronze by Spark; and one per
national half-hour."""

from collections.abc import Callable, Mapping
from functools import partial

from dagster import AssetExecutionContext, asset
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from carbon_assets.columns import arrow_table_schema
from carbon_assets.partitions import DERIVED_DAILY_ASSET
from carbon_assets.silver.national import NATIONAL_SILVER_SCHEMA, national_rows_of_file
from carbon_assets.silver.rows import SILVER_SCHEMA, silver_rows_of_file
from carbon_assets.spark import DaysFromFiles, builds_in_process, spark_session, where_built


def silver_from_bronze(
    spark: SparkSession | Callable[[], SparkSession],
    day_files: Mapping[str, str],
    in_process: bool = False,
) -> DaysFromFiles:
    """Silver rows from the bronze day files ({date: file}; see silver.rows.silver_rows),
    computed (and written, by the IO manager) in Spark's Python workers.

    Each file holds every version of its day's half-hours, so workers flatten and deduplicate
    whole files and nothing is shuffled. This plan beat Spark's own JSON reader with a map
    lookup per fuel and a window to deduplicate by half (docs/performance.md).
    """
    return DaysFromFiles.of_days(
        spark, day_files, silver_rows_of_file, SILVER_SCHEMA, in_process=in_process
    )


@asset(
    **DERIVED_DAILY_ASSET,
    io_manager_key="spark_parquet_io_manager",
    metadata={
        "lake_folder": "silver",
        # Described by the comments of the warehouse tables with these columns (sql/); by
        # name, as the layers upstream of the warehouse do not import it.
        "dagster/column_schema": arrow_table_schema(
            SILVER_SCHEMA,
            "carbon_intensity_halfhourly",
            "carbon_intensity_daily",
            key=("regionid", "timestamp"),
            aliases={"timestamp": "period_start"},
        ),
        # Rows whose (regionid, half-hour) the API sent in versions that disagree.
        "counted_columns": {"conflicting_duplicates": "conflicting_versions"},
    },
    kinds={"pyspark", "parquet"},
)
def silver_carbon_intensity(
    context: AssetExecutionContext,
    pyspark: LazyPySparkResource,
    bronze_carbon_intensity: dict[str, str],
) -> DaysFromFiles:
    """Typed half-hourly carbon intensity: one row per region and half-hour (UTC).

    Columns: timestamp, date_recorded, regionid, shortname, dno, intensity_forecast,
    intensity_index, the nine fuel shares fuel_biomass .. fuel_wind (percent), extra_fuels
    (any fuel the API adds, kept rather than dropped; NULL when none), missing_fuels (NULL when
    none), fetched_at (lineage) and conflicting_versions (how many different versions of the
    half-hour the API sent, when they disagree; NULL otherwise).
    A half-hour fetched twice keeps its latest fetch; the materialization's
    conflicting_duplicates counts the rows whose copies disagreed. Stored as Parquet partitioned by
    date_recorded; re-materializing a range replaces exactly those days.
    """
    files = bronze_carbon_intensity
    here = builds_in_process(pyspark, len(files))
    context.log.info(f"Flattening {len(files)} bronze day files {where_built(here)}")
    return silver_from_bronze(partial(spark_session, pyspark), files, in_process=here)


@asset(
    **DERIVED_DAILY_ASSET,
    io_manager_key="spark_parquet_io_manager",
    metadata={
        "lake_folder": "silver_national",
        "dagster/column_schema": arrow_table_schema(
            NATIONAL_SILVER_SCHEMA,
            "carbon_intensity_national_halfhourly",
            key=("timestamp",),
            aliases={"timestamp": "period_start"},
        ),
        "counted_columns": {"half_hours_with_actual": "intensity_actual"},
    },
    kinds={"python", "parquet"},
)
def silver_national_intensity(
    context: AssetExecutionContext, bronze_national_intensity: dict[str, str]
) -> DaysFromFiles:
    """Typed national carbon intensity: one row per half-hour (UTC), forecast and actual.

    Columns: timestamp, date_recorded, intensity_forecast, intensity_actual (NULL while the
    API has not published it), intensity_index, fetched_at. A half-hour fetched twice keeps its
    latest fetch; half_hours_with_actual in the materialization counts the published actuals.
    Parquet partitioned by date_recorded, one file per day, built by the same code as regional
    silver but in the run's own process: 48 rows a day, less than a JVM would cost to start.
    """
    files = bronze_national_intensity
    context.log.info(f"Flattening {len(files)} national bronze day files in this process")
    return DaysFromFiles.of_days(
        None, files, national_rows_of_file, NATIONAL_SILVER_SCHEMA, in_process=True
    )
