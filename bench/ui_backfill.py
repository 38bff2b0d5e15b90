"""The UI's path: a backfill of every asset launched through `dagster dev`'s GraphQL API (what
the UI's "Materialize all" button sends), run by the daemon, measured from outside.

    python -m bench.ui_backfill --first 2024-01-01 --last 2024-12-31 [--batch-size 100]
        [--out result.json]

`dagster dev` runs with the repository's dagster.yaml and workspace.yaml on a fresh PostgreSQL
instance database (as `make dev`, with DAGSTER_EVENT_BATCH_SIZE as `make dev` sets it), a fresh
warehouse database and lake, against the emulator in its own process. The wall clock runs from
the launchPartitionBackfill mutation to the end of the backfill's one run (BackfillPolicy
single_run); "before RUN_START" here also holds the daemon's wait for its next backfill tick
and the queued run's launch. Peak RSS is of everything `dagster dev` started (webserver,
daemon, code server, the run and its Spark JVM). The breakdown is bench.cli_backfill's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.cli_backfill import (
    FAST_API,
    LOGS_DIR,
    add_range_arguments,
    analyse,
    chosen_range,
    event_log,
    plain_url,
    write_result,
)
from bench.dagster_dev import DagsterDev
from bench.emulator_process import EmulatorProcess
from bench.processes import PeakRssSampler
from bench.scratch_db import scratch_database
from carbon_assets.definitions import ALL_ASSETS
from carbon_assets.partitions import DayRange

TIMEOUT_SECONDS = 60 * 60


def backfill(first: str, last: str, batch_size: int, work_dir: Path, logs_dir: Path) -> dict:
    home = work_dir / "dagster_home"
    (home / ".nux").mkdir(parents=True)
    (home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    (home / "dagster.yaml").symlink_to(Path(__file__).resolve().parents[1] / "dagster.yaml")
    asset_keys = [key.to_user_string() for spec in ALL_ASSETS for key in spec.keys]
    with (
        EmulatorProcess(FAST_API, logs_dir / "emulator.log") as emulator,
        scratch_database() as warehouse_url,
        scratch_database(prefix="carbon_bench_dagster") as dagster_url,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
        env |= {
            "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": plain_url(dagster_url),
            "CARBON_DATABASE_URL": warehouse_url, "CARBON_DATA_DIR": str(work_dir / "data"),
            "CARBON_API_BASE_URL": emulator.base_url,
            "DAGSTER_EVENT_BATCH_SIZE": str(batch_size),
        }  # fmt: skip
        dev = DagsterDev(env, log_path=logs_dir / f"ui_{first}_{last}_batch{batch_size}.log")
        dev.start()
        try:
            dev.wait_until_ready(asset_keys, timeout=300)
            dev.wait_for_daemon(timeout=120)
            sampler = PeakRssSampler(dev.process.pid)
            sampler.start()
            started_at = time.time()
            days = [day.isoformat() for day in DayRange.from_keys(first, last).days()]
            backfill_id = dev.launch_backfill(asset_keys, days)
            done = dev.wait_for_backfill(backfill_id, timeout=TIMEOUT_SECONDS, runs_only=True)
            wall_seconds = time.time() - started_at
            sampler.stop()
            statuses = [run["status"] for run in done["runs"]]
            if statuses != ["SUCCESS"]:
                problems = "\n".join(dev.run_problems(run["runId"]) for run in done["runs"])
                raise RuntimeError(f"the UI backfill's runs ended {statuses}:\n{problems}")
        finally:
            dev.stop()
        run_id, events, _ = event_log(dagster_url)
    return {
        "first": first,
        "last": last,
        "batch_size": batch_size,
        "run_id": run_id,
        **analyse(events, started_at, wall_seconds),
        "peak_rss_python_bytes": sampler.peak_python,
        "peak_rss_jvm_bytes": sampler.peak_jvm,
        "peak_rss_total_bytes": sampler.peak_total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_range_arguments(parser, years="all")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)
    args.first, args.last = chosen_range(args)
    LOGS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carbon-ui-bench-") as work:
        result = backfill(args.first, args.last, args.batch_size, Path(work), LOGS_DIR)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
