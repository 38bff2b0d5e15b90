"""The one partitioning scheme of every asset: a UTC day, from the first full day of data."""

from __future__ import annotations

import datetime as dt

from dagster import DailyPartitionsDefinition

from carbon_assets.schema import FIRST_FULL_DAY

daily_partitions = DailyPartitionsDefinition(start_date=FIRST_FULL_DAY, timezone="UTC")


def partition_range_problem(start_key: str, end_key: str) -> str | None:
    """Why start_key...end_key is not a range of daily_partitions, or None when it is one.

    Dagster's CLI and UI only offer existing partitions, but a run launched with the range
    tags (the Python API, GraphQL) can carry any date.
    """
    for key in (start_key, end_key):
        if not daily_partitions.has_partition_key(key):
            return (
                f"{key!r} is not a partition of these assets: partitions are the UTC days "
                f"{FIRST_FULL_DAY}...{daily_partitions.get_last_partition_key()}"
            )
    return None


def partition_dates(start_key: str, end_key: str) -> list[dt.date]:
    """Every date from start_key to end_key inclusive (keys are YYYY-MM-DD)."""
    start, end = dt.date.fromisoformat(start_key), dt.date.fromisoformat(end_key)
    if end < start:
        raise ValueError(f"partition range ends before it starts: {start_key}...{end_key}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
