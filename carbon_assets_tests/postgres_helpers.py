"""Real PostgreSQL for tests: throw-away databases on the 5432 service and one embedded server.

Every test that touches PostgreSQL gets its own database (dropped WITH (FORCE) afterwards) on
the service at 127.0.0.1:5432 or on an embedded pgserver shared by the session.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import sqlalchemy
from sqlalchemy.pool import NullPool

from carbon_assets.postgres.embedded import (
    embedded_database_url,
    embedded_server,
    stop_embedded_server,
)
from carbon_assets.warehouse.resource import dispose_engines, sqlalchemy_url

SERVICE_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SERVERS = ("service", "embedded")


_embedded_dirs: dict[str, Path] = {}


def server_data_dir(prefix: str) -> Path:
    """A fresh data directory for an embedded server, directly under the system temp dir.

    Not pytest's tmp_path: run as root, PostgreSQL runs as an unprivileged OS user that gets
    traversal of each parent folder through an ACL entry, and any pytest session (another one
    running in parallel, say) chmods /tmp/pytest-of-<user> to 0700, which resets the ACL's
    mask and makes a server living below it crash with "Permission denied".
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


def discard_server(data_dir: Path) -> None:
    """Stop the embedded server of `data_dir` and delete its files."""
    dispose_engines()
    stop_embedded_server(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


def shared_embedded_dir() -> Path:
    """One embedded server per test session, whichever module asks first; stopped at exit."""
    if "dir" not in _embedded_dirs:
        data_dir = server_data_dir("carbon-test-pg-")
        embedded_server(data_dir)
        atexit.register(discard_server, data_dir)  # in case no fixture teardown runs
        _embedded_dirs["dir"] = data_dir
    return _embedded_dirs["dir"]


def admin_dsn(server: str, data_dir: Path | None) -> str:
    """A libpq connection string for the maintenance database of `server`."""
    if server == "service":
        return SERVICE_ADMIN_DSN
    return embedded_database_url(data_dir, "postgres", driver=None)


def create_database(
    server: str, data_dir: Path | None, owner: str | None = None
) -> tuple[str, str]:
    """Create carbon_test_<random> on `server`; return (name, SQLAlchemy URL)."""
    name = f"carbon_test_{uuid.uuid4().hex[:12]}"
    if server == "embedded":
        return name, embedded_database_url(data_dir, name)
    admin_sql(server, data_dir, f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))
    return name, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


def drop_database(server: str, data_dir: Path | None, name: str) -> None:
    dispose_engines()
    admin_sql(server, data_dir, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def admin_sql(
    server: str, data_dir: Path | None, statement: str, params: tuple = ()
) -> list[tuple]:
    """Run one statement in autocommit mode on the maintenance database; return its rows."""
    connection = psycopg2.connect(admin_dsn(server, data_dir))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query on `url`, through a fresh connection (not the cached engines)."""
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(statement, params or None)]
    finally:
        engine.dispose()


@contextlib.contextmanager
def role_with_password() -> Iterator[tuple[str, str]]:
    """A role with a password on the 5432 service (trust auth accepts any password; what
    matters is that it is in the URL) and a database it owns: yields (url, password)."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"carbon_pw_{suffix}", f"S3cret-{suffix}"
    admin_sql("service", None, f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
    try:
        name, _ = create_database("service", None, owner=role)
        try:
            yield f"postgresql://{role}:{password}@127.0.0.1:5432/{name}", password
        finally:
            drop_database("service", None, name)
    finally:
        admin_sql("service", None, f"DROP ROLE IF EXISTS {role}")


# --- another local user ----------------------------------------------------------------------

OTHER_USER = "nobody"

# Run as OTHER_USER: for each path argument, what that user could do with it, as JSON.
_ATTEMPTS = r"""
import json, os, socket, sys
outcomes = {}
for path in sys.argv[1:]:
    if path.endswith(".s.PGSQL.5432"):
        attempts = {"connect": lambda p: socket.socket(socket.AF_UNIX).connect(p)}
    else:
        attempts = {"list": os.listdir, "enter": lambda p: os.stat(os.path.join(p, "."))}
    outcomes[path] = {}
    for name, attempt in attempts.items():
        try:
            attempt(path)
            outcomes[path][name] = "ok"
        except OSError as error:
            outcomes[path][name] = type(error).__name__
print(json.dumps(outcomes))
"""


def attempts_as_other_user(*paths: Path) -> dict[str, dict[str, str]]:
    """What OTHER_USER can do with each path: {path: {"connect": "ok" | error name}} for a
    PostgreSQL socket, {path: {"list": ..., "enter": ...}} for a folder.

    Skips the calling test (with the reason) when this process cannot switch users.
    """
    import json
    import os
    import subprocess

    import pytest

    if os.geteuid() != 0:
        pytest.skip(f"acting as user {OTHER_USER} needs root")
    runuser, python = shutil.which("runuser"), shutil.which("python3", path="/usr/bin:/bin")
    if runuser is None or python is None:
        pytest.skip("acting as another user needs runuser and a system python3")
    completed = subprocess.run(
        [runuser, "-u", OTHER_USER, "--", python, "-I", "-S", "-c", _ATTEMPTS, *map(str, paths)],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(completed.stdout)
