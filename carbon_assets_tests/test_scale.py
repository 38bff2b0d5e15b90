"""Silver and gold over a range whose rows would not fit in the Spark driver: the driver's
memory must not grow with the length of the range.

The run is the users' command (`dagster asset materialize`) in its own process, with a local[2]
session whose driver (the JVM that also runs the executors in local mode) has 512 MB. The
range's silver rows take about a gigabyte as Arrow: each day is the real 2019 response's 48
half-hours x 18 regions, with each region's `dnoregion` padded to a few kilobytes so that a
few hundred days weigh what decades of real days would (a test of years of real days would
take many minutes). Collecting the range in the driver runs out of memory; writing each day
from the worker that computed it does not.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.gold.rows import daily_rows
from carbon_assets.lake_files import day_key
from carbon_assets.settings import DATA_DIR, SPARK_MASTER
from carbon_assets.silver.rows import silver_rows
from carbon_assets_tests.helpers import real_periods, source

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
FIRST_DAY = dt.date(2020, 1, 1)
DAYS = 300
DNO_PADDING = 4000  # characters added to each region's dnoregion: ~3.5 MB of silver a day
DRIVER_MEMORY = "512m"


def padded_day(day: dt.date, periods: list[dict]) -> list[dict]:
    """The 48 real half-hours moved to `day` (00:00 to 23:30 UTC), their DNO names padded."""
    moved = []
    for index, period in enumerate(periods):
        start = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(minutes=30 * index)
        record = copy.deepcopy(period)
        record["from"] = start.strftime("%Y-%m-%dT%H:%MZ")
        record["to"] = (start + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ")
        for region in record["regions"]:
            region["dnoregion"] = region["dnoregion"] + " " + "x" * DNO_PADDING
        moved.append(record)
    return moved


def test_silver_and_gold_of_a_range_bigger_than_the_driver(tmp_path):
    periods = real_periods()
    assert len(periods) == 48
    store = BronzeStore(tmp_path / "bronze")
    days = [FIRST_DAY + dt.timedelta(days=i) for i in range(DAYS)]
    for day in days:
        store.write(build_document(day, [source(padded_day(day, periods))]))
    env = os.environ | {
        DATA_DIR: str(tmp_path), "DAGSTER_HOME": str(tmp_path), SPARK_MASTER: "local[2]",
        "CARBON_SPARK_CONF": f"spark.driver.memory={DRIVER_MEMORY};spark.ui.enabled=false",
    }  # fmt: skip
    command = [
        str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
        "-m", "carbon_assets.definitions",
        "--select", "silver_carbon_intensity,gold_carbon_intensity_daily",
        "--partition-range", f"{days[0]}...{days[-1]}",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    for day in days:  # every day's rows, one day in memory at a time
        expected_silver = silver_rows(store.path(day).read_bytes(), str(store.path(day)))
        silver = pq.read_table(tmp_path / "silver" / day_key(day))
        assert silver.num_rows == 48 * 18
        assert silver.equals(expected_silver.drop_columns(["date_recorded"])), day
        gold = pq.read_table(tmp_path / "gold" / day_key(day))
        expected_gold = daily_rows(expected_silver, day).drop_columns(["date_recorded"])
        assert gold.equals(expected_gold), day
