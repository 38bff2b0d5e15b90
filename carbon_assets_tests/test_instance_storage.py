"""The repository's dagster.yaml: Dagster's instance in PostgreSQL, its event log writing
events over connections it keeps open rather than one new connection (or two) per event."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetMaterialization, DagsterInstance
from dagster_postgres import PostgresEventLogStorage

from carbon_assets.instance_storage import PooledPostgresEventLogStorage

REPO = Path(__file__).resolve().parents[1]
EVENTS = 60
DAGSTER_POSTGRES_STORAGE = """
storage:
  postgres:
    postgres_url:
      env: DAGSTER_POSTGRES_URL
"""


def sessions_opened(url: str) -> int:
    """Connections ever opened to the database of `url` (PostgreSQL's own count)."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
    # Another connection, so that this one's count (flushed when it closes) is in.
    connection.close()
    time.sleep(1.2)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,))
        (opened,) = cursor.fetchone()
    connection.close()
    return opened


def connections_for_events(home: Path, url: str) -> int:
    """New connections the instance of `home` opens to store EVENTS asset events."""
    instance = DagsterInstance.from_config(str(home))
    try:
        instance.report_runless_asset_event(AssetMaterialization("warm_up"))
        before = sessions_opened(url)
        for number in range(EVENTS):
            instance.report_runless_asset_event(
                AssetMaterialization("some_asset", partition=f"day-{number}")
            )
        # Our two connections of sessions_opened itself, counted in `after`.
        return sessions_opened(url) - before - 2
    finally:
        instance.dispose()


@pytest.fixture
def dagster_url(service_database_url, monkeypatch) -> str:
    url = service_database_url.replace("+psycopg2", "")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    return url


def test_the_repository_instance_keeps_its_event_log_connections_open(tmp_path, dagster_url):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        configured = instance.event_log_storage.inst_data
        assert configured.class_name == PooledPostgresEventLogStorage.__name__
    finally:
        instance.dispose()

    # dagster-postgres alone: two per event (the contrast below).
    assert connections_for_events(home, dagster_url) <= 2


def test_dagster_postgres_alone_opens_connections_per_event(tmp_path, dagster_url):
    """The contrast: `storage: postgres` as documented by Dagster."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_POSTGRES_STORAGE)
    assert connections_for_events(home, dagster_url) >= EVENTS
