"""Bronze's asset checks: is every day complete (and valid), and does every record start on the
grid?

Both read each day file's summary (what precedes its records), never the records themselves.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.check_metadata import MAX_LISTED, listed, scope
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import day_range

BRONZE_DAYS_COMPLETE = "bronze_days_complete"
BRONZE_RECORDS_ON_GRID = "bronze_records_on_half_hour_grid"


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            BRONZE_DAYS_COMPLETE,
            asset=bronze_carbon_intensity,
            description=(
                "Every day has 48 half-hours x 18 regions x 9 fuels, every value readable and "
                "within its physical range. A failure lists the days the API had no or partial "
                "data for (their daily averages cover fewer half-hours) and, as an error, the "
                "days with invalid values (silver does not read them; bronze fetches them again "
                "on every run that covers them)."
            ),
        ),
        AssetCheckSpec(
            BRONZE_RECORDS_ON_GRID,
            asset=bronze_carbon_intensity,
            description=(
                "Every record the API sent starts on :00 or :30 UTC. A failure names each day "
                "and the starts off that grid: bronze keeps those records as sent, silver leaves "
                "them out (they are no half-hour)."
            ),
        ),
    ],
)
def bronze_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    store = BronzeStore(lake.bronze, on_damaged=context.log.warning)
    date_range = day_range(context)
    days = store.stored_days() if date_range is None else date_range.days()
    incomplete: dict[str, int] = {}
    without_records: list[str] = []
    absent: list[str] = []
    off_grid: dict[str, list[str]] = {}
    invalid: dict[str, list[str]] = {}  # {date: the problems of its invalid half-hours}
    for day in days:
        summary = store.summary(day)
        if summary is None:
            absent.append(day.isoformat())
            continue
        if starts := summary.get("off_grid_starts"):
            off_grid[day.isoformat()] = starts
        if half_hours := summary.get("invalid_half_hours"):
            invalid[day.isoformat()] = [p for half in half_hours for p in half["problems"]]
        if summary["complete"] and not half_hours:
            continue
        incomplete[day.isoformat()] = summary["half_hours"]
        if summary["region_records"] == 0:
            without_records.append(day.isoformat())
    yield AssetCheckResult(
        check_name=BRONZE_DAYS_COMPLETE,
        passed=not incomplete and not absent,
        severity=AssetCheckSeverity.ERROR if invalid else AssetCheckSeverity.WARN,
        metadata={
            "scope": scope(date_range),
            "days_checked": len(days),
            "incomplete_days": len(incomplete),
            "incomplete_half_hours_by_date": MetadataValue.json(
                dict(list(incomplete.items())[:MAX_LISTED])
            ),
            "days_with_no_data": listed(without_records),
            "days_not_stored": listed(absent),
            "invalid_days": len(invalid),
            "invalid_values_by_date": MetadataValue.json(
                {day: problems[:MAX_LISTED] for day, problems in list(invalid.items())[:MAX_LISTED]}
            ),
        },
        description=(
            "Days with invalid values (never read by silver; fetched again by every run that "
            "covers them): "
            + "; ".join(f"{day}: {problems[0]}" for day, problems in list(invalid.items())[:10])
            if invalid
            else None
        ),
    )
    yield AssetCheckResult(
        check_name=BRONZE_RECORDS_ON_GRID,
        passed=not off_grid,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "scope": scope(date_range),
            "days_checked": len(days),
            "off_grid_starts": sum(len(starts) for starts in off_grid.values()),
            "off_grid_starts_by_date": MetadataValue.json(
                dict(list(off_grid.items())[:MAX_LISTED])
            ),
            "failing_dates": listed(off_grid),
        },
        description=(
            "Records off the half-hour grid: "
            + "; ".join(
                f"{day}: {', '.join(starts)}" for day, starts in list(off_grid.items())[:10]
            )
            if off_grid
            else None
        ),
    )
