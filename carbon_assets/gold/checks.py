"""Gold's asset checks: 18 regions a date, 48 half-hours on complete days, a unique key.

The computations are pure functions of a DataFrame (`gold_problems`), tested without Dagster.
"""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSpec, multi_asset_check

from carbon_assets.bronze.store import BronzeStore
from carbon_assets.check_metadata import listed, scope
from carbon_assets.gold.assets import gold_carbon_intensity_daily
from carbon_assets.lake import LakeResource, read_parquet_table
from carbon_assets.partitions import day_range
from carbon_assets.vocabulary import HALF_HOURS_PER_DAY, REGION_COUNT

GOLD_REGIONS_PER_DATE = "gold_18_regions_per_date"
GOLD_COMPLETE_DAYS = "gold_complete_days_have_48_half_hours"
GOLD_UNIQUE_KEY = "gold_unique_region_date"


def gold_problems(
    gold: pd.DataFrame, complete_days: set[str] | None = None
) -> dict[str, list[str]]:
    """For each gold check, the failing dates."""
    if gold.empty:
        return {GOLD_REGIONS_PER_DATE: [], GOLD_COMPLETE_DAYS: [], GOLD_UNIQUE_KEY: []}
    dates = gold["date_recorded"].astype(str)
    regions_per_date = gold.groupby(dates)["regionid"].nunique()
    short_days = dates[gold["half_hours"] != HALF_HOURS_PER_DAY]
    if complete_days is not None:
        short_days = short_days[short_days.isin(complete_days)]
    return {
        GOLD_REGIONS_PER_DATE: sorted(regions_per_date[regions_per_date != REGION_COUNT].index),
        GOLD_COMPLETE_DAYS: sorted(set(short_days)),
        GOLD_UNIQUE_KEY: sorted(
            set(dates[gold.duplicated(["regionid", "date_recorded"], keep=False)])
        ),
    }


GOLD_CHECK_DESCRIPTIONS = {
    GOLD_REGIONS_PER_DATE: (
        "Every date has exactly 18 regional rows. A failure means regions are missing (or extra) "
        "on the listed dates, so national comparisons for them are biased."
    ),
    GOLD_COMPLETE_DAYS: (
        "Days that are complete in bronze have half_hours = 48 in gold. A failure means gold lost "
        "half-hours between bronze and the daily averages on the listed dates."
    ),
    GOLD_UNIQUE_KEY: (
        "(regionid, date_recorded) is unique. A failure means duplicate daily rows, which the "
        "warehouse's primary key would reject."
    ),
}


@multi_asset_check(
    specs=[
        AssetCheckSpec(name, asset=gold_carbon_intensity_daily, description=description)
        for name, description in GOLD_CHECK_DESCRIPTIONS.items()
    ],
)
def gold_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    date_range = day_range(context)
    gold = read_parquet_table(lake.gold, date_range)
    dates = sorted(set(gold["date_recorded"])) if not gold.empty else []
    bronze = BronzeStore(lake.bronze)
    complete_days = {d.isoformat() for d in dates if bronze.is_complete(d)}
    for name, failing in gold_problems(gold, complete_days).items():
        yield AssetCheckResult(
            check_name=name,
            passed=not failing,
            metadata={
                "scope": scope(date_range),
                "rows_checked": len(gold),
                "failing_dates": listed(failing),
            },
        )
