"""Silver's asset checks: unique half-hours, known regions, fuels and labels, sane values, and
no half-hour the API sent in conflicting versions.

The computations are pure functions of a DataFrame (`silver_problems`, `unknown_regions`,
`conflicting_half_hours`), tested without Dagster.
"""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from carbon_assets.grid import FUEL_COLUMNS, INDEX_LABELS, REGION_IDS
from carbon_assets.lake import LakeResource, day_files, read_parquet_table
from carbon_assets.partitions import MAX_LISTED, DayRange, day_range, listed, scope
from carbon_assets.silver.assets import silver_carbon_intensity

SILVER_UNIQUE_HALF_HOURS = "silver_unique_region_half_hours"
SILVER_KNOWN_REGIONS = "silver_known_regions"
SILVER_NO_UNKNOWN_FUELS = "silver_no_unknown_fuels"
SILVER_FUEL_MIX_SUMS_TO_100 = "silver_fuel_mix_sums_to_100"
SILVER_INTENSITY_NON_NEGATIVE = "silver_intensity_non_negative"
SILVER_INDEX_LABELS_KNOWN = "silver_index_labels_known"
SILVER_NO_CONFLICTING_DUPLICATES = "silver_no_conflicting_duplicates"

MIX_TOLERANCE = 0.5  # percentage points; the API's own rounding stays within 0.2
# Silver is read and checked this many days at a time, so memory does not grow with the range.
# Every check is about rows of one date, so checking the days in parts finds the same rows.
CHUNK_DAYS = 31


def silver_problems(silver: pd.DataFrame) -> dict[str, pd.Series]:
    """For each silver check, the date_recorded of each offending row (empty when it passes)."""
    if silver.empty:
        return {
            name: pd.Series(dtype=object)
            for name in (
                SILVER_UNIQUE_HALF_HOURS,
                SILVER_KNOWN_REGIONS,
                SILVER_NO_UNKNOWN_FUELS,
                SILVER_FUEL_MIX_SUMS_TO_100,
                SILVER_INTENSITY_NON_NEGATIVE,
                SILVER_INDEX_LABELS_KNOWN,
                SILVER_NO_CONFLICTING_DUPLICATES,
            )
        }
    dates = silver["date_recorded"]
    mix_total = silver[list(FUEL_COLUMNS)].sum(axis=1, min_count=1)
    extra = silver["extra_fuels"].map(lambda value: bool(value is not None and len(value) > 0))
    return {
        SILVER_UNIQUE_HALF_HOURS: dates[silver.duplicated(["regionid", "timestamp"], keep=False)],
        SILVER_KNOWN_REGIONS: dates[~silver["regionid"].isin(REGION_IDS)],
        SILVER_NO_UNKNOWN_FUELS: dates[extra],
        SILVER_FUEL_MIX_SUMS_TO_100: dates[~((mix_total - 100).abs() <= MIX_TOLERANCE)],
        SILVER_INTENSITY_NON_NEGATIVE: dates[~(silver["intensity_forecast"] >= 0)],
        SILVER_INDEX_LABELS_KNOWN: dates[~silver["intensity_index"].isin(INDEX_LABELS)],
        SILVER_NO_CONFLICTING_DUPLICATES: dates[silver["conflicting_versions"].notna()],
    }


def unknown_regions(silver: pd.DataFrame) -> dict[str, list[str]]:
    """{date: ["19 (Atlantis)", ...]}: the regions beyond the API's 18 (ids 1-18) on each date."""
    if silver.empty:
        return {}
    unknown = silver[~silver["regionid"].isin(REGION_IDS)]
    found: dict[str, set[str]] = {}
    for day, regionid, shortname in unknown[["date_recorded", "regionid", "shortname"]].itertuples(
        index=False
    ):
        region = "no regionid" if pd.isna(regionid) else str(int(regionid))
        found.setdefault(str(day), set()).add(f"{region} ({shortname})")
    return {day: sorted(regions) for day, regions in sorted(found.items())}


def conflicting_half_hours(silver: pd.DataFrame) -> dict[str, int]:
    """{half-hour (UTC, the API's format): regions whose copies of it disagreed}, in time order."""
    if silver.empty:
        return {}
    conflicting = silver.loc[silver["conflicting_versions"].notna(), "timestamp"]
    starts = pd.to_datetime(conflicting, utc=True).dt.strftime("%Y-%m-%dT%H:%MZ")
    return {start: int(regions) for start, regions in starts.value_counts().sort_index().items()}


SILVER_CHECK_DESCRIPTIONS = {
    SILVER_UNIQUE_HALF_HOURS: (
        "Each (regionid, timestamp) appears once. A failure means half-hours would be "
        "double-counted in daily averages; gold is not built from such silver."
    ),
    SILVER_KNOWN_REGIONS: (
        "Every regionid is one of the API's 18 regions. A failure names each date and the region "
        "the API sent beyond them; gold is not built from that range (gold keeps the 18 regions "
        "only), so no row of it reaches the warehouse or dim_region."
    ),
    SILVER_NO_UNKNOWN_FUELS: (
        "The API reported only the nine known fuels. A failure means it added a fuel that the "
        "fuel columns do not hold (kept in extra_fuels); gold is not built until the schema has it."
    ),
    SILVER_FUEL_MIX_SUMS_TO_100: (
        f"Each generation mix sums to 100 +/- {MIX_TOLERANCE}. A failure means fuel shares are "
        "missing or wrong for the listed dates."
    ),
    SILVER_INTENSITY_NON_NEGATIVE: (
        "Every carbon intensity is present and >= 0. A failure means impossible or missing "
        "intensities on the listed dates; gold is not built from them."
    ),
    SILVER_INDEX_LABELS_KNOWN: (
        "Every intensity index is one of: very low, low, moderate, high, very high. A failure "
        "means the API changed its labels; index_mode on those dates may be wrong."
    ),
    SILVER_NO_CONFLICTING_DUPLICATES: (
        "No half-hour came in versions that disagree (a warning). A failure names the half-hours "
        "the API sent twice with different values; silver kept the latest fetch (then the later "
        "copy), as documented."
    ),
}
# Warnings: the data are usable as they are, someone should know.
WARNING_SILVER_CHECKS = {SILVER_NO_CONFLICTING_DUPLICATES}
# Bad silver must not reach gold: duplicates, regions and fuels gold has no place for,
# impossible values.
# Only what the checks read: years of silver as pandas objects would cost gigabytes.
SILVER_CHECKED_COLUMNS = [
    "date_recorded",
    "regionid",
    "shortname",
    "timestamp",
    "intensity_forecast",
    "intensity_index",
    *FUEL_COLUMNS,
    "extra_fuels",
    "conflicting_versions",
]
BLOCKING_SILVER_CHECKS = {
    SILVER_UNIQUE_HALF_HOURS,
    SILVER_KNOWN_REGIONS,
    SILVER_NO_UNKNOWN_FUELS,
    SILVER_INTENSITY_NON_NEGATIVE,
}


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            name,
            asset=silver_carbon_intensity,
            description=description,
            blocking=name in BLOCKING_SILVER_CHECKS,
        )
        for name, description in SILVER_CHECK_DESCRIPTIONS.items()
    ],
)
def silver_checks(context: AssetCheckExecutionContext, lake: LakeResource):
    date_range = day_range(context)
    rows_checked = 0
    offending: dict[str, list[pd.Series]] = {name: [] for name in SILVER_CHECK_DESCRIPTIONS}
    conflicts: dict[str, int] = {}
    unknown: dict[str, list[str]] = {}
    for chunk in checked_chunks(lake, date_range):
        silver = read_parquet_table(lake.silver_dir, chunk, columns=SILVER_CHECKED_COLUMNS)
        rows_checked += len(silver)
        for name, found in silver_problems(silver).items():
            if not found.empty:
                offending[name].append(found)
        conflicts.update(conflicting_half_hours(silver))  # chunks hold different half-hours
        unknown.update(unknown_regions(silver))
    for name, parts in offending.items():
        found_dates = [day for part in parts for day in part]
        metadata = {
            "scope": scope(date_range),
            "rows_checked": rows_checked,
            "failing_rows": len(found_dates),
            "failing_dates": listed(found_dates),
        }
        description = None
        if name == SILVER_NO_CONFLICTING_DUPLICATES and found_dates:
            metadata["conflicting_half_hours"] = MetadataValue.json(
                dict(list(conflicts.items())[:MAX_LISTED])
            )
            description = "The API sent conflicting versions of: " + ", ".join(
                f"{start} ({regions} regions)" for start, regions in list(conflicts.items())[:10]
            )
        if name == SILVER_KNOWN_REGIONS and found_dates:
            metadata["unknown_regions_by_date"] = MetadataValue.json(unknown)
            description = "Regions the API does not have: " + "; ".join(
                f"{day}: {', '.join(regions)}" for day, regions in list(unknown.items())[:10]
            )
        yield AssetCheckResult(
            check_name=name,
            passed=not found_dates,
            metadata=metadata,
            description=description,
            severity=(
                AssetCheckSeverity.WARN
                if name in WARNING_SILVER_CHECKS
                else AssetCheckSeverity.ERROR
            ),
        )


def checked_chunks(lake: LakeResource, date_range: DayRange | None) -> list[DayRange]:
    """The run's range (or, for a check on its own, the days silver holds) in CHUNK_DAYS parts."""
    if date_range is None:
        days = sorted(day_files(lake.silver_dir)) if lake.silver_dir.is_dir() else []
        if not days:
            return []
        date_range = DayRange.from_keys(days[0], days[-1])
    return date_range.chunks(CHUNK_DAYS)
