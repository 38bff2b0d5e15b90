"""The warehouse's PostgreSQL as a resource: where it is, pooled engines with the schema applied.

Where: CARBON_DATABASE_URL when it is set (parsed before anything connects, so a malformed URL
is refused without being echoed), otherwise the embedded PostgreSQL under the data directory
(carbon_assets/postgres/embedded.py). The schema is the SQL files' (migrations.py), applied
once per process per database before the first use.

Every session sets a lock_timeout, so a load that waits for a lock gives up with an error
instead of queueing for ever, and, on PostgreSQL 14 and later, a
client_connection_check_interval, so the server ends the session of a client that was killed
while its statement waited (its locks and its place in the lock queue go with it).
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.postgres.embedded import DEFAULT_DATABASE, embedded_database_url
from carbon_assets.postgres.secrets import parse_database_url
from carbon_assets.warehouse.migrations import apply_schema

# Long enough for a concurrent load of the table (they queue on its lock) to finish; short
# enough that a load stuck behind a forgotten transaction fails and says so.
DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0
# How often the server checks, while a statement runs or waits, that its client is still there.
CLIENT_CONNECTION_CHECK_SECONDS = 5.0


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
    lock_timeout_seconds: float = Field(
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        gt=0,
        description="how long a statement may wait for a lock before it fails (lock_timeout)",
    )

    def configured_url(self) -> str | None:
        """The URL asked for (this resource's, else CARBON_DATABASE_URL); None: embedded."""
        return self.database_url or settings.database_url()

    def url(self) -> str:
        """The URL to connect to, starting the embedded server first if it is the one."""
        return resolve_warehouse_url(self.configured_url(), self.data_dir or settings.data_dir())

    def engine(self) -> sqlalchemy.Engine:
        """A pooled, pre-pinging engine with the schema from sql/ applied."""
        engine = create_warehouse_engine(self.url(), self.lock_timeout_seconds)
        ensure_schema(engine)
        return engine


def resolve_warehouse_url(
    database_url: str | None, data_dir: str | Path, source: str = settings.DATABASE_URL
) -> str:
    """The warehouse URL: `database_url` (CARBON_DATABASE_URL) if given, else the embedded
    server's `carbon` database (started and created if needed).

    A given URL is parsed first: DatabaseUrlError (which never quotes it) when it cannot be
    read unambiguously; `source` names it in that message.
    """
    if database_url and database_url.strip():
        parse_database_url(database_url, source)
        return database_url.strip()
    return embedded_database_url(data_dir, DEFAULT_DATABASE)


_engines: dict[tuple[str, float], sqlalchemy.Engine] = {}
_schema_applied: set[str] = set()
_engines_lock = threading.Lock()


def sqlalchemy_url(url: str, source: str = "the database URL") -> str:
    """`url` with the psycopg2 driver made explicit (postgres:// and postgresql:// accepted).

    The warehouse loader COPYs through psycopg2, so other drivers are refused early, as is a
    URL that cannot be parsed unambiguously (DatabaseUrlError, without quoting it).
    """
    parsed = parse_database_url(url, source)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def session_settings(lock_timeout_seconds: float, server_version: int) -> dict[str, str]:
    """The settings every warehouse session starts with, for a server of `server_version`
    (libpq's number, 150020 for 15.2)."""
    values = {"lock_timeout": f"{max(1, round(lock_timeout_seconds * 1000))}ms"}
    if server_version >= 140000:  # the setting first appeared in PostgreSQL 14
        check_ms = round(CLIENT_CONNECTION_CHECK_SECONDS * 1000)
        values["client_connection_check_interval"] = f"{check_ms}ms"
    return values


def _apply_session_settings(lock_timeout_seconds: float):
    """A `connect` listener that sets session_settings on each new DBAPI connection."""

    def on_connect(dbapi_connection, _connection_record) -> None:
        values = session_settings(lock_timeout_seconds, dbapi_connection.server_version)
        with dbapi_connection.cursor() as cursor:
            for name, value in values.items():
                cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        # SET is transactional: committed now, so the pool's rollback-on-return keeps it.
        dbapi_connection.commit()

    return on_connect


def create_warehouse_engine(
    url: str, lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
) -> sqlalchemy.Engine:
    """A SQLAlchemy engine for `url`, one per URL (and lock timeout) per process.

    pool_pre_ping tests each pooled connection before use, so a PostgreSQL restart (or an
    administrator terminating our sessions) between two loads costs a reconnect, not a failure.
    Each session gets session_settings (lock_timeout, client_connection_check_interval).
    """
    key = sqlalchemy_url(url)
    with _engines_lock:
        engine = _engines.get((key, lock_timeout_seconds))
        if engine is None:
            engine = sqlalchemy.create_engine(key, pool_pre_ping=True)
            on_connect = _apply_session_settings(lock_timeout_seconds)
            sqlalchemy.event.listen(engine, "connect", on_connect)
            _engines[(key, lock_timeout_seconds)] = engine
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
