"""A small run builds silver and gold in its own process, without starting Spark: the same
files, byte for byte, as Spark's workers write, and the rule for when it does so; a larger
run starts Spark once bronze has days to fetch, and not at all when it has none."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from carbon_assets.gold.assets import gold_from_silver
from carbon_assets.lake import day_files
from carbon_assets.partitions import DayRange
from carbon_assets.silver.assets import silver_from_bronze
from carbon_assets.spark import SparkResource, builds_in_process, run_days, start_spark_soon
from carbon_assets_tests.helpers import dated, real_periods, write_days

DAYS = DayRange(dt.date(2019, 8, 25), dt.date(2019, 8, 26))


def no_spark():
    raise AssertionError("a build in this process asked for the Spark session")


def parquet_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


@pytest.mark.spark
def test_a_build_in_this_process_writes_what_spark_writes(spark, tmp_path):
    bronze = dated(write_days(tmp_path, real_periods()))
    built = {}
    for where, session, in_process in (("spark", spark, False), ("here", no_spark, True)):
        silver, gold = tmp_path / where / "silver", tmp_path / where / "gold"
        silver_summary = silver_from_bronze(session, bronze, in_process=in_process).write(
            silver, ["conflicting_versions"], DAYS
        )
        gold_summary = gold_from_silver(session, day_files(silver), in_process=in_process).write(
            gold, [], DAYS
        )
        built[where] = (
            parquet_files(silver),
            parquet_files(gold),
            silver_summary.drop_columns(["staged"]),
            gold_summary.drop_columns(["staged"]),
        )
    spark_silver, spark_gold, *spark_summaries = built["spark"]
    here_silver, here_gold, *here_summaries = built["here"]
    assert len(spark_silver) == len(spark_gold) == 2
    assert here_silver == spark_silver and here_gold == spark_gold  # every byte, footers too
    assert here_summaries == spark_summaries
    assert pq.read_table(tmp_path / "here" / "silver").num_rows > 0


def test_a_small_run_on_a_local_spark_builds_here_and_any_other_uses_spark():
    local = SparkResource(spark_config={"spark.master": "local[2]"})
    assert local.builds_in_process(1) and local.builds_in_process(3)
    assert not local.builds_in_process(4)
    assert not SparkResource(spark_config={"spark.remote": "sc://spark:15002"}).builds_in_process(1)
    assert not SparkResource(spark_config={"spark.master": "spark://h:7077"}).builds_in_process(1)
    never = SparkResource(spark_config={"spark.master": "local[2]"}, in_process_max_days=0)
    assert not never.builds_in_process(1)
    assert not builds_in_process(object(), 1)  # any other resource: Spark


@pytest.mark.parametrize(
    ("tags", "days"),
    [
        ({"dagster/asset_partition_range_start": "2024-01-01",
          "dagster/asset_partition_range_end": "2024-01-03"}, 3),
        ({"dagster/partition": "2024-01-01"}, 1),
        ({}, None),
        ({"dagster/partition": "not-a-day"}, None),
    ],
)  # fmt: skip
def test_the_days_of_a_run_come_from_its_partition_tags(tags, days):
    assert run_days(SimpleNamespace(dagster_run=SimpleNamespace(tags=tags))) == days
    assert run_days(SimpleNamespace(dagster_run=None)) is None


def ten_day_run() -> SimpleNamespace:
    """What SparkResource.setup_for_execution reads of a run of 10 days."""
    tags = {"dagster/asset_partition_range_start": "2024-01-01",
            "dagster/asset_partition_range_end": "2024-01-10"}  # fmt: skip
    return SimpleNamespace(dagster_run=SimpleNamespace(tags=tags), log=None)


def spark_start_thread() -> threading.Thread:
    (thread,) = [t for t in threading.enumerate() if t.name == "spark-start"]
    return thread


def test_a_run_whose_bronze_fetches_nothing_starts_no_spark():
    pyspark = SparkResource(spark_config={"spark.master": "local[2]"})
    context = ten_day_run()
    pyspark.setup_for_execution(context)
    waiting = spark_start_thread()
    waiting.join(timeout=0.5)
    assert waiting.is_alive() and pyspark.builds_in_process(1)  # no session yet
    pyspark.teardown_after_execution(context)
    waiting.join(timeout=10)
    assert not waiting.is_alive()
    start_spark_soon()  # after the run: nobody waits any more
    assert pyspark.builds_in_process(1) and not any(
        t.name == "spark-start" for t in threading.enumerate()
    )


@pytest.mark.spark
def test_spark_starts_in_the_background_once_bronze_has_days_to_fetch(spark):
    pyspark = SparkResource(spark_config={"spark.master": "local[2]"})
    context = ten_day_run()
    pyspark.setup_for_execution(context)
    waiting = spark_start_thread()
    start_spark_soon()
    waiting.join(timeout=120)
    assert not waiting.is_alive()
    assert not pyspark.builds_in_process(1)  # the session is there: getOrCreate gave the test's
    pyspark.teardown_after_execution(context)
