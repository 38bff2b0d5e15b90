"""Ours through the users' command against the case study's whole pipeline rebuilt, one after
the other on the same machine, the same days and the same API.

    python -m bench.side_by_side --years 3 [--api fast|slow] [--out r.json]

1. ours: the README's `carbon-assets backfill FIRST LAST` (bench.object_store's first backfill:
   fresh databases, instance and lake on the PostgreSQL service), command start to exit: both
   series fetched, silver, gold, every warehouse table, every check and the dbt models;
2. the original pipeline, each stage timed:
   - fetching one request per day (the case study's 1,095 requests for 1,095 days), with our
     client's concurrency limit, retries and day files (bench.bronze_fetch), from the start of
     the first request to the last day file stored;
   - its Spark part (bench.spark_jobs original: `spark.read.json` with inference, explode,
     pivot, groupBy) on the bronze it fetched, in a fresh process, JVM start included;
   - its load: its gold rows into a fresh PostgreSQL table with pandas' `to_sql` (multi-row
     INSERTs of 1,000), the daily table only.

`--api` is the emulator both use: "fast" (20-100 ms a request, no faults) or "slow" (the
benchmark's API of bench.run: 0.2-2 s a request plus 0.05 s per day asked for, 3% HTTP 500s,
1% 429s). The rebuilt fetching and load are generous to the original: our client's
concurrency and retries, no Python start counted for either, and the original does less (no
national series, no half-hourly table, no checks, no dbt models). The ratio ours / original is
reported against the whole original pipeline and against its Spark part alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import sqlalchemy

from bench.bronze_fetch import fetch_once
from bench.cli_backfill import LOGS_DIR, add_range_arguments, chosen_range, write_result
from bench.emulator_process import APIS, EmulatorProcess, EmulatorSettings
from bench.lake import spark_written_table
from bench.object_store import one_backfill
from bench.processes import PROJECT_DIR
from bench.scratch_db import scratch_database
from bench.spark_jobs import run_in_fresh_process
from carbon_assets.partitions import DayRange
from carbon_assets.settings import DEFAULT_API_MAX_CONCURRENCY

TIMEOUT_SECONDS = 60 * 60


def original_fetch(api: EmulatorSettings, first: str, last: str, work_dir: Path) -> dict:
    """The original's fetching: one request per day into work_dir/bronze."""
    days = DayRange.from_keys(first, last).days()
    with EmulatorProcess(api, LOGS_DIR / "original_emulator.log") as emulator:
        return fetch_once(emulator, days, work_dir, DEFAULT_API_MAX_CONCURRENCY, days_per_request=1)


def original_load(gold_dir: Path) -> dict:
    """The original's gold rows into a fresh table of a fresh database."""
    with scratch_database(prefix="carbon_bench_original") as url:
        engine = sqlalchemy.create_engine(url)
        started = time.perf_counter()
        rows = spark_written_table(gold_dir)
        rows.to_sql("carbon_intensity_daily", engine, method="multi", chunksize=1000, index=False)
        seconds = time.perf_counter() - started
        engine.dispose()
    return {"rows": len(rows), "wall_seconds": round(seconds, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_range_arguments(parser, years="3")
    parser.add_argument("--api", choices=sorted(APIS), default="fast")
    args = parser.parse_args(argv)
    args.first, args.last = chosen_range(args)
    api = APIS[args.api]
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carbon-side-by-side-") as work:
        work_dir = Path(work)
        ours = one_backfill(
            args.first, args.last, args.api, "local", PROJECT_DIR, work_dir / "ours",
            "side_by_side_ours",
        )  # fmt: skip
        original_dir = work_dir / "original"
        fetching = original_fetch(api, args.first, args.last, original_dir)
        spark = run_in_fresh_process(
            "original", original_dir / "bronze", args.first, args.last, original_dir,
            LOGS_DIR / "original.log", TIMEOUT_SECONDS,
        )  # fmt: skip
        load = original_load(original_dir / "original" / "gold")
    spark_wall = spark["process"]["wall_seconds"]
    original_wall = fetching["wall_seconds"] + spark_wall + load["wall_seconds"]
    ours_wall = ours["wall_seconds"]
    result = {
        "first": args.first,
        "last": args.last,
        "api": args.api,
        "ours_wall_seconds": ours_wall,
        "original_wall_seconds": round(original_wall, 2),
        "original_fetch_seconds": fetching["wall_seconds"],
        "original_spark_wall_seconds": spark_wall,
        "original_load_seconds": load["wall_seconds"],
        "ratio_ours_to_original": round(ours_wall / original_wall, 3),
        "ratio_ours_to_original_spark_part": round(ours_wall / spark_wall, 3),
        "ours": ours,
        "original": {"fetch": fetching, "spark": spark, "load": load},
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
