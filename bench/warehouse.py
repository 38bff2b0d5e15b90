"""The warehouse load alone: gold's real rows, first load and idempotent re-runs.

The timing is bench_warehouse_load.timed_load on the real range; that module's run_benchmark
(synthetic rows, own database) is run as a cross-check.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import sqlalchemy

from bench import bench_warehouse_load
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.lake import read_parquet_table
from carbon_assets.partitions import DayRange
from carbon_assets.warehouse.assets import WAREHOUSE_TABLE
from carbon_assets.warehouse.io_manager import PostgresWarehouseIOManager
from carbon_assets.warehouse.resource import (
    WarehouseDatabase,
    create_warehouse_engine,
    dispose_engines,
)


def warehouse_rows(database_url: str, first: str, last: str) -> int:
    query = f"SELECT count(*) FROM {WAREHOUSE_TABLE} WHERE date_recorded BETWEEN :first AND :last"
    with create_warehouse_engine(database_url).connect() as connection:
        return connection.execute(
            sqlalchemy.text(query), {"first": first, "last": last}
        ).scalar_one()


def empty_range(database_url: str, first: str, last: str) -> None:
    query = f"DELETE FROM {WAREHOUSE_TABLE} WHERE date_recorded BETWEEN :first AND :last"
    with create_warehouse_engine(database_url).begin() as connection:
        connection.execute(sqlalchemy.text(query), {"first": first, "last": last})


def time_real_load(
    database_url: str, gold_dir: Path, first: str, last: str, repeats: int = 5
) -> dict:
    """Empty the range, load gold's rows on a new connection, then re-run the same load.

    Destructive for the range: run it on the benchmark's scratch database only, last.
    """
    rows = read_parquet_table(gold_dir, DayRange.from_keys(first, last))[list(GOLD_COLUMNS)]
    manager = PostgresWarehouseIOManager(warehouse=WarehouseDatabase(database_url=database_url))
    empty_range(database_url, first, last)
    dispose_engines()  # the first load connects from scratch, like a new run process
    first_seconds, first_meta = bench_warehouse_load.timed_load(manager, rows, first, last)
    reruns = [bench_warehouse_load.timed_load(manager, rows, first, last) for _ in range(repeats)]
    times = [seconds for seconds, _ in reruns]
    return {
        "rows": len(rows),
        "first_load_seconds": round(first_seconds, 3),
        "first_load_inserted": first_meta["inserted"],
        "rerun_median_seconds": round(statistics.median(times), 3),
        "rerun_min_seconds": round(min(times), 3),
        "rerun_repeats": repeats,
        "rerun_skipped_unchanged": reruns[-1][1]["skipped_unchanged"],
        "rerun_written": reruns[-1][1]["inserted"] + reruns[-1][1]["updated"],
    }


def time_synthetic_load(admin_dsn: str) -> dict[str, float]:
    """bench_warehouse_load's own benchmark: {step: seconds}."""
    return {
        step: round(seconds, 3)
        for step, seconds, _ in bench_warehouse_load.run_benchmark(admin_dsn)
    }
