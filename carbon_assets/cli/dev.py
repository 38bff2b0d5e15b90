"""`carbon-assets dev`: `dagster dev` with the instance on PostgreSQL (see local_stack)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from carbon_assets.cli.local_stack import prepare_environment
from carbon_assets.settings import DATABASE_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")


def run(args: argparse.Namespace) -> int:
    from carbon_assets.warehouse.secrets import describe_error, mask_url

    try:
        env = prepare_environment()
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        urls = (os.environ.get(DATABASE_URL), os.environ.get("DAGSTER_POSTGRES_URL"))
        print(f"dev failed: {describe_error(error, *urls)}", file=sys.stderr)
        return 1
    instance = mask_url(env["DAGSTER_POSTGRES_URL"])
    print(f"Dagster instance on {instance}; UI on http://{args.host}:{args.port}")
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execve(
        dagster,
        [dagster, "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)],
        env,
    )
