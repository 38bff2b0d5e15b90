"""`carbon-assets demo`: January 2024 through all four assets, fully offline.

Starts the API emulator and the embedded PostgreSQL, materializes every asset for the range
in one run with the `dagster asset materialize` CLI (on the same Dagster instance `make dev`
shows), then prints the rows per layer and a sample of the warehouse table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
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
        warehouse_rows = connection.execute(
            sqlalchemy.text(
                "SELECT count(*) FROM carbon_data.carbon_intensity_daily "
                "WHERE date_recorded BETWEEN :first AND :last"
            ),
            {"first": first, "last": last},
        ).scalar_one()
    return {
        "bronze day files": sum(doc is not None for doc in documents),
        "bronze region-records": sum(doc["region_records"] for doc in documents if doc),
        "silver rows": len(read_parquet_table(data_dir / "silver", days)),
        "gold rows": len(read_parquet_table(data_dir / "gold", days)),
        "warehouse rows": warehouse_rows,
    }


def warehouse_sample(database_url: str, first: dt.date, rows: int = 10) -> pd.DataFrame:
    query = sqlalchemy.text(
        "SELECT regionid, date_recorded, shortname, intensity_avg, index_mode, fuel_gas, "
        "fuel_wind, half_hours FROM carbon_data.carbon_intensity_daily "
        "WHERE date_recorded = :first ORDER BY regionid LIMIT :rows"
    )
    with sqlalchemy.create_engine(database_url).connect() as connection:
        return pd.read_sql(query, connection, params={"first": first, "rows": rows})


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
        print("Running:", " ".join(command), flush=True)
        completed = subprocess.run(command, env=env, check=False)
        print(f"Emulator served {emulator.stats()['requests_total']} requests")
    if completed.returncode != 0:
        print(f"The run failed (exit {completed.returncode}); see the log above.", file=sys.stderr)
        return completed.returncode
    print("\nRows per layer for", f"{first}...{last}:")
    for layer, count in layer_counts(data_dir, first, last, database_url).items():
        print(f"  {layer:<22} {count:>9,}")
    print(f"\nSample of carbon_data.carbon_intensity_daily on {first}:")
    print(warehouse_sample(database_url, first).to_string(index=False))
    print("\n`make dev` opens these results in the Dagster UI at http://127.0.0.1:3000")
    return 0
