"""Ours through the users' command against the original approach, one after the other on the
same machine and the same days.

    python -m bench.side_by_side --first 2023-11-30 --last 2026-11-29 [--batch-size 100]
        [--out result.json]

1. ours: bench.cli_backfill (`dagster asset materialize --select '*' --partition-range`,
   persistent PostgreSQL instance, fresh databases and lake, the emulator): fetching, silver,
   gold, both warehouse tables and every check, command start to exit;
2. the original approach (bench.spark_jobs original: `spark.read.json` with inference,
   explode, pivot, groupBy) on the bronze files ours just fetched, in a fresh process, JVM
   start included.

The original's wall covers only its Spark part: not its fetching (one request per day) nor its
load. The ratio ours / original is therefore an upper bound of ours against the whole original
pipeline.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.cli_backfill import (
    LOGS_DIR,
    add_range_arguments,
    backfill,
    chosen_range,
    write_result,
)
from bench.processes import log_tail, python_module, run_measured

TIMEOUT_SECONDS = 60 * 60


def original_spark(bronze_dir: Path, first: str, last: str, work_dir: Path) -> dict:
    """The original approach's silver and gold from `bronze_dir`, in a fresh process."""
    result_path = work_dir / "original.json"
    command = python_module(
        "bench.spark_jobs", "original", "--bronze-dir", str(bronze_dir),
        "--first", first, "--last", last, "--out-dir", str(work_dir / "original"),
        "--result", str(result_path),
    )  # fmt: skip
    measured = run_measured(command, LOGS_DIR / "original.log", work_dir, TIMEOUT_SECONDS)
    if measured.returncode != 0:
        raise RuntimeError(f"the original approach failed:\n{log_tail(measured.log)}")
    return {"process": measured.as_dict(), "job": json.loads(result_path.read_text())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_range_arguments(parser, years="3")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    args.first, args.last = chosen_range(args)
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carbon-side-by-side-") as work:
        work_dir = Path(work)
        # The backfill's lake stays in work_dir/ours/data until the end.
        ours = backfill(args.first, args.last, args.batch_size, work_dir / "ours", LOGS_DIR)
        bronze_dir = work_dir / "ours" / "data" / "bronze"
        original = original_spark(bronze_dir, args.first, args.last, work_dir)
    ours_wall, original_wall = ours["wall_seconds"], original["process"]["wall_seconds"]
    result = {
        "first": args.first,
        "last": args.last,
        "ours_wall_seconds": ours_wall,
        "original_spark_wall_seconds": original_wall,
        "ratio_ours_to_original": round(ours_wall / original_wall, 3),
        "ours": ours,
        "original": original,
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
