"""The environment `make dev` and `make demo` run Dagster in.

DAGSTER_HOME is ./.dagster_home, whose dagster.yaml links to the repository's, and Dagster's
instance storage is the `dagster` database on the warehouse's PostgreSQL server: the embedded
one by default, or the server of CARBON_DATABASE_URL.

Both URLs are parsed before anything connects with them, so a malformed one is refused with a
message that does not echo it (the callers print it as one line).
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy
from dotenv import load_dotenv

from carbon_assets import settings
from carbon_assets.warehouse.secrets import parse_database_url

DAGSTER_DATABASE = "dagster"
EVENT_BATCH_SIZE, DEFAULT_EVENT_BATCH_SIZE = "DAGSTER_EVENT_BATCH_SIZE", "100"
DAGSTER_POSTGRES_URL = "DAGSTER_POSTGRES_URL"


def dagster_database_url(data_dir: str) -> str:
    """A plain postgresql:// URL of the `dagster` database, created when missing."""
    from carbon_assets.warehouse.embedded import embedded_database_url

    warehouse_url = os.environ.get(settings.DATABASE_URL)
    if not warehouse_url:
        return embedded_database_url(data_dir, DAGSTER_DATABASE, driver=None)
    url = parse_database_url(warehouse_url, settings.DATABASE_URL)
    engine = sqlalchemy.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": DAGSTER_DATABASE},
            ).first()
            if not exists:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{DAGSTER_DATABASE}"'))
    finally:
        engine.dispose()
    return url.set(drivername="postgresql", database=DAGSTER_DATABASE).render_as_string(
        hide_password=False
    )


def prepare_environment(project_dir: Path | None = None) -> dict[str, str]:
    """Set DAGSTER_HOME and DAGSTER_POSTGRES_URL (unless given) and return the environment.

    Raises DatabaseUrlError for a malformed CARBON_DATABASE_URL or DAGSTER_POSTGRES_URL, and
    the driver's error when the server cannot be reached.
    """
    project_dir = (project_dir or Path.cwd()).resolve()
    load_dotenv(project_dir / ".env", override=False)  # what is set already wins
    os.environ.setdefault(settings.DATA_DIR, str(project_dir / settings.DEFAULT_DATA_DIR))
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_dir / ".dagster_home")))
    # Dagster writes a range's per-day materialization events in batches instead of one
    # write each (README, Scale).
    os.environ.setdefault(EVENT_BATCH_SIZE, DEFAULT_EVENT_BATCH_SIZE)
    home.mkdir(parents=True, exist_ok=True)
    link = home / "dagster.yaml"
    if not link.exists():
        link.symlink_to(project_dir / "dagster.yaml")
    if os.environ.get(DAGSTER_POSTGRES_URL):
        parse_database_url(os.environ[DAGSTER_POSTGRES_URL], DAGSTER_POSTGRES_URL)
    else:
        os.environ[DAGSTER_POSTGRES_URL] = dagster_database_url(os.environ[settings.DATA_DIR])
    return dict(os.environ)
