"""Bronze's asset check: is every day complete?"""

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
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import MAX_LISTED, day_range, listed, scope

BRONZE_DAYS_COMPLETE = "bronze_days_complete"


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            BRONZE_DAYS_COMPLETE,
            asset=bronze_carbon_intensity,
            description=(
                "Every day has 48 half-hours x 18 regions x 9 fuels. A failure lists the days "
                "the API had no or partial data for: their daily averages cover fewer half-hours."
            ),
        )
    ],
)
def bronze_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    store = BronzeStore(lake.bronze_dir)
    date_range = day_range(context)
    days = store.stored_days() if date_range is None else date_range.days()
    incomplete: dict[str, int] = {}
    without_records: list[str] = []
    absent: list[str] = []
    for day in days:
        if store.is_complete(day):
            continue
        document = store.read(day)
        if document is None:
            absent.append(day.isoformat())
            continue
        incomplete[day.isoformat()] = document["half_hours"]
        if document["region_records"] == 0:
            without_records.append(day.isoformat())
    yield AssetCheckResult(
        check_name=BRONZE_DAYS_COMPLETE,
        passed=not incomplete and not absent,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "scope": scope(date_range),
            "days_checked": len(days),
            "incomplete_days": len(incomplete),
            "incomplete_half_hours_by_date": MetadataValue.json(
                dict(list(incomplete.items())[:MAX_LISTED])
            ),
            "days_with_no_data": listed(without_records),
            "days_not_stored": listed(absent),
        },
    )
