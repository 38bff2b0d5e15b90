"""When the dbt models were last built whole and from which files, against when a warehouse day
was last loaded (carbon_data.analytics_builds and carbon_data.loaded_days,
sql/005_load_bookkeeping.sql): a backfill whose loads all left their tables alone, with the
models as they were, need not build them again."""

from __future__ import annotations

import datetime as dt

import sqlalchemy

LAST_BUILD = (
    "SELECT started_at, models_version FROM carbon_data.analytics_builds"
    " ORDER BY started_at DESC LIMIT 1"
)
LAST_LOAD = "SELECT max(loaded_at) FROM carbon_data.loaded_days"


def database_now(engine: sqlalchemy.Engine) -> dt.datetime:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()


def record_build(engine: sqlalchemy.Engine, started_at: dt.datetime, models_version: str) -> None:
    """A build of every model (project_hash `models_version`) that started at `started_at`
    (the database's clock) succeeded."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO carbon_data.analytics_builds (started_at, models_version) VALUES (%s, %s)",
            (started_at, models_version),
        )


def models_current(engine: sqlalchemy.Engine, models_version: str) -> bool:
    """Whether the models were last built whole, from `models_version`, after the last load
    that changed a table (False when either was never recorded)."""
    with engine.connect() as connection:
        build = connection.exec_driver_sql(LAST_BUILD).first()
        loaded = connection.exec_driver_sql(LAST_LOAD).scalar_one()
    if build is None or loaded is None:
        return False
    built, version = build
    return version == models_version and loaded < built
