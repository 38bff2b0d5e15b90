"""The locks that let runs on many machines take turns, as PostgreSQL advisory locks in the
warehouse (every run worker reaches it): the lake's API lock, for a lake that no two machines
share a disk for (an object store), and the models' build lock, so two `dbt build`s never
replace the same tables at once.

Each lock is a session-level advisory lock held by a connection of its own (never one from a
pool that could hand it to someone else), in autocommit, so no transaction stays open while
bronze fetches for minutes. The API lock's key is `api_lock_key(lake_url)`: two lakes in one
database do not block each other. The holder names itself in the session's application_name,
which is how a waiter names whom it waits for (pg_locks joined to pg_stat_activity).

A lock ends with its session: released when the block ends, and freed by PostgreSQL when the
holding process dies (a kill -9 closes its socket and ends the session), so no holder that is
gone can keep it. A holder whose machine vanishes is dropped after the TCP keepalives fail
(KEEPALIVES), not after the operating system's two hours. Conversely, a holder whose session
ends under it (a server restart, pg_terminate_backend) loses the lock without knowing; another
run may then fetch at the same time, which costs the API's patience, not data (day files are
written whole). It needs a direct session: a pooler in transaction mode (PgBouncer's default)
cannot hold a session lock.

No Dagster: the CLI, bronze, the models and the tests use it alike.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import sqlalchemy
from sqlalchemy.pool import NullPool

from carbon_assets.postgres.secrets import (
    DatabaseUrlError,
    describe_error,
    mask_secrets,
    parse_database_url,
)

# What a holder's application_name starts with; the rest is the holder (e.g. "run <run id>").
# Short, so that a run id (36 characters) fits in PostgreSQL's 63 bytes.
APPLICATION_PREFIX = "carbon-assets lock: "
APPLICATION_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names
# Mixed into the key, so the lock cannot be the key another application chose for its own.
KEY_NAMESPACE = b"carbon-assets api lock\n"
# The models' build lock: one key per warehouse database.
MODELS_BUILD_KEY_NAME = b"carbon-assets dbt build\n"
# Server-side TCP keepalives of the holding session (seconds, count): a holder whose machine
# vanished without closing its socket is dropped, and its lock freed, after about a minute.
KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}

logger = logging.getLogger(__name__)


class LockDatabase(Protocol):
    """What holds the lock: the warehouse's database resource, which every run reaches."""

    def url(self) -> str: ...


class LockError(RuntimeError):
    """A lock cannot be taken; the message says why and what to do, and never holds the
    database URL's password."""


class LockTimeout(LockError, TimeoutError):
    """Another holder kept the lock for longer than the wait allowed; names it."""


def normalized_lake_url(lake_url: str) -> str:
    """The lake URL the key is derived from: one lake, one string however it is written.

    An object-store URL (scheme://...) without trailing slashes; a local path (or file://
    URL) made absolute and resolved, so `./data/lake` and its absolute path are the same lake.
    """
    text = lake_url.strip()
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def api_lock_key(lake_url: str) -> int:
    """The advisory lock key of a lake: a signed 64-bit integer (PostgreSQL's bigint).

    The first 8 bytes, big-endian, of the SHA-256 of KEY_NAMESPACE followed by the normalized
    lake URL (normalized_lake_url). Stable across processes, machines and versions (Python's
    hash() is not); changing it would let a run of the old version and one of the new fetch at
    the same time, so it must not change.
    """
    digest = hashlib.sha256(KEY_NAMESPACE + normalized_lake_url(lake_url).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def application_name(holder: str) -> str:
    """The holding session's application_name: APPLICATION_PREFIX and `holder`, printable
    ASCII only (PostgreSQL would replace the rest), cut to 63 bytes."""
    text = APPLICATION_PREFIX + holder
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text[:APPLICATION_NAME_BYTES]


def models_build_key() -> int:
    """The advisory lock key of the models' build lock (a bigint, stable like api_lock_key)."""
    digest = hashlib.sha256(MODELS_BUILD_KEY_NAME).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def advisory_api_lock(
    database_url: str,
    lake_url: str,
    holder: str,
    timeout_seconds: float,
    poll_seconds: float = 1.0,
    on_wait: Callable[[str], None] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """Hold the lake's API lock for the block: one run at a time decides what to fetch and
    fetches it, on any machine that reaches the database at `database_url`.

    `holder` names this holder to waiters (e.g. "run <run id>"; empty: this pid and host).
    While another session holds the lock, tries again every `poll_seconds`, calls `on_wait`
    once with a message naming the holder, and after `timeout_seconds` raises LockTimeout
    naming it. LockError when the database cannot be reached. Messages name the lake, never
    the database URL.
    """
    key = api_lock_key(lake_url)
    what = (
        f"the lake's API lock ({mask_secrets(lake_url)}: PostgreSQL advisory lock {key} in "
        "the warehouse)"
    )
    return advisory_lock(database_url, key, what, holder, timeout_seconds, poll_seconds, on_wait)


def models_build_lock(
    database_url: str,
    holder: str,
    timeout_seconds: float,
    on_wait: Callable[[str], None] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """Hold the models' build lock for the block: one `dbt build` at a time replaces the
    tables of carbon_analytics (two at once fail with "relation ... already exists"). Waits and
    fails like advisory_api_lock."""
    key = models_build_key()
    what = f"the models' build lock (PostgreSQL advisory lock {key} in the warehouse)"
    return advisory_lock(database_url, key, what, holder, timeout_seconds, on_wait=on_wait)


@contextlib.contextmanager
def advisory_lock(
    database_url: str,
    key: int,
    what: str,
    holder: str,
    timeout_seconds: float,
    poll_seconds: float = 1.0,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the session-level advisory lock `key` (described to people as `what`) for the
    block, waiting for it as advisory_api_lock says."""
    holder = holder.strip() or f"pid {os.getpid()} on {socket.gethostname()}"
    engine = connection = None
    try:
        try:
            url = _psycopg2_url(database_url)
            # A connection of its own (NullPool), closed with the lock; a server that does not
            # answer fails the run rather than hanging it (unless the URL sets its own timeout).
            connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 30}
            engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            _start_session(connection, application_name(holder))
            _acquire(connection, key, what, timeout_seconds, poll_seconds, on_wait)
        except (sqlalchemy.exc.SQLAlchemyError, DatabaseUrlError) as error:
            raise LockError(
                f"Cannot take {what}: {describe_error(error, database_url)}; check "
                "CARBON_DATABASE_URL, then re-run"
            ) from None
        try:
            yield
        finally:
            _release(connection, key, what)
    finally:
        if connection is not None:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                connection.close()
        if engine is not None:
            engine.dispose()


def _psycopg2_url(database_url: str) -> sqlalchemy.URL:
    """The URL with the psycopg2 driver made explicit; DatabaseUrlError (never quoting the URL)
    when it cannot be read unambiguously."""
    parsed = parse_database_url(database_url, "CARBON_DATABASE_URL")
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def _start_session(connection: sqlalchemy.Connection, name: str) -> None:
    """Name the session after its holder, and keep the server from ending it while it holds
    the lock idle (idle_session_timeout) or keeping it long after its client vanished."""
    values = {"application_name": name, **{k: str(v) for k, v in KEEPALIVES.items()}}
    if connection.dialect.server_version_info >= (14,):  # the setting appeared in 14
        values["idle_session_timeout"] = "0"
    for setting, value in values.items():
        connection.exec_driver_sql("SELECT set_config(%s, %s, false)", (setting, value))


def _try_lock(connection: sqlalchemy.Connection, key: int) -> bool:
    return connection.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar_one()


def _acquire(
    connection: sqlalchemy.Connection,
    key: int,
    what: str,
    timeout_seconds: float,
    poll_seconds: float,
    on_wait: Callable[[str], None] | None,
) -> None:
    """Poll for the lock (a blocking pg_advisory_lock would queue with no way to say whom it
    waits for, and hold a statement open) until the deadline."""
    if _try_lock(connection, key):
        return
    if on_wait is not None:
        on_wait(
            f"Waiting for {what}, held by {_holder(connection, key)}; "
            f"giving up after {timeout_seconds:g} s"
        )
    deadline = time.monotonic() + timeout_seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(
                f"Gave up after {timeout_seconds:g} s waiting for {what}, held by "
                f"{_holder(connection, key)}: let that run end (or stop it), then re-run"
            )
        time.sleep(min(poll_seconds, left))
        if _try_lock(connection, key):
            return


def _release(connection: sqlalchemy.Connection, key: int, what: str) -> None:
    """Unlock; a session that has already ended took the lock with it, so nothing to do then."""
    try:
        released = connection.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,)).scalar()
    except sqlalchemy.exc.SQLAlchemyError as error:
        logger.warning(f"Lost {what} before the end: {describe_error(error)}")
        return
    if not released:
        logger.warning(f"Lost {what} before the end: its session no longer held it")


# Granted advisory locks on a bigint key are recorded as classid (high 32 bits), objid (low 32
# bits) and objsubid 1, in the current database.
_HOLDER = """
SELECT a.application_name, l.pid, coalesce(a.client_hostname, host(a.client_addr)),
       a.backend_start, a.query_start
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""


def _holder(connection: sqlalchemy.Connection, key: int) -> str:
    """Who holds the lock: the holder it named, its server pid, its client's address and since
    when (its last statement was the one that took the lock); for a session that is not ours,
    its application_name and when it connected."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    row = connection.exec_driver_sql(_HOLDER, (unsigned >> 32, unsigned & 0xFFFF_FFFF)).first()
    if row is None:
        return "a session that has just released it"
    name, pid, client, backend_start, query_start = row
    client = f" from {client}" if client else ""
    if name and name.startswith(APPLICATION_PREFIX):
        since = f", since {_utc(query_start)}" if query_start else ""
        return f"{name.removeprefix(APPLICATION_PREFIX)} (PostgreSQL pid {pid}{client}{since})"
    named = f"application_name {name!r}" if name else "no application_name"
    connected = f", connected since {_utc(backend_start)}" if backend_start else ""
    where = f"PostgreSQL pid {pid}{client}{connected}"
    return f"a session that is not a carbon-assets run ({named}, {where})"


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")
