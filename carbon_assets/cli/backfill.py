"""`carbon-assets backfill FIRST LAST`: every daily asset for the days FIRST..LAST, then the dbt
models, as one run.

The same environment as `make dev` (local_stack: DAGSTER_HOME, Dagster's instance on the
embedded PostgreSQL unless DAGSTER_POSTGRES_URL is set), so the run shows in the UI. Runs

    dg launch --assets "group:carbon_intensity or group:analytics" --partition-range FIRST...LAST

in the project folder, prints a line per step (the whole log goes to a file) and ends with
the days and rows each layer holds for the range and how the checks went. The models are left
as they are when every load left its table alone and the models were built whole, from the
same models, since the last load that changed one (analytics/assets.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from carbon_assets import settings


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day YYYY-MM-DD, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `carbon-assets backfill`."""
    parser.add_argument("first", type=_day, help="first day (YYYY-MM-DD, UTC)")
    parser.add_argument("last", type=_day, help="last day, included (YYYY-MM-DD, UTC)")
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="file for the run's whole output (default: {data dir}/logs/backfill_FIRST_LAST.log)",
    )


def run(args: argparse.Namespace) -> int:
    """Launch the run, follow it, then print the summary; the run's exit code."""
    from carbon_assets.cli import dagster_commands as dg
    from carbon_assets.cli.local_stack import prepare_environment
    from carbon_assets.partitions import partition_range_problem
    from carbon_assets.postgres.secrets import describe_error
    from carbon_assets.warehouse.resource import resolve_warehouse_url

    first, last = args.first, args.last
    if last < first:
        print(f"backfill failed: LAST ({last}) is before FIRST ({first})", file=sys.stderr)
        return 2
    if problem := partition_range_problem(first.isoformat(), last.isoformat()):
        print(f"backfill failed: {problem}", file=sys.stderr)
        return 2
    try:
        env = prepare_environment()
        # prepare_environment set these in os.environ too, which settings reads.
        data_dir, lake_url = Path(settings.data_dir()), settings.lake_url()
        database_url = resolve_warehouse_url(env.get(settings.DATABASE_URL), data_dir)
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        urls = (os.environ.get(settings.DATABASE_URL), os.environ.get("DAGSTER_POSTGRES_URL"))
        print(f"backfill failed: {describe_error(error, *urls)}", file=sys.stderr)
        return 1

    command = dg.launch_command(first, last)
    log_path = (args.log or data_dir / "logs" / f"backfill_{first}_{last}.log").resolve()
    for line in dg.environment_summary(env, database_url):
        print(line)
    print(f"Running:        {dg.shown_command(command)}")
    print(f"Full log:       {log_path}", flush=True)
    returncode, progress = dg.run_with_progress(
        command, dg.dg_environment(env), log_path, cwd=dg.project_dir()
    )
    if returncode != 0:
        dg.report_failure(returncode, progress, log_path)
        return returncode
    print(f"\n{first}...{last}:")
    for line in dg.summary_lines(dg.layer_counts(lake_url, first, last, database_url), progress):
        print(line)
    return 1 if progress.checks_failed else 0
