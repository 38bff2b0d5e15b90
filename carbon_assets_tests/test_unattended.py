"""Days of unattended operation: daily ticks keep the warehouse equal to the API's latest values.

Time is simulated (time-machine moves the clock of this process, so Dagster's partitions, the
fetch times bronze records and the ticks agree), everything else is real: the emulator over
loopback HTTP, Spark, PostgreSQL. Between ticks the emulator changes its answers the way the
real API does: it revises recent days, answers {} for a day, then has the day. A hole inside
the settle window is fetched by every tick; an older one waits growing intervals.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from dagster import DagsterInstance, build_schedule_context, materialize

from carbon_assets.automation import daily_refresh_schedule
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets_tests.faults.common import assert_same_dump, output_metadata, warehouse_dump
from carbon_assets_tests.helpers import FAST_API, materialize_range
from carbon_assets_tests.postgres_helpers import create_database, drop_database

pytestmark = [pytest.mark.spark, pytest.mark.slow]

D = dt.date.fromisoformat
UTC = dt.UTC
WAREHOUSE = "carbon_intensity_daily"


def tick_at(day: str) -> dt.datetime:
    """The daily schedule's tick on `day` (00:30 UTC)."""
    return dt.datetime.combine(D(day), dt.time(0, 30), UTC)


def run_tick(traveller, tick: dt.datetime, resources: dict) -> list[dict]:
    """Evaluate the schedule at `tick` and run what it asks for, as the daemon would; returns
    each run's tags and warehouse metadata."""
    traveller.move_to(tick)
    context = build_schedule_context(
        scheduled_execution_time=tick,
        resources={
            "refresh_policy": RefreshPolicy(),
            "lake": resources["lake"],
            "carbon_api": resources["carbon_api"],
        },
    )
    runs = []
    for request in daily_refresh_schedule(context):
        result = materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            resources=resources,
            instance=DagsterInstance.ephemeral(),
            tags=request.tags,
        )
        assert result.success, request.tags
        runs.append({"tags": request.tags, "warehouse": output_metadata(result, WAREHOUSE)})
    return runs


def window(run: dict) -> tuple[str, str]:
    tags = run["tags"]
    return tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]


def requested_days(emulator) -> set[str]:
    """The first day of each request the emulator served since its stats were reset."""
    return {path.split("/")[3][:10] for path in emulator.stats()["by_path"]}


def test_ticks_bring_revisions_heal_holes_with_growing_intervals(tmp_path, spark):
    name, url = create_database("service", None)
    fresh_name, fresh_url = create_database("service", None)
    try:
        with (
            start_emulator(EmulatorConfig(seed=5, empty_dates={D("2024-03-06")})) as emulator,
            time_machine.travel(dt.datetime(2024, 3, 10, 0, 45, tzinfo=UTC)) as traveller,
        ):
            lake_dir = str(tmp_path / "lake")
            resources = build_resources(lake_dir, emulator.base_url, url, **FAST_API)
            store = BronzeStore(LakeResource(data_dir=lake_dir).bronze)
            # The backfill finds a hole older than the settle window: 6 March, answered {}
            # three days and 45 minutes after its end.
            materialize_range(resources, "2024-03-05", "2024-03-09", raise_on_error=True)
            assert not store.is_complete(D("2024-03-06"))

            # The API revises the two days that had not settled when they were fetched, and
            # has nothing yet for the day that just ended. The old hole waits: its next try
            # comes at least as long after its last one as that came after the day's end.
            emulator.reconfigure(
                revised_dates={D("2024-03-08"), D("2024-03-09")},
                empty_dates={D("2024-03-06"), D("2024-03-10")},
            )
            (settle,) = run_tick(traveller, tick_at("2024-03-11"), resources)
            assert window(settle) == ("2024-03-08", "2024-03-10")
            assert settle["warehouse"]["updated"] == 2 * 18
            assert settle["warehouse"]["inserted"] == 0 and not store.is_complete(D("2024-03-10"))

            # The hole inside the window is fetched by every tick's window run.
            (settle,) = run_tick(traveller, tick_at("2024-03-12"), resources)
            assert window(settle) == ("2024-03-09", "2024-03-11")
            assert store.head(D("2024-03-10")).last_fetched_at >= tick_at("2024-03-12")
            assert settle["warehouse"]["inserted"] == 18  # 11 March; 10 March still empty
            assert settle["warehouse"]["updated"] == 0  # 9 March again: final values, unchanged

            # Now the API has both days. 10 March, inside the window, is fetched and complete
            # at the next tick; 6 March is not due yet (2 days 23:45 since its last try).
            emulator.reconfigure(empty_dates=frozenset())
            emulator.reset_stats()
            (settle,) = run_tick(traveller, tick_at("2024-03-13"), resources)
            assert window(settle) == ("2024-03-10", "2024-03-12")
            assert settle["warehouse"]["inserted"] == 2 * 18  # 10 and 12 March
            assert store.is_complete(D("2024-03-10"))
            assert min(requested_days(emulator)) == "2024-03-10"
            assert not store.is_complete(D("2024-03-06"))

            # The next tick heals the old hole in a run of its own, outside the settle window.
            # Settled, complete days are never requested again.
            emulator.reset_stats()
            settle, heal = run_tick(traveller, tick_at("2024-03-14"), resources)
            assert window(settle) == ("2024-03-11", "2024-03-13")
            assert window(heal) == ("2024-03-06", "2024-03-06")
            assert heal["tags"]["carbon/run"] == "heal"
            assert heal["warehouse"]["inserted"] == 18 and store.is_complete(D("2024-03-06"))
            assert min(requested_days(emulator)) == "2024-03-06"

            # The warehouse equals what a fresh lake and database get from the API as it is now.
            fresh = build_resources(str(tmp_path / "fresh"), emulator.base_url, fresh_url)
            materialize_range(fresh, "2024-03-05", "2024-03-13", raise_on_error=True)
        assert_same_dump(warehouse_dump(url), warehouse_dump(fresh_url))
    finally:
        drop_database("service", None, name)
        drop_database("service", None, fresh_name)
