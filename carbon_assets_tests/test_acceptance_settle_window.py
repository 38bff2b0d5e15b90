"""Issue 21's settle-window acceptance item, through the warehouse: one tick after a backfill in
which a day inside the window was answered {} (and the API has since filled it), the warehouse
equals the API's latest values for every day of the window.

bronze/test_settle_window.py shows the tick fetches the hole into bronze; this follows it to
both warehouse tables. The clock is moved (time-machine); the emulator, Spark and PostgreSQL
are real.
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
from carbon_assets_tests.helpers import FAST_API, materialize_range
from carbon_assets_tests.postgres_helpers import create_database, drop_database, query
from carbon_assets_tests.test_demo import HALF_HOURS, REGIONS, api_values, warehouse_values

pytestmark = [pytest.mark.spark, pytest.mark.slow]

UTC = dt.UTC
SEED = 11
HOLE = dt.date(2024, 3, 9)
BACKFILL = ("2024-03-05", "2024-03-10")
BACKFILL_AT = dt.datetime(2024, 3, 11, 12, 0, tzinfo=UTC)  # 36 h after the hole's day ended
TICK = dt.datetime(2024, 3, 12, 0, 30, tzinfo=UTC)  # the next daily tick


def daily_values(url: str, first: str, last: str) -> dict[tuple[int, dt.date], int]:
    rows = query(
        url,
        "SELECT regionid, date_recorded, half_hours FROM carbon_data.carbon_intensity_daily"
        " WHERE date_recorded BETWEEN %s AND %s",
        (first, last),
    )
    return {(region, day): half_hours for region, day, half_hours in rows}


def test_one_tick_after_a_backfill_with_a_hole_in_the_window_the_warehouse_equals_the_api(
    tmp_path, spark
):
    name, url = create_database("service", None)
    try:
        with (
            start_emulator(EmulatorConfig(seed=SEED, empty_dates={HOLE})) as emulator,
            time_machine.travel(BACKFILL_AT) as traveller,
        ):
            lake_dir = str(tmp_path / "lake")
            resources = build_resources(lake_dir, emulator.base_url, url, **FAST_API)
            store = BronzeStore(LakeResource(data_dir=lake_dir).bronze)
            materialize_range(resources, *BACKFILL, raise_on_error=True)
            assert not store.is_complete(HOLE)
            assert not warehouse_values(url, HOLE.isoformat(), HOLE.isoformat())

            emulator.reconfigure(empty_dates=frozenset())  # the API has filled the day since
            traveller.move_to(TICK)
            context = build_schedule_context(
                scheduled_execution_time=TICK,
                resources={
                    "refresh_policy": RefreshPolicy(),
                    "lake": resources["lake"],
                    "carbon_api": resources["carbon_api"],
                },
            )
            requests = list(daily_refresh_schedule(context))
            for request in requests:
                result = materialize(
                    [*ALL_ASSETS, *ALL_CHECKS],
                    resources=resources,
                    instance=DagsterInstance.ephemeral(),
                    tags=request.tags,
                )
                assert result.success, request.tags
        (settle,) = [r for r in requests if r.tags.get("carbon/run") == "settle"]
        first = settle.tags["dagster/asset_partition_range_start"]
        last = settle.tags["dagster/asset_partition_range_end"]
        assert first <= HOLE.isoformat() <= last
        days = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
        expected = api_values(SEED, first, last)
        assert len(expected) == days * HALF_HOURS * REGIONS
        assert warehouse_values(url, first, last) == expected
        daily = daily_values(url, first, last)
        assert len(daily) == days * REGIONS and set(daily.values()) == {HALF_HOURS}
    finally:
        drop_database("service", None, name)
