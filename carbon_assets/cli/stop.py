"""`carbon-assets stop`: stop the embedded PostgreSQL of the data directory.

The server keeps running after `make dev` or `make demo` ends, so that the webserver, the
daemon, runs and later commands share it; this stops it (a fast shutdown: open sessions are
ended, nothing committed is lost). The next command that needs it starts it again.

While a `carbon-assets dev` (or demo) holds one of the project's Dagster instances
(local_stack.instance_lock), stopping the server under it would break it: stop refuses, naming
it, unless --force.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from carbon_assets import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `carbon-assets stop`."""
    parser.add_argument(
        "--data-dir",
        default=settings.data_dir(),
        help="data directory holding the embedded PostgreSQL (default: $CARBON_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--force", action="store_true", help="stop it even while `carbon-assets dev` uses it"
    )


def instance_homes() -> list[Path]:
    """The project's DAGSTER_HOMEs that exist: the real stack's and the demo's."""
    from carbon_assets.cli import local_stack

    project_home = Path.cwd() / local_stack.HOME_FOLDER
    homes = [
        Path(os.environ.get(local_stack.DAGSTER_HOME) or project_home),
        project_home / local_stack.DEMO_HOME_FOLDER,
    ]
    return [home for home in dict.fromkeys(homes) if (home / local_stack.LOCK_FILE).exists()]


def instance_in_use() -> str | None:
    """Why the server must not be stopped now (a stack holds its instance), or None."""
    from carbon_assets.cli import local_stack

    for home in instance_homes():
        try:
            os.close(local_stack.instance_lock(home, "carbon-assets stop"))
        except local_stack.InstanceInUse as error:
            return str(error)
    return None


def run(args: argparse.Namespace) -> int:
    """Stop the server and say so; 0 also when it was not running."""
    from carbon_assets.postgres.embedded import pgdata_of, stop_embedded_server
    from carbon_assets.postgres.secrets import describe_error

    if not args.force and (in_use := instance_in_use()):
        print(f"stop refused: {in_use} (or use --force)", file=sys.stderr)
        return 1
    try:
        stopped = stop_embedded_server(args.data_dir)
    except Exception as error:  # noqa: BLE001 - any failure: one line and exit code 1
        print(f"stop failed: {describe_error(error)}", file=sys.stderr)
        return 1
    where = pgdata_of(args.data_dir)
    print(f"Stopped the embedded PostgreSQL in {where}" if stopped else f"Not running: {where}")
    return 0
