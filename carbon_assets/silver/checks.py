"""Silver's asset checks: unique half-hours, known regions, fuels and labels, values within
their physical ranges, and no half-hour the API sent in conflicting versions.

The computations are pure functions of a DataFrame (`silver_problems`, `unknown_regions`,
`conflicting_half_hours`, `values_out_of_range`), tested without Dagster.
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

from carbon_assets.check_metadata import MAX_LISTED, listed, scope
from carbon_assets.lake import LakeResource, day_files, read_parquet_table
from carbon_assets.partitions import DayRange, day_range
from carbon_assets.silver.assets import silver_carbon_intensity
from carbon_assets.vocabulary import (
    FUEL_COLUMNS,
    INDEX_LABELS,
    MAX_INTENSITY,
    MAX_SHARE,
    MIX_TOLERANCE,
    REGION_IDS,
)

SILVER_UNIQUE_HALF_HOURS = "silver_unique_region_half_hours"
SILVER_KNOWN_REGIONS = "silver_known_regions"
SILVER_NO_UNKNOWN_FUELS = "silver_no_unknown_fuels"
SILVER_FUEL_MIX_SUMS_TO_100 = "silver_fuel_mix_sums_to_100"
SILVER_FUEL_SHARES_IN_RANGE = "silver_fuel_shares_in_range"
SILVER_INTENSITY_IN_RANGE = "silver_intensity_in_range"
SILVER_INDEX_LABELS_KNOWN = "silver_index_labels_known"
SILVER_NO_CONFLICTING_DUPLICATES = "silver_no_conflicting_duplicates"

# Silver is read and checked this many days at a time, so memory does not grow with the range.
# Every check is about rows of one date, so checking the days in parts finds the same rows.
CHUNK_DAYS = 31


def silver_problems(silver: pd.DataFrame) -> dict[str, pd.Series]:
    """For each silver check, the date_recorded of each offending row (empty when it passes)."""
    if silver.empty:
        return {name: pd.Series(dtype=object) for name in SILVER_CHECK_DESCRIPTIONS}
    dates = silver["date_recorded"]
    shares = silver[list(FUEL_COLUMNS)]
    mix_total = shares.sum(axis=1, min_count=1)
    extra = silver["extra_fuels"].map(lambda value: bool(value is not None and len(value) > 0))
    return {
        SILVER_UNIQUE_HALF_HOURS: dates[silver.duplicated(["regionid", "timestamp"], keep=False)],
        SILVER_KNOWN_REGIONS: dates[~silver["regionid"].isin(REGION_IDS)],
        SILVER_NO_UNKNOWN_FUELS: dates[extra],
        # A half-hour without any share is a gap (missing_fuels, bronze_days_complete), not a
        # wrong sum.
        SILVER_FUEL_MIX_SUMS_TO_100: dates[
            mix_total.notna() & ~((mix_total - 100).abs() <= MIX_TOLERANCE)
        ],
        SILVER_FUEL_SHARES_IN_RANGE: dates[shares_out_of_range(shares).any(axis=1)],
        SILVER_INTENSITY_IN_RANGE: dates[~silver["intensity_forecast"].between(0, MAX_INTENSITY)],
        SILVER_INDEX_LABELS_KNOWN: dates[~silver["intensity_index"].isin(INDEX_LABELS)],
        SILVER_NO_CONFLICTING_DUPLICATES: dates[silver["conflicting_versions"].notna()],
    }


def shares_out_of_range(shares: pd.DataFrame) -> pd.DataFrame:
    """True where a share is present and outside 0-100 % (NaN and infinities included)."""
    return shares.notna() & ~((shares >= 0) & (shares <= MAX_SHARE))


def values_out_of_range(silver: pd.DataFrame, limit: int = MAX_LISTED) -> dict[str, list[str]]:
    """{check: ["2024-01-02T10:00Z region 3: fuel_gas 1e+09 is outside 0-100", ...]}: the first
    `limit` values outside their physical range, for the range checks that fail."""
    if silver.empty:
        return {}

    def named(rows: pd.Series, column: str, bounds: str) -> list[str]:
        listed = silver.loc[rows, ["timestamp", "regionid", column]].head(limit)
        # Only the listed rows' times are formatted: all of a range's would cost more than
        # the checks themselves.
        starts = pd.to_datetime(listed["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%MZ")
        return [
            f"{start} region {region}: {column} {value:g} is outside {bounds}"
            if pd.notna(value)
            else f"{start} region {region}: {column} is missing"
            for start, region, value in zip(starts, listed["regionid"], listed[column], strict=True)
        ]

    found: dict[str, list[str]] = {}
    intensity = ~silver["intensity_forecast"].between(0, MAX_INTENSITY)
    if intensity.any():
        found[SILVER_INTENSITY_IN_RANGE] = named(intensity, "intensity_forecast", "0-2000 gCO2/kWh")
    bad_shares = shares_out_of_range(silver[list(FUEL_COLUMNS)])
    listed_shares = [
        value
        for column in FUEL_COLUMNS
        if bad_shares[column].any()
        for value in named(bad_shares[column], column, "0-100 %")
    ]
    if listed_shares:
        found[SILVER_FUEL_SHARES_IN_RANGE] = listed_shares[:limit]
    return found


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
        f"Each generation mix that has any share sums to 100 +/- {MIX_TOLERANCE}. A failure "
        "means fuel shares are wrong on the listed dates; gold and the half-hourly table are "
        "not built from them."
    ),
    SILVER_FUEL_SHARES_IN_RANGE: (
        f"Every fuel share present is within 0-{MAX_SHARE:g} %. A failure names the half-hours, "
        "regions and values; gold and the half-hourly table are not built from them."
    ),
    SILVER_INTENSITY_IN_RANGE: (
        f"Every carbon intensity is present and within 0-{MAX_INTENSITY} gCO2/kWh. A failure "
        "names the half-hours, regions and values (impossible or missing intensities); gold and "
        "the half-hourly table are not built from them."
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
# Bad silver must reach no table and no export: duplicates, regions and fuels gold has no place
# for, impossible values. Gold and the half-hourly load both read silver only, so these stop
# both.
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
    SILVER_FUEL_MIX_SUMS_TO_100,
    SILVER_FUEL_SHARES_IN_RANGE,
    SILVER_INTENSITY_IN_RANGE,
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
    out_of_range: dict[str, list[str]] = {}
    for chunk in checked_chunks(lake, date_range):
        silver = read_parquet_table(lake.silver, chunk, columns=SILVER_CHECKED_COLUMNS)
        rows_checked += len(silver)
        for name, found in silver_problems(silver).items():
            if not found.empty:
                offending[name].append(found)
        conflicts.update(conflicting_half_hours(silver))  # chunks hold different half-hours
        unknown.update(unknown_regions(silver))
        for name, values in values_out_of_range(silver).items():
            out_of_range.setdefault(name, []).extend(values)
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
        if name in out_of_range and found_dates:
            values = out_of_range[name][:MAX_LISTED]
            metadata["values_out_of_range"] = MetadataValue.json(values)
            description = "Values out of range: " + "; ".join(values[:10])
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
        days = sorted(day_files(lake.silver))
        if not days:
            return []
        date_range = DayRange.from_keys(days[0], days[-1])
    return date_range.chunks(CHUNK_DAYS)
