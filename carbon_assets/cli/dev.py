"""`carbon-assets dev`: `dagster dev` with the instance on PostgreSQL (see local_stack)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from carbon_assets.cli.local_stack import prepare_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")


def run(args: argparse.Namespace) -> int:
    from carbon_assets.warehouse.secrets import mask_url

    env = prepare_environment()
    print(
        f"Dagster instance on {mask_url(env['DAGSTER_POSTGRES_URL'])}; UI on http://{args.host}:{args.port}"
    )
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execve(
        dagster,
        [dagster, "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)],
        env,
    )
