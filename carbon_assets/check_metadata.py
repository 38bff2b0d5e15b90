"""What asset checks put in their metadata: lists of dates kept short, and what a check
looked at."""

from __future__ import annotations

from collections.abc import Iterable

from dagster import MetadataValue

from carbon_assets.partitions import DayRange

MAX_LISTED = 50  # dates listed in metadata before "... and N more"


def listed(dates: Iterable) -> MetadataValue:
    """Dates for a metadata entry: sorted, unique, at most MAX_LISTED of them."""
    values = sorted({str(d) for d in dates})
    more = [f"... and {len(values) - MAX_LISTED} more"] if len(values) > MAX_LISTED else []
    return MetadataValue.json(values[:MAX_LISTED] + more)


def scope(days: DayRange | None) -> str:
    """What a check looked at: a run's range, or the whole asset when it ran on its own."""
    return "whole asset" if days is None else str(days)
