"""`carbon-assets demo`: January 2024 through every asset, regional and national, then the dbt
models, fully offline.

The demo has a stack of its own, apart from the real one (local_stack.py): the lake
data/demo, the warehouse `carbon_demo` and the instance `dagster_demo` on the embedded
PostgreSQL, DAGSTER_HOME .dagster_home/demo. It owns them and empties them each time it starts,
so its synthetic data never mixes with real data; `carbon-assets dev --demo` opens them.

Starts the API emulator, materializes every daily asset for the range in one run with
`dg launch`, then the dbt models in another (dagster_commands.py), then prints the asset checks'
results, the rows per layer, a sample of the warehouse table and one model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import warnings
from pathlib import Path

import pandas as pd
import sqlalchemy

from carbon_assets import settings
from carbon_assets.cli import dagster_commands as dg
from carbon_assets.cli import local_stack
from carbon_assets.cli.dagster_commands import RunProgress, layer_counts, run_with_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--first", default="2024-01-01", help="first day (YYYY-MM-DD)")
    parser.add_argument("--last", default="2024-01-31", help="last day (YYYY-MM-DD)")
    parser.add_argument("--seed", type=int, default=42, help="the emulator's seed")
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=0.1,
        help="scale of the emulator's 0.2-2 s latency (1 = as slow as the real API)",
    )


def warehouse_sample(database_url: str, first: dt.date, rows: int = 10) -> pd.DataFrame:
    query = sqlalchemy.text(
        "SELECT regionid, date_recorded, shortname, intensity_avg, index_mode, fuel_gas, "
        "fuel_wind, half_hours FROM carbon_data.carbon_intensity_daily "
        "WHERE date_recorded = :first ORDER BY regionid LIMIT :rows"
    )
    with sqlalchemy.create_engine(database_url).connect() as connection:
        return pd.read_sql(query, connection, params={"first": first, "rows": rows})


def forecast_accuracy(database_url: str) -> pd.DataFrame:
    """The analyst layer's monthly national forecast accuracy (a dbt model)."""
    query = sqlalchemy.text(
        "SELECT * FROM carbon_analytics.national_forecast_accuracy_monthly ORDER BY 1"
    )
    with sqlalchemy.create_engine(database_url).connect() as connection:
        return pd.read_sql(query, connection)


def warning_checks() -> set[str]:
    """The checks whose failure is a warning (severity WARN): the run's event lines do not say
    a check's severity, the checks' modules do."""
    with warnings.catch_warnings():  # the assets' modules' notices on Dagster's beta APIs
        warnings.simplefilter("ignore")
        from carbon_assets.bronze.checks import BRONZE_DAYS_COMPLETE, BRONZE_RECORDS_ON_GRID
        from carbon_assets.silver.checks import WARNING_SILVER_CHECKS
        from carbon_assets.warehouse.checks import NATIONAL_ACTUALS_SETTLED

    return {
        BRONZE_DAYS_COMPLETE,
        BRONZE_RECORDS_ON_GRID,
        NATIONAL_ACTUALS_SETTLED,
        *WARNING_SILVER_CHECKS,
    }


def checks_summary(progress: RunProgress, warnings: set[str]) -> list[str]:
    """'Asset checks: 45 passed, 1 failed, 1 warning' and a line for each that did not pass."""
    # RunProgress names a check "asset: check".
    warned = [name for name in progress.checks_failed if name.split(": ")[-1] in warnings]
    failed = [name for name in progress.checks_failed if name not in warned]
    plural = "" if len(warned) == 1 else "s"
    counts = f"{len(progress.checks_passed)} passed, {len(failed)} failed"
    lines = [f"Asset checks: {counts}, {len(warned)} warning{plural}"]
    lines += [f"  failed:  {name}" for name in failed]
    lines += [f"  warning: {name}" for name in warned]
    return lines


def write_charts(database_url: str, first: dt.date, last: dt.date, folder: Path) -> list[Path]:
    """The warehouse runs' three charts of the range, as PNG files (the README shows them)."""
    from carbon_assets.warehouse.charts import (
        gb_fuel_mix,
        intensity_heatmap,
        national_forecast_vs_actual,
    )

    def rows_of(table: str) -> pd.DataFrame:
        query = sqlalchemy.text(
            f"SELECT * FROM carbon_data.{table} WHERE date_recorded BETWEEN :first AND :last"
        )
        with sqlalchemy.create_engine(database_url).connect() as connection:
            return pd.read_sql(query, connection, params={"first": first, "last": last})

    daily, national = rows_of("carbon_intensity_daily"), rows_of("carbon_intensity_national_daily")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw, rows in (
        ("intensity_heatmap", intensity_heatmap, daily),
        ("gb_fuel_mix", gb_fuel_mix, daily),
        ("national_forecast_vs_actual", national_forecast_vs_actual, national),
    ):
        path = folder / f"{name}.png"
        path.write_bytes(draw(rows))
        paths.append(path)
    return paths


def prepare_demo_stack() -> tuple[dict[str, str], list[str]]:
    """The demo's environment, its stack emptied and its instance locked for this process
    (so no `carbon-assets dev --demo` runs on it meanwhile); and what the demo set aside."""
    set_aside = local_stack.project_environment(demo=True)
    local_stack.instance_lock(Path(os.environ[local_stack.DAGSTER_HOME]), "carbon-assets demo")
    local_stack.empty_demo_stack()
    return local_stack.connect_environment(demo=True), set_aside


def run(args: argparse.Namespace) -> int:
    from carbon_assets.emulator import EmulatorConfig, start_emulator
    from carbon_assets.postgres.secrets import describe_error, mask_url

    first, last = dt.date.fromisoformat(args.first), dt.date.fromisoformat(args.last)
    try:
        env, set_aside = prepare_demo_stack()
    except local_stack.InstanceInUse as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        print(f"demo failed: {describe_error(error)}", file=sys.stderr)
        return 1
    lake = Path(env[settings.LAKE_URL])
    database_url = env[settings.DATABASE_URL]
    config = EmulatorConfig(
        seed=args.seed, latency_min=0.2, latency_max=2.0, latency_scale=args.latency_scale
    )
    with start_emulator(config) as emulator:
        env[settings.API_BASE_URL] = emulator.base_url
        print(
            "The demo has a lake, warehouse and instance of its own, emptied at each start; "
            "your real ones are not touched."
        )
        if set_aside:
            print(f"Set aside:      {', '.join(set_aside)} (the demo's stack is its own)")
        print(f"API emulator:   {emulator.base_url} (seed {args.seed})")
        print(f"Lake:           {lake}")
        print(f"Warehouse:      {mask_url(database_url)}")
        instance = mask_url(env[local_stack.DAGSTER_POSTGRES_URL])
        print(f"Dagster home:   {env[local_stack.DAGSTER_HOME]} (instance on {instance})")
        commands = dg.backfill_commands(first, last)
        log_path = lake / "demo.log"
        for stage in commands:
            for command in stage:
                print(f"Running:        {dg.shown_command(command)}")
        print(f"Full log:       {log_path}", flush=True)
        returncode, progress = run_with_progress(
            commands,
            dg.dg_environment(env),
            log_path,
            cwd=dg.project_dir(),
        )
        print(f"Emulator served {emulator.stats()['requests_total']} requests")
    print()
    print("\n".join(checks_summary(progress, warning_checks())))
    if returncode != 0:
        dg.report_failure(returncode, progress, log_path)
        return returncode
    print("\nRows per layer for", f"{first}...{last}:")
    for layer, count in layer_counts(lake, first, last, database_url).items():
        print(f"  {layer:<24} {count:>9,}")
    print(f"\nSample of carbon_data.carbon_intensity_daily on {first}:")
    print(warehouse_sample(database_url, first).to_string(index=False))
    print("\nA dbt model, carbon_analytics.national_forecast_accuracy_monthly:")
    print(forecast_accuracy(database_url).to_string(index=False))
    charts = write_charts(database_url, first, last, lake / "exports")
    print("\nCharts of the month: " + ", ".join(str(path) for path in charts))
    print(
        "\n`carbon-assets dev --demo` opens these results in the Dagster UI at "
        "http://127.0.0.1:3000 (`make dev` opens the real stack)"
    )
    return 0
