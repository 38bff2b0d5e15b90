"""Silver and gold from bronze files with Spark, ours or the original way, in this process.

    python -m bench.spark_jobs {ours,original} --bronze-dir D --first F --last L \
        --out-dir O --result R.json

Run it in a fresh process so that the JVM start is part of what is measured. Both approaches
use the project's Spark configuration, write silver and gold Parquet partitioned by
date_recorded, and build gold from the silver Parquet they wrote (as the Dagster assets do).

- ours: silver_from_bronze then gold_from_silver on silver's day files (each parsed or
  aggregated per file in Spark's Python workers), each day's file staged by the worker that
  computed it and published by the driver (DaysFromFiles.write), as the Dagster assets do.
- original: spark.read.json with schema inference, then explode sources, periods, regions
  and generation mixes (one row per region, half-hour and fuel), pivot the fuels back into
  columns, and average per (regionid, date) in binary floating point.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import psutil
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bench.processes import log_tail, python_module, run_measured
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.gold.assets import gold_from_silver
from carbon_assets.lake import day_files
from carbon_assets.partitions import DayRange
from carbon_assets.silver.assets import silver_from_bronze
from carbon_assets.spark import DaysFromFiles, default_spark_config, start_session
from carbon_assets.vocabulary import FUEL_COLUMNS, FUELS

PARTITION_COLUMN = "date_recorded"


def start_spark() -> SparkSession:
    """A local session with the project's configuration (this is where the JVM starts)."""
    return start_session(default_spark_config())


def write_by_day(frame: DataFrame, folder: Path) -> None:
    """The original way: Spark's own partitioned writer."""
    frame.write.mode("overwrite").partitionBy(PARTITION_COLUMN).parquet(str(folder))


def write_days_like_the_io_manager(computed: DaysFromFiles, folder: Path, days: DayRange) -> None:
    """Our way: each worker stages its days' files, the driver publishes them
    (DaysFromFiles.write, as SparkParquetIOManager.handle_output does)."""
    computed.write(folder, days=days)


# --- the original approach ---------------------------------------------------------------


def explode_original(raw: DataFrame) -> DataFrame:
    """One row per (half-hour, region, fuel): ~8.7M rows for three years."""
    periods = raw.select(F.explode("sources").alias("source")).select(
        F.explode("source.data").alias("period")
    )
    regions = periods.select(
        F.col("period.from").alias("from"), F.explode("period.regions").alias("region")
    )
    return (
        regions.select(
            "from",
            F.col("region.regionid").alias("regionid"),
            F.col("region.shortname").alias("shortname"),
            F.col("region.dnoregion").alias("dno"),
            F.col("region.intensity.forecast").alias("intensity_forecast"),
            F.col("region.intensity.index").alias("intensity_index"),
            F.explode("region.generationmix").alias("mix"),
        )
        .select("*", F.col("mix.fuel").alias("fuel"), F.col("mix.perc").alias("perc"))
        .drop("mix")
    )


def pivot_original(exploded: DataFrame) -> DataFrame:
    """Back to one row per (region, half-hour), one column per fuel."""
    keys = ["from", "regionid", "shortname", "dno", "intensity_forecast", "intensity_index"]
    pivoted = exploded.groupBy(*keys).pivot("fuel").agg(F.first("perc"))
    return pivoted.select(
        F.to_timestamp("from", "yyyy-MM-dd'T'HH:mmX").alias("timestamp"),
        F.to_date(F.substring("from", 1, 10)).alias(PARTITION_COLUMN),
        *keys[1:],
        *(F.col(fuel).alias(f"fuel_{fuel}") for fuel in FUELS),
    )


def average_original(silver: DataFrame) -> DataFrame:
    return silver.groupBy("regionid", PARTITION_COLUMN).agg(
        F.avg("intensity_forecast").alias("intensity_avg"),
        *(F.avg(column).alias(column) for column in FUEL_COLUMNS),
        F.count("*").cast("int").alias("half_hours"),
    )


# --- the two jobs: each returns its timings -----------------------------------------------


def run_ours(spark: SparkSession, paths: dict[str, str], out: Path, days: DayRange) -> dict:
    started = time.perf_counter()
    write_days_like_the_io_manager(silver_from_bronze(spark, paths), out / "silver", days)
    silver_done = time.perf_counter()
    silver_day_files = day_files(out / "silver")
    write_days_like_the_io_manager(gold_from_silver(spark, silver_day_files), out / "gold", days)
    return {
        "silver_seconds": silver_done - started,
        "gold_seconds": time.perf_counter() - silver_done,
    }


def run_original(spark: SparkSession, paths: dict[str, str], out: Path, days: DayRange) -> dict:
    started = time.perf_counter()
    exploded = explode_original(spark.read.option("multiLine", True).json(list(paths.values())))
    write_by_day(pivot_original(exploded), out / "silver")
    silver_done = time.perf_counter()
    write_by_day(average_original(spark.read.parquet(str(out / "silver"))), out / "gold")
    timings = {
        "silver_seconds": silver_done - started,
        "gold_seconds": time.perf_counter() - silver_done,
    }
    counting = time.perf_counter()  # not part of the job: how big the exploded step is
    timings["exploded_rows"] = exploded.count()
    timings["exploded_count_seconds"] = time.perf_counter() - counting
    return timings


JOBS = {"ours": run_ours, "original": run_original}


def bronze_paths(bronze_dir: Path, first: str, last: str) -> dict[str, str]:
    """{date: bronze day file} of the stored days first..last."""
    store = BronzeStore(bronze_dir)
    days = DayRange.from_keys(first, last).days()
    return {day.isoformat(): str(store.path(day)) for day in days if store.exists(day)}


def run_in_fresh_process(
    approach: str, bronze_dir: Path, first: str, last: str, work_dir: Path, log_path: Path,
    timeout_seconds: float,
) -> dict:  # fmt: skip
    """`approach`'s silver and gold from `bronze_dir` into work_dir/<approach>, in a fresh
    process (JVM start included): {"process": its measures, "job": the job's own timings}.
    Raises RuntimeError with the log's tail if the job fails."""
    result_path = work_dir / f"{approach}.json"
    command = python_module(
        "bench.spark_jobs", approach, "--bronze-dir", str(bronze_dir),
        "--first", first, "--last", last, "--out-dir", str(work_dir / approach),
        "--result", str(result_path),
    )  # fmt: skip
    measured = run_measured(command, log_path, work_dir, timeout_seconds)
    if measured.returncode != 0 or not result_path.exists():
        raise RuntimeError(
            f"the {approach} Spark job failed (exit {measured.returncode}):\n"
            f"{log_tail(measured.log)}"
        )
    return {"process": measured.as_dict(), "job": json.loads(result_path.read_text())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("approach", choices=sorted(JOBS))
    for option in ("--bronze-dir", "--first", "--last", "--out-dir", "--result"):
        parser.add_argument(option, required=True)
    args = parser.parse_args(argv)
    paths = bronze_paths(Path(args.bronze_dir), args.first, args.last)
    # Python's start and imports (pyspark, dagster via carbon_assets) until now.
    startup_seconds = time.time() - psutil.Process().create_time()
    imported = time.perf_counter()
    spark = start_spark()
    session_ready = time.perf_counter()
    days = DayRange.from_keys(args.first, args.last)
    timings = JOBS[args.approach](spark, paths, Path(args.out_dir), days)
    spark.stop()
    result = {
        "approach": args.approach,
        "bronze_files": len(paths),
        "startup_seconds": startup_seconds,
        "jvm_start_seconds": session_ready - imported,
        "job_seconds": timings["silver_seconds"] + timings["gold_seconds"],
        **timings,
    }
    Path(args.result).write_text(
        json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, indent=1
        )
    )


if __name__ == "__main__":
    main()
