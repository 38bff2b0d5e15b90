"""The environments `carbon-assets dev` and `carbon-assets demo` run Dagster in.

Two stacks, each a lake, a warehouse and a Dagster instance, never mixed:

* the real one: the lake CARBON_LAKE_URL (else CARBON_DATA_DIR, else ./data), the warehouse
  CARBON_DATABASE_URL (else the embedded server's `carbon` database), DAGSTER_HOME
  ./.dagster_home and the instance DAGSTER_POSTGRES_URL (else the `dagster` database on the
  warehouse's server);
* the demo's, whatever the environment says: the lake {CARBON_DATA_DIR}/demo, the databases
  `carbon_demo` and `dagster_demo` on the embedded server (the one under
  {CARBON_DATA_DIR}/postgres, which serves the real databases too) and DAGSTER_HOME
  ./.dagster_home/demo. The demo empties all three each time it starts (demo.py).

Each DAGSTER_HOME has a lock file that the stack running on it holds (instance_lock), so two
daemons never share an instance.

Both URLs are parsed before anything connects with them, so a malformed one is refused with a
message that does not echo it (the callers print it as one line).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy
from dotenv import dotenv_values, load_dotenv

from carbon_assets import settings
from carbon_assets.postgres.secrets import parse_database_url

DAGSTER_DATABASE = "dagster"
EVENT_BATCH_SIZE, DEFAULT_EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE", "100"
DAGSTER_POSTGRES_URL = "DAGSTER_POSTGRES_URL"
DAGSTER_HOME = "DAGSTER_HOME"
HOME_FOLDER = ".dagster_home"

# The demo's stack: its lake under CARBON_DATA_DIR, its home under .dagster_home.
DEMO_LAKE_FOLDER = "demo"
DEMO_HOME_FOLDER = "demo"
DEMO_WAREHOUSE_DATABASE = "carbon_demo"
DEMO_INSTANCE_DATABASE = "dagster_demo"
# Set by the demo from the project folder, never taken from the environment or .env.
DEMO_OWNED = (settings.LAKE_URL, settings.DATABASE_URL, DAGSTER_POSTGRES_URL, DAGSTER_HOME)

LOCK_FILE = "carbon-assets.lock"
# A .env entry that holds a secret: its key says so, or its value holds a URL's password or a
# key=value pair whose key says so (CARBON_SPARK_CONF, a Spark Connect URL's ;token=).
SECRET_WORD = re.compile(r"password|secret|token", re.IGNORECASE)
SECRET_PAIR = re.compile(r"(password|secret|token)[^=;\s]*=\s*[^;\s]", re.IGNORECASE)


class InstanceInUse(RuntimeError):
    """Another process holds the instance lock of a DAGSTER_HOME; says which."""


def env_file_warning(path: Path) -> str | None:
    """One line when the .env at `path` holds a secret and others than its owner can read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    entries = dotenv_values(path).items()
    keys = [key for key, value in entries if value and _holds_secret(key, value)]
    if not keys:
        return None
    return (
        f"warning: {path} holds a password or secret ({', '.join(keys)}) and is readable by "
        f"others (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
    )


def _holds_secret(key: str, value: str) -> bool:
    if SECRET_WORD.search(key) or SECRET_PAIR.search(value):
        return True
    try:
        return urlsplit(value.strip()).password is not None
    except ValueError:
        return False


def project_environment(project_dir: Path | None = None, *, demo: bool = False) -> list[str]:
    """Read .env (what is set already wins) and set, in os.environ, where the stack's lake and
    DAGSTER_HOME are; nothing connects yet. Returns the variables the demo set aside (those of
    DEMO_OWNED that were set)."""
    project_dir = (project_dir or Path.cwd()).resolve()
    env_file = project_dir / ".env"
    if warning := env_file_warning(env_file):
        print(warning, file=sys.stderr)
    load_dotenv(env_file, override=False)
    default_data_dir = str(project_dir / settings.DEFAULT_DATA_DIR)
    data_dir = Path(os.environ.setdefault(settings.DATA_DIR, default_data_dir))
    # Absolute, so they name the same folders for Dagster, which `dev` starts elsewhere.
    os.environ[settings.DATA_DIR] = str(project_dir / data_dir)
    lake = os.environ.get(settings.LAKE_URL, "").strip()
    if lake and "://" not in lake:
        os.environ[settings.LAKE_URL] = str(project_dir / lake)
    # Dagster writes a range's per-day materialization events in batches instead of one
    # write each (docs/performance.md).
    os.environ.setdefault(EVENT_BATCH_SIZE, DEFAULT_EVENT_BATCH_SIZE)
    if not demo:
        os.environ.setdefault(DAGSTER_HOME, str(project_dir / HOME_FOLDER))
        return []
    set_aside = [name for name in DEMO_OWNED if os.environ.pop(name, "").strip()]
    os.environ[settings.LAKE_URL] = str(data_dir.resolve() / DEMO_LAKE_FOLDER)
    os.environ[DAGSTER_HOME] = str(project_dir / HOME_FOLDER / DEMO_HOME_FOLDER)
    return set_aside


def link_dagster_yaml(home: Path, project_dir: Path | None = None) -> None:
    """Create DAGSTER_HOME with its dagster.yaml a link to the project's."""
    project_dir = (project_dir or Path.cwd()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if link.is_symlink() and not link.exists():  # to a folder that has moved, or gone
        link.unlink()
    if not link.exists():
        link.symlink_to(project_dir / "dagster.yaml")


def instance_lock(home: Path, holder: str) -> int:
    """Lock the instance of DAGSTER_HOME `home` for this process; its open descriptor.

    The lock is a flock on `{home}/carbon-assets.lock` (0600, so only its owner can open it,
    and only an open descriptor can hold a flock), which holds the holder's pid and `holder`.
    The descriptor is inheritable, so a process that execs into another program (dev execs
    into Dagster) keeps the lock for the new program's life; the kernel releases it when that
    process ends, however it ends. Raises InstanceInUse naming the holder's pid.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a file made before, with a wider mode
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        found = _lock_holder(fd)
        os.close(fd)
        raise InstanceInUse(
            f"The Dagster instance of {home} is in use by {found or 'another process'}: "
            "stop it first (one stack per instance)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
    os.set_inheritable(fd, True)
    return fd


def _lock_holder(fd: int) -> str | None:
    """'pid 1234 (carbon-assets dev)' from the lock file; the holder writes it just after it
    locks, so an empty file is read again for a moment."""
    deadline = time.monotonic() + 2
    while True:
        pid, _, holder = os.pread(fd, 4096, 0).decode(errors="replace").strip().partition(" ")
        if pid.isdigit():
            return f"pid {pid}" + (f" ({holder})" if holder else "")
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def dagster_database_url(data_dir: str, database: str = DAGSTER_DATABASE) -> str:
    """A plain postgresql:// URL of the instance's database on the warehouse's server (the
    embedded one unless CARBON_DATABASE_URL is set), created when missing."""
    from carbon_assets.postgres.embedded import embedded_database_url

    warehouse_url = os.environ.get(settings.DATABASE_URL)
    if not warehouse_url:
        return embedded_database_url(data_dir, database, driver=None)
    url = parse_database_url(warehouse_url, settings.DATABASE_URL)
    engine = sqlalchemy.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": database},
            ).first()
            if not exists:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return url.set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def connect_environment(project_dir: Path | None = None, *, demo: bool = False) -> dict[str, str]:
    """After project_environment: create DAGSTER_HOME, set the database URLs (starting the
    embedded server when it serves them) and return the environment.

    Raises DatabaseUrlError for a malformed CARBON_DATABASE_URL or DAGSTER_POSTGRES_URL, and
    the driver's error when the server cannot be reached.
    """
    from carbon_assets.postgres.embedded import embedded_database_url

    link_dagster_yaml(Path(os.environ[DAGSTER_HOME]), project_dir)
    data_dir = os.environ[settings.DATA_DIR]
    if demo:
        os.environ[settings.DATABASE_URL] = embedded_database_url(
            data_dir, DEMO_WAREHOUSE_DATABASE, driver=None
        )
        os.environ[DAGSTER_POSTGRES_URL] = embedded_database_url(
            data_dir, DEMO_INSTANCE_DATABASE, driver=None
        )
    elif os.environ.get(DAGSTER_POSTGRES_URL):
        parse_database_url(os.environ[DAGSTER_POSTGRES_URL], DAGSTER_POSTGRES_URL)
    else:
        os.environ[DAGSTER_POSTGRES_URL] = dagster_database_url(data_dir)
    return dict(os.environ)


def prepare_environment(project_dir: Path | None = None, *, demo: bool = False) -> dict[str, str]:
    """project_environment then connect_environment: the stack's whole environment."""
    project_environment(project_dir, demo=demo)
    return connect_environment(project_dir, demo=demo)


def empty_demo_stack() -> None:
    """Empty the demo's lake, warehouse and instance (after project_environment(demo=True), with
    the demo's instance_lock held): the demo owns them and starts from nothing each time."""
    import psycopg2
    from psycopg2 import sql

    from carbon_assets.postgres.embedded import embedded_database_url

    lake = Path(os.environ[settings.LAKE_URL])
    if lake.exists():
        shutil.rmtree(lake)
    home = Path(os.environ[DAGSTER_HOME])
    for entry in home.iterdir() if home.is_dir() else ():
        if entry.name not in (LOCK_FILE, "dagster.yaml"):  # old runs' logs and artifacts
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    # This process has not used the two databases yet, so embedded_database_url creates them
    # again on its first call (it remembers only the databases it has seen).
    admin = embedded_database_url(os.environ[settings.DATA_DIR], "postgres", driver=None)
    connection = psycopg2.connect(admin)
    try:
        connection.autocommit = True  # DROP DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            for database in (DEMO_WAREHOUSE_DATABASE, DEMO_INSTANCE_DATABASE):
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
    finally:
        connection.close()
