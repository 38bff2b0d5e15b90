"""The daily schedule's runs end on their own: each carries a maximum run time that run
monitoring (enabled in dagster.yaml) enforces, so a stuck run cannot hold the next tick."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from dagster import MAX_RUNTIME_SECONDS_TAG, SkipReason, build_schedule_context

from carbon_assets.automation import MAX_RUN_HOURS, daily_refresh_schedule
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.lake_source import record_lake_source

REPO = Path(__file__).resolve().parent.parent
TICK = dt.datetime(2024, 3, 20, 0, 30, tzinfo=dt.UTC)


def test_every_run_the_schedule_asks_for_has_a_maximum_run_time(tmp_path):
    lake = LakeResource(data_dir=str(tmp_path))
    hole = dt.date(2024, 3, 10)  # stored incomplete long ago: the tick asks for a heal run too
    BronzeStore(lake.bronze).write(
        build_document(hole, [{"url": "test", "status": 200, "attempts": 1,
                               "fetched_at": "2024-03-11T00:30:00+00:00", "data": []}])
    )  # fmt: skip
    context = build_schedule_context(
        scheduled_execution_time=TICK,
        resources={
            "refresh_policy": RefreshPolicy(),
            "lake": lake,
            "carbon_api": CarbonIntensityApi(),
        },
    )
    requests = list(daily_refresh_schedule(context))
    assert [r.tags["carbon/run"] for r in requests] == ["settle", "heal"]
    for request in requests:
        assert request.tags[MAX_RUNTIME_SECONDS_TAG] == str(MAX_RUN_HOURS * 3600)
    assert MAX_RUNTIME_SECONDS_TAG == "dagster/max_runtime"  # what run monitoring reads
    assert 2 <= MAX_RUN_HOURS <= 12  # well above a day's run and its retries, below a day


def test_run_monitoring_is_on():
    monitoring = yaml.safe_load((REPO / "dagster.yaml").read_text())["run_monitoring"]
    assert monitoring["enabled"] is True
    assert "max_runtime_seconds" not in monitoring  # a long backfill someone launched is no fault


def test_a_tick_over_another_apis_lake_launches_nothing_and_says_why(tmp_path):
    """Under `dev --demo` the lake is the emulator's and the API the real one: every run would
    stop at bronze's source check, so the tick skips with that line instead of failing runs."""
    lake = LakeResource(data_dir=str(tmp_path))
    record_lake_source(lake.storage, "http://127.0.0.1:8765", emulator=True)
    context = build_schedule_context(
        scheduled_execution_time=TICK,
        resources={
            "refresh_policy": RefreshPolicy(),
            "lake": lake,
            "carbon_api": CarbonIntensityApi(),
        },
    )
    skipped = daily_refresh_schedule(context)
    assert isinstance(skipped, SkipReason)
    assert "http://127.0.0.1:8765 (the emulator)" in skipped.skip_message
    assert "https://api.carbonintensity.org.uk" in skipped.skip_message
