"""When the dbt models were last built whole, against when a warehouse day was last loaded
(carbon_data.analytics_builds and carbon_data.loaded_days, sql/005_load_bookkeeping.sql): a
backfill whose loads all left their tables alone need not build the models again."""

from __future__ import annotations

import datetime as dt

import sqlalchemy

LAST_BUILD = "SELECT max(started_at) FROM carbon_data.analytics_builds"
LAST_LOAD = "SELECT max(loaded_at) FROM carbon_data.loaded_days"


def database_now(engine: sqlalchemy.Engine) -> dt.datetime:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()


def record_build(engine: sqlalchemy.Engine, started_at: dt.datetime) -> None:
    """A build of every model that started at `started_at` (the database's clock) succeeded."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO carbon_data.analytics_builds (started_at) VALUES (%s)", (started_at,)
        )


def models_current(engine: sqlalchemy.Engine) -> bool:
    """Whether the models were last built whole after the last load that changed a table
    (False when either was never recorded)."""
    with engine.connect() as connection:
        built = connection.exec_driver_sql(LAST_BUILD).scalar_one()
        loaded = connection.exec_driver_sql(LAST_LOAD).scalar_one()
    return built is not None and loaded is not None and loaded < built
