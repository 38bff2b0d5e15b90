"""Gold: daily aggregates per region and UTC date, and national ones per date, computed by Spark
from silver's day files."""

from collections.abc import Callable, Mapping
from functools import partial

from dagster import AssetExecutionContext, asset
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from carbon_assets.columns import arrow_table_schema
from carbon_assets.gold.national import NATIONAL_GOLD_SCHEMA, national_daily_rows_of_file
from carbon_assets.gold.rows import GOLD_SCHEMA, gold_rows_of_file
from carbon_assets.partitions import DERIVED_DAILY_ASSET
from carbon_assets.spark import DaysFromFiles, builds_in_process, spark_session, where_built


def gold_from_silver(
    spark: SparkSession | Callable[[], SparkSession],
    day_files: Mapping[str, str],
    in_process: bool = False,
) -> DaysFromFiles:
    """Gold rows from silver day files ({date: file}; see gold.rows.daily_rows), computed
    (and written, by the IO manager) in Spark's Python workers.

    A day's aggregates need only its own rows, so each worker aggregates whole files and
    nothing is shuffled.
    """
    return DaysFromFiles.of_days(
        spark, day_files, gold_rows_of_file, GOLD_SCHEMA, in_process=in_process
    )


@asset(
    **DERIVED_DAILY_ASSET,
    io_manager_key="spark_parquet_io_manager",
    metadata={
        "lake_folder": "gold",
        "csv_export": "gold_carbon_intensity_daily.csv",
        # Described by the comments of the warehouse table (sql/), named: no import upstream.
        "dagster/column_schema": arrow_table_schema(
            GOLD_SCHEMA, "carbon_intensity_daily", key=("regionid", "date_recorded")
        ),
    },
    kinds={"pyspark", "parquet", "csv"},
)
def gold_carbon_intensity_daily(
    context: AssetExecutionContext,
    pyspark: LazyPySparkResource,
    silver_carbon_intensity: dict[str, str],
) -> DaysFromFiles:
    """Daily carbon intensity per region: one row per region and UTC date.

    intensity_avg and fuel_biomass .. fuel_wind are exact means over the half-hours starting
    on that date, rounded half away from zero to 2 decimals, as PostgreSQL's DECIMAL(10,2)
    would; index_mode is the most frequent index label (a tie goes to the higher-carbon
    label); half_hours counts the half-hours behind the row (48 on a complete day); fetched_at
    is the latest fetch behind them. Stored as
    Parquet partitioned by date_recorded, with a CSV export of the whole table for analysts.
    """
    files = silver_carbon_intensity
    here = builds_in_process(pyspark, len(files))
    context.log.info(f"Aggregating {len(files)} silver day files {where_built(here)}")
    return gold_from_silver(partial(spark_session, pyspark), files, in_process=here)


@asset(
    **DERIVED_DAILY_ASSET,
    io_manager_key="spark_parquet_io_manager",
    metadata={
        "lake_folder": "gold_national",
        "dagster/column_schema": arrow_table_schema(
            NATIONAL_GOLD_SCHEMA, "carbon_intensity_national_daily", key=("date_recorded",)
        ),
        "counted_columns": {"days_with_actual": "actual_avg"},
    },
    kinds={"python", "parquet"},
)
def gold_national_daily(
    context: AssetExecutionContext,
    silver_national_intensity: dict[str, str],
) -> DaysFromFiles:
    """National carbon intensity per UTC date, and how good the day's forecasts were.

    forecast_avg and actual_avg are exact time averages of the day's half-hours, rounded half
    away from zero to 2 decimals; mean_absolute_error and bias are the means of |forecast -
    actual| and forecast - actual over the half-hours whose actual is published (positive bias:
    forecasts too high); half_hours and actual_half_hours count them; index_mode is the most
    frequent label. Parquet partitioned by date_recorded, built in the run's own process like
    national silver.
    """
    files = silver_national_intensity
    context.log.info(f"Aggregating {len(files)} national silver day files in this process")
    return DaysFromFiles.of_days(
        None, files, national_daily_rows_of_file, NATIONAL_GOLD_SCHEMA, in_process=True
    )
