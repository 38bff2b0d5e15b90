"""`carbon-assets db-url`: start the embedded PostgreSQL if needed and print a database URL.

The Makefile uses it to give Dagster's own instance storage (dagster-postgres, `postgres_url`)
a database on the embedded server:

    export DAGSTER_POSTGRES_URL=$(carbon-assets db-url --database dagster)

The URL names the unix-socket directory in `?host=` and has no password (the embedded server
trusts local connections, and only its owner can reach the socket), e.g.

    postgresql://postgres@/dagster?host=/work/main/data/postgres

By default it is the plain `postgresql://` form, which libpq, psql, psycopg2, SQLAlchemy and
dagster-postgres all accept. `--driver psycopg2` prints `postgresql+psycopg2://...` (SQLAlchemy's
explicit form) instead. Only the URL goes to stdout, so `$(...)` captures nothing else.

`--tcp` is for tools that want host:port (BI tools, R, notebooks): the server is opened on
127.0.0.1 to a read-only role with a generated password (embedded.open_tcp), e.g.

    postgresql://carbon_reader:PASSWORD@127.0.0.1:54321/carbon

The password is printed by the call that generates it; later calls print the URL with it
masked and name the 0600 pgpass file that holds it. `--tcp --close` closes the port, and so
does any restart of the server (`carbon-assets stop`).
"""

from __future__ import annotations

import argparse
import sys

from carbon_assets import settings
from carbon_assets.cli.local_stack import DEMO_WAREHOUSE_DATABASE
from carbon_assets.postgres.embedded import DEFAULT_DATABASE

WAREHOUSE_DATABASES = (DEFAULT_DATABASE, DEMO_WAREHOUSE_DATABASE)


def _port(text: str) -> int:
    if not text.isdigit() or not 1024 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1024-65535, got {text!r}")
    return int(text)


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
    parser.add_argument(
        "--tcp",
        action="store_true",
        help="open the server on 127.0.0.1 for tools that need host:port (a read-only role "
        "with a generated password; restarts the server) and print that URL",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help="with --tcp: the port (default: the one used before if free, else any free one)",
    )
    parser.add_argument("--close", action="store_true", help="with --tcp: close the TCP port again")


def run(args: argparse.Namespace) -> int:
    """Print the URL of `--database` on the embedded server (starting/creating as needed)."""
    from carbon_assets.postgres.embedded import close_tcp, embedded_database_url, open_tcp
    from carbon_assets.postgres.secrets import describe_error
    from carbon_assets.warehouse.migrations import apply_schema
    from carbon_assets.warehouse.resource import create_warehouse_engine

    if (args.close or args.port) and not args.tcp:
        print("db-url: --close and --port go with --tcp", file=sys.stderr)
        return 2
    try:
        if args.close:
            closed = close_tcp(args.data_dir)
            print(
                "Closed the TCP port of the embedded PostgreSQL"
                if closed
                else "The embedded PostgreSQL has no TCP port open"
            )
            return 0
        url = embedded_database_url(args.data_dir, args.database, driver=args.driver or None)
        if args.database in WAREHOUSE_DATABASES:
            # A warehouse nothing has loaded yet still answers the README's queries (with no
            # rows) instead of "relation carbon_data... does not exist".
            apply_schema(
                create_warehouse_engine(embedded_database_url(args.data_dir, args.database))
            )
        if args.tcp:
            access, generated = open_tcp(args.data_dir, args.port)
            url = access.url(args.database, args.driver or None, masked=not generated)
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        print(f"db-url failed: {describe_error(error)}", file=sys.stderr)
        return 1
    print(url)
    if args.tcp:
        said = "generated now and shown this once" if generated else "not shown again"
        print(
            f"TCP on 127.0.0.1:{access.port} for role {access.role} (read-only); the password "
            f"({said}) is in {access.passfile} (mode 0600, pgpass format: "
            f"PGPASSFILE={access.passfile} psql -h 127.0.0.1 -p {access.port} -U {access.role} "
            f"{args.database}). Close it with `carbon-assets db-url --tcp --close`.",
            file=sys.stderr,
        )
    return 0
