"""Everything Dagster loads: assets, checks, resources, IO managers, schedule, executor.

Building these objects reads environment variables only; Spark, PostgreSQL and the network
are touched when a run needs them, never at import.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor
from dagster_pyspark import LazyPySparkResource

from carbon_assets import settings
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.checks import bronze_checks
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.gold.assets import gold_carbon_intensity_daily
from carbon_assets.gold.checks import gold_checks
from carbon_assets.lake import LakeResource
from carbon_assets.parquet_io_manager import SparkParquetIOManager
from carbon_assets.schedules import daily_refresh_job, daily_refresh_schedule
from carbon_assets.silver.assets import silver_carbon_intensity
from carbon_assets.silver.checks import silver_checks
from carbon_assets.spark import default_spark_config
from carbon_assets.warehouse.assets import carbon_intensity_daily
from carbon_assets.warehouse.checks import warehouse_checks
from carbon_assets.warehouse.io_manager import PostgresWarehouseIOManager
from carbon_assets.warehouse.resource import WarehouseDatabase

ALL_ASSETS = [
    bronze_carbon_intensity,
    silver_carbon_intensity,
    gold_carbon_intensity_daily,
    carbon_intensity_daily,
]
ALL_CHECKS = [bronze_checks, silver_checks, gold_checks, warehouse_checks]


def build_resources(
    data_dir: str | None = None,
    api_base_url: str | None = None,
    database_url: str | None = None,
    **api_options,
) -> dict:
    """The resources, from the environment unless given (tests and the demo give them)."""
    data_dir = data_dir or settings.env_or_default(settings.DATA_DIR, settings.DEFAULT_DATA_DIR)
    api_options = {
        "max_concurrency": settings.env_int_or_default(
            settings.API_MAX_CONCURRENCY, settings.DEFAULT_API_MAX_CONCURRENCY
        ),
        **api_options,
    }
    lake = LakeResource(data_dir=data_dir)
    database_url = database_url or settings.env_or_default(settings.DATABASE_URL, None)
    warehouse = WarehouseDatabase(database_url=database_url, data_dir=data_dir)
    return {
        "lake": lake,
        "pyspark": LazyPySparkResource(spark_config=default_spark_config()),
        "carbon_api": CarbonIntensityApi(
            base_url=api_base_url
            or settings.env_or_default(settings.API_BASE_URL, settings.DEFAULT_API_BASE_URL),
            **api_options,
        ),
        "bronze_io_manager": BronzeJsonIOManager(lake=lake),
        "spark_parquet_io_manager": SparkParquetIOManager(lake=lake),
        "warehouse": warehouse,
        "warehouse_io_manager": PostgresWarehouseIOManager(warehouse=warehouse),
    }


defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[daily_refresh_job],
    schedules=[daily_refresh_schedule],
    resources=build_resources(),
    # One process per run: Spark starts once and silver and gold share the session.
    executor=in_process_executor,
)
