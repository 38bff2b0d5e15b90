"""The one partitioning scheme of every asset: a UTC day, from the first full day of data.

A run over a range of partitions becomes a `DayRange` in one way, `day_range(context)`, for
assets, asset checks and IO managers alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    AutomationCondition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    InputContext,
    OutputContext,
)

# The first full UTC day of regional data (the earliest period starts 2018-05-10T23:30Z).
FIRST_FULL_DAY = dt.date(2018, 5, 11)

daily_partitions = DailyPartitionsDefinition(start_date=FIRST_FULL_DAY.isoformat(), timezone="UTC")

# What every daily asset's decorator shares: its days, one run per backfill, its group.
DAILY_ASSET = {
    "partitions_def": daily_partitions,
    "backfill_policy": BackfillPolicy.single_run(),
    "group_name": "carbon_intensity",
}
# The layers below bronze follow it: when a day's bronze is fetched again, they are rebuilt.
DERIVED_DAILY_ASSET = {**DAILY_ASSET, "automation_condition": AutomationCondition.eager()}


@dataclass(frozen=True)
class DayRange:
    """The UTC days first..last, both included."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"partition range ends before it starts: {self}")

    @classmethod
    def from_keys(cls, start_key: str, end_key: str) -> DayRange:
        """From partition keys (YYYY-MM-DD)."""
        return cls(dt.date.fromisoformat(start_key), dt.date.fromisoformat(end_key))

    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def chunks(self, days: int) -> list[DayRange]:
        """The range cut into consecutive ranges of `days` days (the last may be shorter)."""
        starts = [self.first + dt.timedelta(days=i) for i in range(0, len(self), days)]
        return [
            DayRange(start, min(start + dt.timedelta(days=days - 1), self.last)) for start in starts
        ]

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.first <= day <= self.last

    def __str__(self) -> str:
        return f"{self.first}...{self.last}"


PartitionedContext = (
    AssetExecutionContext | AssetCheckExecutionContext | InputContext | OutputContext
)


def day_range(context: PartitionedContext) -> DayRange | None:
    """The days of the run's partition range, or None when the run has no partitions (an asset
    check launched on its own, an unpartitioned output)."""
    if isinstance(context, InputContext | OutputContext):
        if not context.has_asset_partitions:
            return None
        key_range = context.asset_partition_key_range
    else:
        op_context = context.op_execution_context
        if not op_context.has_partition_key_range:
            return None
        key_range = op_context.partition_key_range
    return DayRange.from_keys(key_range.start, key_range.end)


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
