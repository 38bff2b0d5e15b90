"""A throw-away database on the PostgreSQL service, dropped when the benchmark ends."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg2

from bench.bench_warehouse_load import ADMIN_DSN


def _admin(admin_dsn: str):
    connection = psycopg2.connect(admin_dsn)
    connection.autocommit = True
    return connection


@contextlib.contextmanager
def scratch_database(admin_dsn: str = ADMIN_DSN, prefix: str = "carbon_bench") -> Iterator[str]:
    """Yield a CARBON_DATABASE_URL-style URL of a new, empty database; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin(admin_dsn)
    params = admin.get_dsn_parameters()
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    host, port, user = (
        params.get("host", "127.0.0.1"),
        params.get("port", "5432"),
        params.get("user", "postgres"),
    )
    try:
        yield f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
    finally:
        from carbon_assets.warehouse.resource import dispose_engines

        dispose_engines()
        admin = _admin(admin_dsn)
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
