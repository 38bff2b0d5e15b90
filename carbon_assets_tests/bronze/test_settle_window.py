"""The settle window heals its holes at every tick: a day inside it that the API answered {} is
fetched by the next tick's window run, however recently it was tried.

The clock is moved (time-machine: the partitions, the fetch times bronze records and the tick
agree); the emulator is real, over loopback HTTP.
"""

from __future__ import annotations

import datetime as dt

import time_machine
from dagster import DagsterInstance, build_schedule_context, materialize

from carbon_assets.automation import daily_refresh_schedule, range_tags
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.helpers import FAST_API

UTC = dt.UTC
HOLE = dt.date(2024, 3, 9)
POLICY = RefreshPolicy(settle_days=3, settle_hours=36, heal_days=30)


def run_bronze(lake: LakeResource, base_url: str, tags: dict[str, str]):
    return materialize(
        [bronze_carbon_intensity],
        resources={
            "lake": lake,
            "carbon_api": CarbonIntensityApi(base_url=base_url, empty_attempts=1, **FAST_API),
            "refresh_policy": POLICY,
            "bronze_io_manager": BronzeJsonIOManager(lake=lake),
            # unused by a lake on disk (the API lock of an object-store lake)
            "warehouse": WarehouseDatabase(),
        },
        instance=DagsterInstance.ephemeral(),
        tags=tags,
        raise_on_error=True,
    )


def test_one_tick_after_a_backfill_a_hole_inside_the_window_is_fetched_and_complete(tmp_path):
    lake = LakeResource(data_dir=str(tmp_path / "lake"))
    store = BronzeStore(lake.bronze)
    # The backfill runs 36 h after the hole's day ended: the growing interval alone would wait
    # as long again before the next try, two ticks past the one that follows.
    backfill_at = dt.datetime(2024, 3, 11, 12, 0, tzinfo=UTC)
    with (
        start_emulator(EmulatorConfig(seed=8, empty_dates={HOLE})) as emulator,
        time_machine.travel(backfill_at) as traveller,
    ):
        run_bronze(lake, emulator.base_url, range_tags("2024-03-05", "2024-03-10"))
        assert not store.is_complete(HOLE)
        assert store.is_complete(dt.date(2024, 3, 10))

        emulator.reconfigure(empty_dates=frozenset())  # the API has filled the day since
        emulator.reset_stats()
        tick = dt.datetime(2024, 3, 12, 0, 30, tzinfo=UTC)
        traveller.move_to(tick)
        context = build_schedule_context(
            scheduled_execution_time=tick,
            resources={
                "refresh_policy": POLICY,
                "lake": lake,
                "carbon_api": CarbonIntensityApi(base_url=emulator.base_url),
            },
        )
        (request,) = daily_refresh_schedule(context)  # the window only: no heal run
        assert request.tags["carbon/run"] == "settle"
        assert request.tags["dagster/asset_partition_range_start"] == "2024-03-09"
        run_bronze(lake, emulator.base_url, request.tags)
        requested = {path.split("/")[3][:10] for path in emulator.stats()["by_path"]}

    assert store.is_complete(HOLE)
    assert "2024-03-09" in requested
