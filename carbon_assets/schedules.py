"""Keeping the warehouse current: yesterday's partition of every asset, after midnight UTC."""

from __future__ import annotations

from dagster import AssetSelection, build_schedule_from_partitioned_job, define_asset_job

daily_refresh_job = define_asset_job(
    name="daily_refresh",
    selection=AssetSelection.groups("carbon_intensity"),
    description="Fetch, transform and load one UTC day through all four layers.",
)

# The partition for day D closes at midnight; 00:30 UTC leaves the API time to publish it.
daily_refresh_schedule = build_schedule_from_partitioned_job(
    daily_refresh_job, hour_of_day=0, minute_of_hour=30, name="daily_refresh_schedule"
)
