"""Warehouse: gold's daily rows loaded into carbon_data.carbon_intensity_daily (PostgreSQL)."""

import datetime as dt

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    BackfillPolicy,
    FreshnessPolicy,
    asset,
)

from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.partitions import daily_partitions
from carbon_assets.warehouse.io_manager import WAREHOUSE_TABLE

FRESH_FOR = dt.timedelta(hours=6)


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    # Follows bronze: when the latest day's bronze is re-fetched, this layer is rebuilt.
    automation_condition=AutomationCondition.eager(),
    io_manager_key="warehouse_io_manager",
    kinds={"postgres"},
    group_name="carbon_intensity",
    metadata={"dagster/table_name": WAREHOUSE_TABLE},
    # The daily refresh runs at 00:30 UTC: a warehouse not loaded by 06:00 shows as overdue.
    freshness_policy=FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=FRESH_FOR),
)
def carbon_intensity_daily(
    context: AssetExecutionContext, gold_carbon_intensity_daily: pd.DataFrame
) -> pd.DataFrame:
    """Daily carbon intensity per region in PostgreSQL: carbon_data.carbon_intensity_daily.

    One row per (regionid, date_recorded), the primary key, with gold's averages as
    DECIMAL(10,2). Loading is idempotent: within one transaction, rows of the range that are
    new are inserted, rows whose values changed are updated, identical rows are left alone;
    the counts of each show in the materialization's metadata.
    """
    rows = gold_carbon_intensity_daily[list(GOLD_COLUMNS)]
    context.log.info(f"Loading {len(rows):,} gold rows into {WAREHOUSE_TABLE}")
    return rows.sort_values(["date_recorded", "regionid"], ignore_index=True)
