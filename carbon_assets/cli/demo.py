"""`carbon-assets demo`: January 2024 through every asset, fully offline.

Starts the API emulator and the embedded PostgreSQL, materializes every asset for the range
in one run with the `dagster asset materialize` CLI (on the same Dagster instance `make dev`
shows), then prints the rows per layer and a sample of the warehouse table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import sqlalchemy

from carbon_assets import settings
from carbon_assets.cli.local_stack import prepare_environment


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


def layer_counts(
    data_dir: Path, first: dt.date, last: dt.date, database_url: str
) -> dict[str, int]:
    from carbon_assets.bronze.store import BronzeStore
    from carbon_assets.lake import read_parquet_table
    from carbon_assets.partitions import DayRange

    days = DayRange(first, last)
    store = BronzeStore(data_dir / "bronze")
    documents = [store.read(day) for day in days.days()]
    with sqlalchemy.create_engine(database_url).connect() as connection:
        warehouse_rows = {
            table: connection.execute(
                sqlalchemy.text(
                    f"SELECT count(*) FROM carbon_data.{table} "
                    "WHERE date_recorded BETWEEN :first AND :last"
                ),
                {"first": first, "last": last},
            ).scalar_one()
            for table in ("carbon_intensity_daily", "carbon_intensity_halfhourly")
        }
    return {
        "bronze day files": sum(doc is not None for doc in documents),
        "bronze region-records": sum(doc["region_records"] for doc in documents if doc),
        "silver rows": len(read_parquet_table(data_dir / "silver", days)),
        "gold rows": len(read_parquet_table(data_dir / "gold", days)),
        "warehouse daily rows": warehouse_rows["carbon_intensity_daily"],
        "warehouse half-hour rows": warehouse_rows["carbon_intensity_halfhourly"],
    }


def warehouse_sample(database_url: str, first: dt.date, rows: int = 10) -> pd.DataFrame:
    query = sqlalchemy.text(
        "SELECT regionid, date_recorded, shortname, intensity_avg, index_mode, fuel_gas, "
        "fuel_wind, half_hours FROM carbon_data.carbon_intensity_daily "
        "WHERE date_recorded = :first ORDER BY regionid LIMIT :rows"
    )
    with sqlalchemy.create_engine(database_url).connect() as connection:
        return pd.read_sql(query, connection, params={"first": first, "rows": rows})


# "... - 4242 - silver_carbon_intensity - STEP_SUCCESS - Finished execution of step
# "silver_carbon_intensity" in 12.3s." and the like, from Dagster's event log lines.
STEP_EVENT = re.compile(
    r" - (?P<event>STEP_START|STEP_SUCCESS|STEP_FAILURE|STEP_SKIPPED) - (?P<text>.*)"
)
STEP_NAME = re.compile(r'step "(?P<step>[^"]+)"(?: in (?P<took>[0-9.]+\s?m?s))?')


def run_with_progress(command: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run the materialization with its whole output going to `log_path`, printing one line
    per step as it starts and ends."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        log_path.open("w") as log,
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        for line in process.stdout:
            log.write(line)
            if (event := STEP_EVENT.search(line)) is None:
                continue
            step = STEP_NAME.search(event["text"])
            name = step["step"] if step else event["text"]
            elapsed = f"{time.monotonic() - started:6.1f}s"
            if event["event"] == "STEP_START":
                print(f"  {elapsed}  {name} ...", flush=True)
            elif event["event"] == "STEP_SUCCESS":
                took = f" in {step['took']}" if step and step["took"] else ""
                print(f"  {elapsed}  {name} done{took}", flush=True)
            else:
                print(f"  {elapsed}  {name}: {event['event']} {event['text'][:200]}", flush=True)
    return process.returncode


def write_charts(database_url: str, first: dt.date, last: dt.date, folder: Path) -> list[Path]:
    """The warehouse run's two charts of the range, as PNG files (the README shows them)."""
    from carbon_assets.warehouse.charts import gb_fuel_mix, intensity_heatmap

    query = sqlalchemy.text(
        "SELECT * FROM carbon_data.carbon_intensity_daily"
        " WHERE date_recorded BETWEEN :first AND :last"
    )
    with sqlalchemy.create_engine(database_url).connect() as connection:
        daily = pd.read_sql(query, connection, params={"first": first, "last": last})
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("intensity_heatmap", intensity_heatmap), ("gb_fuel_mix", gb_fuel_mix)):
        path = folder / f"{name}.png"
        path.write_bytes(draw(daily))
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    from carbon_assets.emulator import EmulatorConfig, start_emulator
    from carbon_assets.warehouse.resource import resolve_warehouse_url
    from carbon_assets.warehouse.secrets import describe_error, mask_url

    first, last = dt.date.fromisoformat(args.first), dt.date.fromisoformat(args.last)
    try:
        env = prepare_environment()
        data_dir = Path(env[settings.DATA_DIR])
        database_url = resolve_warehouse_url(env.get(settings.DATABASE_URL), data_dir)
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        urls = (os.environ.get(settings.DATABASE_URL), os.environ.get("DAGSTER_POSTGRES_URL"))
        print(f"demo failed: {describe_error(error, *urls)}", file=sys.stderr)
        return 1
    config = EmulatorConfig(
        seed=args.seed, latency_min=0.2, latency_max=2.0, latency_scale=args.latency_scale
    )
    with start_emulator(config) as emulator:
        env[settings.API_BASE_URL] = emulator.base_url
        print(f"API emulator:   {emulator.base_url} (seed {args.seed})")
        print(f"Warehouse:      {mask_url(database_url)}")
        print(f"Lake:           {data_dir}")
        instance = mask_url(env["DAGSTER_POSTGRES_URL"])
        print(f"Dagster home:   {env['DAGSTER_HOME']} (instance on {instance})")
        command = [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "carbon_assets.definitions",
            "--select",
            "*",
            "--partition-range",
            f"{first}...{last}",
        ]
        log_path = data_dir / "demo.log"
        print(f"Running:        {' '.join(command[1:])}")
        print(f"Full log:       {log_path}", flush=True)
        returncode = run_with_progress(command, env, log_path)
        print(f"Emulator served {emulator.stats()['requests_total']} requests")
    if returncode != 0:
        print(f"The run failed (exit {returncode}); the full log is {log_path}", file=sys.stderr)
        return returncode
    print("\nRows per layer for", f"{first}...{last}:")
    for layer, count in layer_counts(data_dir, first, last, database_url).items():
        print(f"  {layer:<24} {count:>9,}")
    print(f"\nSample of carbon_data.carbon_intensity_daily on {first}:")
    print(warehouse_sample(database_url, first).to_string(index=False))
    charts = write_charts(database_url, first, last, data_dir / "exports")
    print("\nCharts of the month: " + ", ".join(str(path) for path in charts))
    print("\n`make dev` opens these results in the Dagster UI at http://127.0.0.1:3000")
    return 0
