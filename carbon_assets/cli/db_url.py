"""`carbon-assets db-url`: start the embedded PostgreSQL if needed and print a database URL.

The Makefile uses it to give Dagster's own instance storage (dagster-postgres, `postgres_url`)
a database on the embedded server:

    export DAGSTER_POSTGRES_URL=$(carbon-assets db-url --database dagster)

The URL names the unix-socket directory in `?host=` and has no password (the embedded server
trusts local connections), e.g.

    postgresql://postgres@/dagster?host=/work/main/data/postgres

By default it is the plain `postgresql://` form, which libpq, psql, psycopg2, SQLAlchemy and
dagster-postgres all accept. `--driver psycopg2` prints `postgresql+psycopg2://...` (SQLAlchemy's
explicit form) instead. Only the URL goes to stdout, so `$(...)` captures nothing else.
"""

from __future__ import annotations

import argparse
import sys

from carbon_assets import settings
from carbon_assets.warehouse.embedded import DEFAULT_DATABASE, embedded_database_url
from carbon_assets.warehouse.secrets import describe_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `carbon-assets db-url`."""
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help=f"database to print the URL of, created if missing (default: {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--data-dir",
        default=settings.data_dir(),
        help="data directory holding the embedded PostgreSQL (default: $CARBON_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--driver",
        default=None,
        help="SQLAlchemy driver to put in the scheme, e.g. psycopg2 -> postgresql+psycopg2:// "
        "(default: none, plain postgresql://)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the URL of `--database` on the embedded server (starting/creating as needed)."""
    try:
        url = embedded_database_url(args.data_dir, args.database, driver=args.driver or None)
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        print(f"db-url failed: {describe_error(error)}", file=sys.stderr)
        return 1
    print(url)
    return 0
