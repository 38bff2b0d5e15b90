"""Shared fixtures: the API emulator over loopback, one Spark session, real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_assets_tests.postgres_helpers import (
    create_database,
    discard_server,
    drop_database,
    shared_embedded_dir,
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
    from carbon_assets.spark import default_spark_config, start_session

    session = start_session(default_spark_config(master="local[2]") | {"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def embedded_dir() -> Iterator[Path]:
    """The data folder of the session's embedded PostgreSQL, stopped and deleted at the end."""
    data_dir = shared_embedded_dir()
    yield data_dir
    discard_server(data_dir)


@pytest.fixture
def service_database_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL service at 127.0.0.1:5432, dropped afterwards."""
    name, url = create_database("service", None)
    yield url
    drop_database("service", None, name)


@pytest.fixture
def embedded_database_url(embedded_dir) -> Iterator[str]:
    """A fresh database on the session's embedded PostgreSQL, dropped afterwards."""
    name, url = create_database("embedded", embedded_dir)
    yield url
    drop_database("embedded", embedded_dir, name)
