"""The national series' settle path, through the warehouse: a day whose actuals were pending at
its first fetch, and still were once its values had settled, is completed by a later daily tick
once the API publishes them, and then equals the API half-hour for half-hour.

The clock is moved (time-machine); the emulator, Spark and PostgreSQL are real.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from dagster import AssetCheckSeverity, DagsterInstance, build_schedule_context, materialize

from carbon_assets.automation import daily_refresh_schedule
from carbon_assets.bronze.records import NationalPeriod
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources
from carbon_assets.emulator import EmulatorConfig, national_records, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets.warehouse.checks import NATIONAL_ACTUALS_SETTLED
from carbon_assets_tests.helpers import FAST_API, materialize_range
from carbon_assets_tests.postgres_helpers import create_database, drop_database, query

pytestmark = [pytest.mark.spark, pytest.mark.slow]

UTC = dt.UTC
SEED = 13
DAY = dt.date(2024, 3, 9)
DAY_END = dt.datetime(2024, 3, 10, tzinfo=UTC)
FIRST_FETCH = DAY_END + dt.timedelta(minutes=30)  # the daily tick after the day
SETTLED_FETCH = DAY_END + dt.timedelta(hours=40)  # past CARBON_SETTLE_HOURS (36)
TICK = dt.datetime(2024, 3, 14, 0, 30, tzinfo=UTC)  # a tick at which the day is due again


def national_rows(url: str) -> dict[str, tuple]:
    rows = query(
        url,
        "SELECT period_start, intensity_forecast, intensity_actual, intensity_index,"
        " forecast_error FROM carbon_data.carbon_intensity_national_halfhourly"
        " WHERE date_recorded = %s ORDER BY period_start",
        (DAY,),
    )
    return {start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"): tuple(rest) for start, *rest in rows}


def api_rows(config: EmulatorConfig) -> dict[str, tuple]:
    start = dt.datetime.combine(DAY, dt.time(), UTC)
    records = national_records(config, start + dt.timedelta(minutes=30), DAY_END)
    return {
        r["from"]: (
            r["intensity"]["forecast"],
            r["intensity"]["actual"],
            r["intensity"]["index"],
            None
            if r["intensity"]["actual"] is None
            else r["intensity"]["forecast"] - r["intensity"]["actual"],
        )
        for r in records
    }


def check_result(result, name: str):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_a_day_with_pending_actuals_is_completed_by_a_later_tick(tmp_path, spark):
    name, url = create_database("service", None)
    pending = EmulatorConfig(seed=SEED, pending_actual_dates=frozenset({DAY}))
    policy = RefreshPolicy(settle_days=1)
    try:
        with start_emulator(pending) as emulator, time_machine.travel(FIRST_FETCH) as clock:
            lake_dir = str(tmp_path / "lake")
            resources = build_resources(lake_dir, emulator.base_url, url, **FAST_API)
            resources["refresh_policy"] = policy
            lake = LakeResource(data_dir=lake_dir)
            national = BronzeStore(lake.bronze_national, period_type=NationalPeriod)

            materialize_range(resources, str(DAY), str(DAY), raise_on_error=True)
            assert national.head(DAY).actuals_pending == 48
            stored = national_rows(url)
            assert len(stored) == 48 and all(actual is None for _, actual, _, _ in stored.values())

            # Settled, and the API still has no actuals: fetched again, the check warns.
            clock.move_to(SETTLED_FETCH)
            result = materialize_range(resources, str(DAY), str(DAY), raise_on_error=True)
            assert national.head(DAY).actuals_pending == 48
            warned = check_result(result, NATIONAL_ACTUALS_SETTLED)
            assert not warned.passed and warned.severity == AssetCheckSeverity.WARN
            assert str(DAY) in str(warned.metadata["failing_dates"].value)

            # The API publishes them; the daily tick asks for a heal run of the day.
            published = EmulatorConfig(seed=SEED)
            emulator.reconfigure(pending_actual_dates=frozenset())
            clock.move_to(TICK)
            context = build_schedule_context(
                scheduled_execution_time=TICK,
                resources={
                    "refresh_policy": policy,
                    "lake": resources["lake"],
                    "carbon_api": resources["carbon_api"],
                },
            )
            heal = [r for r in daily_refresh_schedule(context) if r.tags["carbon/run"] == "heal"]
            assert [r.tags["dagster/asset_partition_range_start"] for r in heal] == [str(DAY)]
            result = materialize(
                [*ALL_ASSETS, *ALL_CHECKS],
                resources=resources,
                instance=DagsterInstance.ephemeral(),
                tags=heal[0].tags,
                raise_on_error=True,
            )
            assert national.head(DAY).actuals_pending == 0
            assert check_result(result, NATIONAL_ACTUALS_SETTLED).passed
            assert national_rows(url) == api_rows(published)
            assert all(actual is not None for _, actual, _, _ in national_rows(url).values())
            (daily,) = query(
                url,
                "SELECT half_hours, actual_half_hours FROM"
                " carbon_data.carbon_intensity_national_daily WHERE date_recorded = %s",
                (DAY,),
            )
            assert daily == (48, 48)
    finally:
        drop_database("service", None, name)
