"""The bronze fetch alone, without Dagster: wall time against the ideal, and where time went.

    python -m bench.bronze_fetch [--first 2022-01-01 --last 2024-12-31] [--repeat 3]

Starts the emulator with the benchmark's settings (bench.emulator_process), fetches the range
into a temporary bronze folder with the pipeline's own client and store, and prints, per run:
HTTP attempts, wall time, the ideal (the emulator's latency sum / concurrency) and their
ratio. A quick loop for tuning the client; `make bench` measures the same inside Dagster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

from bench.emulator_process import EmulatorProcess, EmulatorSettings
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.day_assembly import whole_days
from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.request_plan import MAX_DAYS_PER_REQUEST
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.partitions import DayRange


def fetch_once(
    emulator: EmulatorProcess,
    days: list[dt.date],
    lake_dir: Path,
    concurrency: int,
    days_per_request: int = MAX_DAYS_PER_REQUEST,
) -> dict:
    store = BronzeStore(lake_dir / "bronze")
    api = CarbonIntensityApi(
        base_url=emulator.base_url, max_concurrency=concurrency, days_per_request=days_per_request
    )
    emulator.reset_stats()
    started = time.monotonic()
    plan = api.plan(days)
    requests = api.fetch(plan, log=logging.getLogger("bronze_fetch"))
    for day, sources in whole_days(plan, requests):
        store.write(build_document(day, sources))
    stats = requests.stats
    wall = time.monotonic() - started
    served = emulator.stats()
    ideal = served["latency_seconds_total"] / concurrency
    return {
        "requests": stats.requests_planned,
        "http_attempts": stats.http_requests,
        "retries": {cause: n for cause, n in stats.retries_by_cause().items() if n},
        "peak_in_flight": served["peak_in_flight"],
        "wall_seconds": round(wall, 2),
        "ideal_seconds": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bronze_fetch", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--first", default="2022-01-01")
    parser.add_argument("--last", default="2024-12-31")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--seed", type=int, default=EmulatorSettings.seed)
    args = parser.parse_args(argv)
    days = DayRange.from_keys(args.first, args.last).days()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="carbon-fetch-") as work:
        work_dir = Path(work)
        settings = EmulatorSettings(seed=args.seed)
        with EmulatorProcess(settings, work_dir / "emulator.log") as emulator:
            for run in range(args.repeat):
                result = fetch_once(emulator, days, work_dir / f"run{run}", args.concurrency)
                print(result, flush=True)


if __name__ == "__main__":
    main()
