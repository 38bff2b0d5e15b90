"""The warehouse's PostgreSQL as a resource: where it is, pooled engines with the schema applied.

Where: CARBON_DATABASE_URL when it is set, otherwise the embedded PostgreSQL under the data
directory (embedded.py). The schema is the SQL files' (migrations.py), applied once per process
per database before the first use.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy
from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy.engine import make_url

from carbon_assets import settings
from carbon_assets.warehouse.embedded import DEFAULT_DATABASE, embedded_database_url
from carbon_assets.warehouse.migrations import apply_schema
from carbon_assets.warehouse.secrets import mask_url


class WarehouseDatabase(ConfigurableResource):
    """The warehouse's PostgreSQL: CARBON_DATABASE_URL, or the embedded server under data_dir."""

    database_url: str | None = Field(
        default=None,
        description=f"the warehouse; unset: ${settings.DATABASE_URL}, else the embedded server",
    )
    data_dir: str | None = Field(
        default=None,
        description=f"the embedded server's home; unset: ${settings.DATA_DIR}, else ./data",
    )

    def configured_url(self) -> str | None:
        """The URL asked for (this resource's, else CARBON_DATABASE_URL); None: embedded."""
        return self.database_url or settings.database_url()

    def url(self) -> str:
        """The URL to connect to, starting the embedded server first if it is the one."""
        return resolve_warehouse_url(self.configured_url(), self.data_dir or settings.data_dir())

    def engine(self) -> sqlalchemy.Engine:
        """A pooled, pre-pinging engine with the schema from sql/ applied."""
        engine = create_warehouse_engine(self.url())
        ensure_schema(engine)
        return engine


def resolve_warehouse_url(database_url: str | None, data_dir: str | Path) -> str:
    """The warehouse URL: `database_url` (CARBON_DATABASE_URL) if given, else the embedded
    server's `carbon` database (started and created if needed)."""
    if database_url and database_url.strip():
        return database_url.strip()
    return embedded_database_url(data_dir, DEFAULT_DATABASE)


_engines: dict[str, sqlalchemy.Engine] = {}
_schema_applied: set[str] = set()
_engines_lock = threading.Lock()


def sqlalchemy_url(url: str) -> str:
    """`url` with the psycopg2 driver made explicit (postgres:// and postgresql:// accepted).

    The warehouse loader COPYs through psycopg2, so other drivers are refused early.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    elif parsed.drivername != "postgresql+psycopg2":
        raise ValueError(
            f"Unsupported database URL scheme {parsed.drivername!r} in {mask_url(url)}: "
            "use postgresql:// or postgresql+psycopg2://"
        )
    return parsed.render_as_string(hide_password=False)


def create_warehouse_engine(url: str) -> sqlalchemy.Engine:
    """A SQLAlchemy engine for `url`, one per URL per process.

    pool_pre_ping tests each pooled connection before use, so a PostgreSQL restart (or an
    administrator terminating our sessions) between two loads costs a reconnect, not a failure.
    """
    key = sqlalchemy_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sqlalchemy.create_engine(key, pool_pre_ping=True)
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close the pooled connections of every cached engine and forget them (for tests, and
    before dropping a database)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _schema_applied.clear()


def ensure_schema(engine: sqlalchemy.Engine) -> list[str]:
    """apply_schema once per process per database: later calls do not even query the ledger."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _schema_applied:
        return []
    applied = apply_schema(engine)
    _schema_applied.add(key)
    return applied
