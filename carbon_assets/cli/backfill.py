"""`carbon-assets backfill FIRST LAST`: every daily asset for the days FIRST..LAST, then the
dbt models.

The same environment as `make dev` (local_stack: DAGSTER_HOME, Dagster's instance on the
embedded PostgreSQL unless DAGSTER_POSTGRES_URL is set), so the runs show in the UI. Up to a
month (`dagster_commands.MODELS_IN_THE_RUN_MAX_DAYS` says why) it runs, in the project folder,

    dg launch --assets 'group:carbon_intensity or group:analytics' --partition-range FIRST...LAST

the days, then the models, in one run. A longer range runs the days, then the models' run

    dg launch --assets group:carbon_intensity --partition-range FIRST...LAST
    dg launch --assets group:analytics

and a range of a year or more a run per series side by side for the days instead
(`dagster_commands.SERIES` says why):

    dg launch --assets 'group:carbon_intensity and not key:*national*' --partition-range ...
    dg launch --assets 'group:carbon_intensity and key:*national*' --partition-range ...

It prints a line per step (the whole log goes to a file) and ends with the days and rows each
layer holds for the range and how the checks went. The models are not built again when every
load before them left its table alone and they were built whole, from the same models, since
the last load that changed one (analytics/builds.py); their own run is then not started.
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


def models_skipped(command: list[str], database_url: str) -> str | None:
    """Why the models' run need not start (the models are current), or None: run it (also
    when the warehouse cannot say). The models' step asks the same itself; asked here, the
    run's process is not started for nothing."""
    from carbon_assets.analytics.assets import MODELS_CURRENT
    from carbon_assets.analytics.builds import models_current
    from carbon_assets.analytics.project import project_hash
    from carbon_assets.cli.dagster_commands import analytics_command
    from carbon_assets.warehouse.resource import create_warehouse_engine

    if command != analytics_command():
        return None
    try:
        current = models_current(create_warehouse_engine(database_url), project_hash())
    except Exception:  # noqa: BLE001 - the warehouse cannot say: build them
        return None
    return MODELS_CURRENT if current else None


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

    commands = dg.backfill_commands(first, last)
    log_path = (args.log or data_dir / "logs" / f"backfill_{first}_{last}.log").resolve()
    for line in dg.environment_summary(env, database_url):
        print(line)
    for stage in commands:
        for command in stage:
            print(f"Running:        {dg.shown_command(command)}")
    print(f"Full log:       {log_path}", flush=True)
    returncode, progress = dg.run_with_progress(
        commands,
        dg.dg_environment(env),
        log_path,
        cwd=dg.project_dir(),
        skip=lambda command: models_skipped(command, database_url),
    )
    if returncode != 0:
        dg.report_failure(returncode, progress, log_path)
        return returncode
    print(f"\n{first}...{last}:")
    for line in dg.summary_lines(dg.layer_counts(lake_url, first, last, database_url), progress):
        print(line)
    return 1 if progress.checks_failed else 0
