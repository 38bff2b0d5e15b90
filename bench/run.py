"""`make bench`: the whole pipeline against a slow, faulty, offline API, plus side-by-sides.

    python -m bench.run [--first 2022-01-01 --last 2024-12-31] [--quick] [--skip-original]

1. starts the API emulator as its own process and creates a scratch PostgreSQL database;
2. backfills the range in ONE Dagster run of all four assets and their checks (fresh process,
   memory sampled), and reads stage times from the run's event log;
3. materializes the day after the range in another fresh process (the incremental run);
4. rebuilds silver and gold from the same bronze files, ours and the original way, each in a
   fresh process, and compares the two gold tables;
5. times the warehouse load alone on the real gold rows;
then writes bench/results/latest.md and latest.json (and each process's log under logs/) and
drops the database. Only one benchmark runs at a time (bench/results/.lock).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.emulator_process import EmulatorProcess, EmulatorSettings
from bench.lake import bronze_counts, compare_gold, parquet_rows
from bench.processes import log_tail, python_module, run_measured
from bench.report import write_reports
from bench.scenario import machine_facts
from bench.scratch_db import ADMIN_DSN, scratch_database
from bench.spark_jobs import run_in_fresh_process
from bench.warehouse import time_real_load, time_synthetic_load, warehouse_rows

FULL_RANGE = ("2022-01-01", "2024-12-31")  # 1,096 days
QUICK_RANGE = ("2023-10-08", "2023-11-06")  # 30 days, with the emulator's empty 2023-10-22
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TIMEOUT_SECONDS = 30 * 60  # per subprocess


class BenchError(RuntimeError):
    """A stage of the benchmark could not produce results."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclasses.dataclass
class Bench:
    """The stages, sharing one temp folder, emulator and scratch database."""

    work_dir: Path
    emulator: EmulatorProcess
    database_url: str
    logs_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    def dagster_run(self, name: str, first: str, last: str) -> dict:
        """One Dagster run of first..last in a fresh process: its process numbers and summary."""
        out = self.work_dir / f"{name}.json"
        command = python_module(
            "bench.dagster_run", "--first", first, "--last", last, "--data-dir", str(self.data_dir),
            "--api-base-url", self.emulator.base_url, "--database-url", self.database_url,
            "--out", str(out),
        )  # fmt: skip
        measured = run_measured(
            command, self.logs_dir / f"{name}.log", self.work_dir, TIMEOUT_SECONDS
        )
        if not out.exists():
            raise BenchError(
                f"the {name} run crashed (exit {measured.returncode}):\n{log_tail(measured.log)}"
            )
        summary = json.loads(out.read_text())
        if not summary["success"]:
            log(f"the {name} run FAILED: {summary['errors']}")
        return {"process": measured.as_dict(), "summary": summary}

    def backfill(self, first: str, last: str) -> dict:
        log(f"backfill {first}..{last}: one Dagster run of all assets and checks")
        self.emulator.reset_stats()
        result = self.dagster_run("backfill", first, last)
        result["emulator"] = self.emulator.stats()
        result["lake"] = lake = bronze_counts(self.data_dir / "bronze", first, last)
        result["rows"] = {
            "bronze_region_records": lake["region_records"],
            "silver": parquet_rows(self.data_dir / "silver", first, last),
            "gold": parquet_rows(self.data_dir / "gold", first, last),
            "warehouse": warehouse_rows(self.database_url, first, last),
        }
        log(f"backfill done in {result['process']['wall_seconds']:.0f} s; rows {result['rows']}")
        return result

    def incremental(self, day: str) -> dict:
        log(f"incremental run of {day} in a fresh process")
        self.emulator.reset_stats()
        result = self.dagster_run("incremental", day, day)
        result["day"] = day
        result["emulator"] = self.emulator.stats()
        log(f"incremental done in {result['process']['wall_seconds']:.1f} s")
        return result

    def spark_job(self, approach: str, first: str, last: str) -> dict:
        """Silver + gold from the backfill's bronze files, `approach` way, in a fresh process."""
        log(f"side by side: {approach} (fresh process)")
        out_dir = self.work_dir / approach
        try:
            ran = run_in_fresh_process(
                approach, self.data_dir / "bronze", first, last, self.work_dir,
                self.logs_dir / f"spark_{approach}.log", TIMEOUT_SECONDS,
            )  # fmt: skip
        except RuntimeError as error:
            raise BenchError(str(error)) from None
        log(f"{approach} done in {ran['process']['wall_seconds']:.0f} s")
        return {
            **ran,
            "silver_rows": parquet_rows(out_dir / "silver", first, last),
            "gold_rows": parquet_rows(out_dir / "gold", first, last),
        }

    def side_by_side(self, first: str, last: str, skip_original: bool) -> dict:
        approaches = ["ours"] if skip_original else ["ours", "original"]
        result = {approach: self.spark_job(approach, first, last) for approach in approaches}
        if not skip_original:
            result["gold_agreement"] = compare_gold(
                self.work_dir / "ours" / "gold", self.work_dir / "original" / "gold"
            )
            log(f"gold agreement: {result['gold_agreement']}")
        return result

    def warehouse_alone(self, first: str, last: str, admin_dsn: str) -> dict:
        """Last, because it empties and reloads the range of the scratch database."""
        log("warehouse load alone (real gold rows), then bench_warehouse_load.py (synthetic)")
        # The IO manager logs each load through Dagster's console logger: into the log file.
        with (
            open(self.logs_dir / "warehouse.log", "w") as output,
            contextlib.redirect_stderr(output),
            contextlib.redirect_stdout(output),
        ):
            return {
                "real": time_real_load(self.database_url, self.data_dir / "gold", first, last),
                "synthetic": time_synthetic_load(admin_dsn),
            }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--first", help=f"first day (default {FULL_RANGE[0]}; {QUICK_RANGE[0]} with --quick)"
    )
    parser.add_argument(
        "--last", help=f"last day (default {FULL_RANGE[1]}; {QUICK_RANGE[1]} with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="30 days: a smoke run of every stage")
    parser.add_argument(
        "--skip-original", action="store_true", help="skip the original Spark approach"
    )
    parser.add_argument(
        "--admin-dsn", default=ADMIN_DSN, help=f"PostgreSQL admin connection (default: {ADMIN_DSN})"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    default_first, default_last = QUICK_RANGE if args.quick else FULL_RANGE
    args.first = dt.date.fromisoformat(args.first or default_first).isoformat()
    args.last = dt.date.fromisoformat(args.last or default_last).isoformat()
    if args.last < args.first:
        parser.error("--last is before --first")
    return args


def scenario(args: argparse.Namespace, settings: EmulatorSettings) -> dict:
    days = (dt.date.fromisoformat(args.last) - dt.date.fromisoformat(args.first)).days + 1
    return {
        **machine_facts(args.admin_dsn),
        "first": args.first, "last": args.last, "days": days,
        "emulator": dataclasses.asdict(settings),
    }  # fmt: skip


@contextlib.contextmanager
def only_benchmark(results_dir: Path) -> Iterator[None]:
    """One benchmark at a time: two on the same cores would distort each other's numbers."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(
                f"another benchmark is running ({results_dir / '.lock'} is locked)"
            ) from None
        yield


def keep_logs(logs_dir: Path, results_dir: Path) -> None:
    """Replace results/logs with this run's logs (written in the temp folder meanwhile)."""
    target = results_dir / "logs"
    shutil.rmtree(target, ignore_errors=True)
    if logs_dir.exists():
        shutil.copytree(logs_dir, target)


def run_stages(args: argparse.Namespace, results: dict, settings: EmulatorSettings) -> None:
    """Every stage, in order, adding to `results` as it goes (so a failure keeps the rest)."""
    day_after = (dt.date.fromisoformat(args.last) + dt.timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="carbon-bench-") as work:
        work_dir = Path(work)
        logs_dir = work_dir / "logs"
        try:
            with (
                EmulatorProcess(settings, logs_dir / "emulator.log") as emulator,
                scratch_database(args.admin_dsn) as database_url,
            ):
                log(f"emulator {emulator.base_url} (pid {emulator.pid}); lake {work_dir}")
                bench = Bench(work_dir, emulator, database_url, logs_dir)
                results["backfill"] = bench.backfill(args.first, args.last)
                if not results["backfill"]["summary"]["success"]:
                    raise BenchError("the backfill failed; later stages need its data")
                results["incremental"] = bench.incremental(day_after)
                results["side_by_side"] = bench.side_by_side(
                    args.first, args.last, args.skip_original
                )
                results["warehouse"] = bench.warehouse_alone(args.first, args.last, args.admin_dsn)
        finally:
            keep_logs(logs_dir, args.results_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    settings = EmulatorSettings()
    results: dict = {"scenario": scenario(args, settings)}
    log(
        f"{args.first}..{args.last} ({results['scenario']['days']:,} days); "
        f"results in {args.results_dir}"
    )
    failure = None
    try:
        with only_benchmark(args.results_dir):
            run_stages(args, results, settings)
    except BenchError as error:
        failure = str(error)
        results["error"] = failure
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["scenario"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if "backfill" in results:
        print(write_reports(results, args.results_dir))
    if failure:
        print(f"bench: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
