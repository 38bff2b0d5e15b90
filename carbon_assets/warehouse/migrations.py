"""The warehouse schema: the numbered SQL files in `sql/` (shipped inside this package; the
repository's top-level `sql/` points here) and the runner that applies the ones not yet
recorded in `carbon_data.schema_migrations`. See sql/README.md."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

logger = logging.getLogger(__name__)

# Package data, so an installed wheel applies the same files as a checkout.
SQL_DIR = Path(__file__).resolve().parent / "sql"

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
                "INSERT INTO carbon_data.schema_migrations (version, filename, checksum)"
                " VALUES (%s, %s, %s)",
                (migration.version, migration.path.name, migration.checksum),
            )
        logger.info("Applied sql/%s", migration.path.name)
        applied_now.append(migration.version)
    return applied_now
