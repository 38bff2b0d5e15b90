"""Everything Dagster loads: assets, checks, resources, IO managers, automation, executor.

Building these objects reads no environment variable, and Spark, PostgreSQL and the network
are touched when a run needs them, never at import. Resources leave unset what comes from the
environment and read it when a run uses them (settings.py), so the definitions (shown in the
UI, stored with every run) hold none of its values: Spark's may be secrets (spark.py).
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from carbon_assets.analytics import analytics_assets, analytics_automation_sensor, dbt_resource
from carbon_assets.automation import automation_sensor, daily_refresh_job, daily_refresh_schedule
from carbon_assets.bronze.assets import bronze_carbon_intensity, bronze_national_intensity
from carbon_assets.bronze.checks import bronze_checks
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.gc_pause import skip_collection_at_exit
from carbon_assets.gold.assets import gold_carbon_intensity_daily, gold_national_daily
from carbon_assets.gold.checks import gold_checks
from carbon_assets.lake import LakeResource
from carbon_assets.parquet_io_manager import SparkParquetIOManager
from carbon_assets.silver.assets import silver_carbon_intensity, silver_national_intensity
from carbon_assets.silver.checks import silver_checks
from carbon_assets.spark import SparkResource
from carbon_assets.warehouse.assets import (
    carbon_intensity_daily,
    carbon_intensity_halfhourly,
    carbon_intensity_national_daily,
    carbon_intensity_national_halfhourly,
)
from carbon_assets.warehouse.checks import (
    halfhourly_checks,
    national_checks,
    national_daily_checks,
    warehouse_checks,
)
from carbon_assets.warehouse.io_manager import PostgresWarehouseIOManager
from carbon_assets.warehouse.resource import WarehouseDatabase

REGIONAL_ASSETS = [
    bronze_carbon_intensity,
    silver_carbon_intensity,
    gold_carbon_intensity_daily,
    carbon_intensity_daily,
    carbon_intensity_halfhourly,
]
NATIONAL_ASSETS = [
    bronze_national_intensity,
    silver_national_intensity,
    gold_national_daily,
    carbon_intensity_national_halfhourly,
    carbon_intensity_national_daily,
]
# The daily-partitioned layers, in one backfill and one daily schedule.
ALL_ASSETS = [*REGIONAL_ASSETS, *NATIONAL_ASSETS]
# The dbt models: unpartitioned, built after the warehouse by their own sensor.
ANALYTICS_ASSETS = list(analytics_assets)
ALL_CHECKS = [
    bronze_checks,
    silver_checks,
    gold_checks,
    warehouse_checks,
    halfhourly_checks,
    national_checks,
    national_daily_checks,
]


def build_resources(
    data_dir: str | None = None,
    api_base_url: str | None = None,
    database_url: str | None = None,
    **api_options,
) -> dict:
    """The resources; what is not given here comes from the environment when a run uses it
    (tests and the demo give some)."""
    lake = LakeResource(data_dir=data_dir)
    warehouse = WarehouseDatabase(database_url=database_url, data_dir=data_dir)
    return {
        "lake": lake,
        "pyspark": SparkResource(),
        "carbon_api": CarbonIntensityApi(base_url=api_base_url, **api_options),
        "refresh_policy": RefreshPolicy(),
        "bronze_io_manager": BronzeJsonIOManager(lake=lake),
        "spark_parquet_io_manager": SparkParquetIOManager(lake=lake),
        "warehouse": warehouse,
        "warehouse_io_manager": PostgresWarehouseIOManager(warehouse=warehouse),
        "dbt": dbt_resource(),
    }


defs = Definitions(
    assets=[*ALL_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=ALL_CHECKS,
    jobs=[daily_refresh_job],
    schedules=[daily_refresh_schedule],
    sensors=[automation_sensor, analytics_automation_sensor],
    resources=build_resources(),
    # One process per run: Spark starts once and silver and gold share the session.
    executor=in_process_executor,
)

# A run's process (dg launch, a run worker) ends as soon as the run has: docs/performance.md.
skip_collection_at_exit()
