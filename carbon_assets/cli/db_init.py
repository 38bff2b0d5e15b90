"""`carbon-assets db-init`: apply the SQL schema to the warehouse (idempotent)."""

from __future__ import annotations

import argparse
import os
import sys

from carbon_assets import settings
from carbon_assets.postgres.secrets import describe_error, mask_url
from carbon_assets.warehouse.migrations import apply_schema, discover_migrations
from carbon_assets.warehouse.resource import create_warehouse_engine, resolve_warehouse_url

URL_SOURCE = f"--database-url (or ${settings.DATABASE_URL})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `carbon-assets db-init`."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get(settings.DATABASE_URL) or None,
        help="warehouse URL (default: $CARBON_DATABASE_URL; if unset, the embedded PostgreSQL "
        "under --data-dir, database 'carbon')",
    )
    parser.add_argument(
        "--data-dir",
        default=settings.data_dir(),
        help="data directory holding the embedded PostgreSQL (default: $CARBON_DATA_DIR or ./data)",
    )


def run(args: argparse.Namespace) -> int:
    """Apply the schema in sql/ and say which versions were applied, and where."""
    url: str | None = None
    try:
        url = resolve_warehouse_url(args.database_url, args.data_dir, URL_SOURCE)
        applied = apply_schema(create_warehouse_engine(url))
        latest = discover_migrations()[-1].version
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        print(f"db-init failed: {describe_error(error, url or args.database_url)}", file=sys.stderr)
        return 1
    if applied:
        print(f"Applied {', '.join(applied)} to {mask_url(url)}")
    else:
        print(f"Schema is up to date (version {latest}) at {mask_url(url)}")
    return 0
