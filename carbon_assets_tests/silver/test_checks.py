"""Silver's checks fail, naming the dates, when the rows are wrong (pure)."""

import datetime as dt

import pandas as pd

from carbon_assets.silver.checks import (
    SILVER_FUEL_MIX_SUMS_TO_100,
    SILVER_FUEL_SHARES_IN_RANGE,
    SILVER_INDEX_LABELS_KNOWN,
    SILVER_INTENSITY_IN_RANGE,
    SILVER_KNOWN_REGIONS,
    SILVER_NO_CONFLICTING_DUPLICATES,
    SILVER_NO_UNKNOWN_FUELS,
    SILVER_UNIQUE_HALF_HOURS,
    conflicting_half_hours,
    silver_problems,
    unknown_regions,
    values_out_of_range,
)
from carbon_assets.vocabulary import FUEL_COLUMNS

DAY, OTHER = dt.date(2024, 1, 1), dt.date(2024, 1, 2)


def silver_rows(day=DAY, regions=range(1, 19), half_hours=48):
    rows = []
    for regionid in regions:
        for i in range(half_hours):
            rows.append(
                {
                    "timestamp": pd.Timestamp(day) + pd.Timedelta(minutes=30 * i),
                    "date_recorded": day,
                    "regionid": regionid,
                    "shortname": f"Region {regionid}",
                    "intensity_forecast": 100,
                    "intensity_index": "moderate",
                    **{c: (100.0 if c == "fuel_gas" else 0.0) for c in FUEL_COLUMNS},
                    "extra_fuels": [],
                    "missing_fuels": [],
                    "conflicting_versions": None,
                }
            )
    return pd.DataFrame(rows)


def test_clean_silver_passes_every_check():
    assert all(found.empty for found in silver_problems(silver_rows()).values())


def test_each_silver_problem_names_its_date():
    bad = pd.concat([silver_rows(DAY), silver_rows(OTHER)], ignore_index=True)
    bad = pd.concat([bad, bad.iloc[[0]]], ignore_index=True)  # a duplicate on DAY
    at_other = bad.index[bad.date_recorded == OTHER]
    bad.loc[at_other[0], "fuel_gas"] = 90.0
    bad.loc[at_other[1], "intensity_forecast"] = -5
    bad.loc[at_other[2], "intensity_index"] = "extreme"
    bad.at[at_other[3], "extra_fuels"] = [("storage", 1.0)]
    bad = pd.concat([bad, silver_rows(OTHER, regions=[19], half_hours=2)], ignore_index=True)
    bad.loc[at_other[4], "conflicting_versions"] = 2
    bad.loc[at_other[5], "fuel_wind"] = -1.0  # out of range, and the mix sums to 99
    problems = {name: sorted(set(found)) for name, found in silver_problems(bad).items()}
    assert problems == {
        SILVER_UNIQUE_HALF_HOURS: [DAY],
        SILVER_KNOWN_REGIONS: [OTHER],
        SILVER_FUEL_MIX_SUMS_TO_100: [OTHER],
        SILVER_FUEL_SHARES_IN_RANGE: [OTHER],
        SILVER_INTENSITY_IN_RANGE: [OTHER],
        SILVER_INDEX_LABELS_KNOWN: [OTHER],
        SILVER_NO_UNKNOWN_FUELS: [OTHER],
        SILVER_NO_CONFLICTING_DUPLICATES: [OTHER],
    }


def test_unknown_regions_are_named_with_their_date():
    silver = pd.concat(
        [silver_rows(DAY), silver_rows(OTHER, regions=[19, 0], half_hours=3)], ignore_index=True
    )
    silver.loc[silver.regionid == 19, "shortname"] = "Atlantis"
    silver.loc[silver.index[-1], "regionid"] = None  # a region record without a regionid
    assert unknown_regions(silver) == {
        str(OTHER): ["0 (Region 0)", "19 (Atlantis)", "no regionid (Region 0)"]
    }
    assert unknown_regions(silver_rows(DAY)) == {}


def test_conflicting_half_hours_are_named_with_their_regions():
    silver = silver_rows(DAY)
    at_ten = silver.index[silver.timestamp == pd.Timestamp(DAY) + pd.Timedelta(hours=10)]
    silver.loc[at_ten, "conflicting_versions"] = 2
    silver.loc[silver.index[0], "conflicting_versions"] = 3
    assert conflicting_half_hours(silver) == {"2024-01-01T00:00Z": 1, "2024-01-01T10:00Z": 18}
    assert conflicting_half_hours(silver_rows(DAY)) == {}


def test_a_range_is_checked_in_parts_that_cover_it_once():
    from carbon_assets.partitions import DayRange
    from carbon_assets.silver.checks import CHUNK_DAYS

    years = DayRange(dt.date(2018, 5, 11), dt.date(2026, 11, 29))
    parts = years.chunks(CHUNK_DAYS)
    assert parts[0].first == years.first and parts[-1].last == years.last
    assert all(len(part) == CHUNK_DAYS for part in parts[:-1]) and 1 <= len(parts[-1])
    assert [d for part in parts for d in part.days()] == years.days()
    assert DayRange(DAY, DAY).chunks(CHUNK_DAYS) == [DayRange(DAY, DAY)]


def test_values_beyond_their_physical_range_are_named_with_half_hour_region_and_value():
    bad = silver_rows(regions=[3], half_hours=3)
    bad.loc[0, "fuel_gas"] = 1e9
    bad.loc[1, "intensity_forecast"] = 2_000_000_000
    bad.loc[2, "intensity_forecast"] = 2000  # the bound itself is possible
    problems = {name: len(found) for name, found in silver_problems(bad).items() if len(found)}
    assert problems == {
        SILVER_FUEL_SHARES_IN_RANGE: 1,
        SILVER_FUEL_MIX_SUMS_TO_100: 1,
        SILVER_INTENSITY_IN_RANGE: 1,
    }
    assert values_out_of_range(bad) == {
        SILVER_INTENSITY_IN_RANGE: [
            "2024-01-01T00:30Z region 3: intensity_forecast 2e+09 is outside 0-2000 gCO2/kWh"
        ],
        SILVER_FUEL_SHARES_IN_RANGE: [
            "2024-01-01T00:00Z region 3: fuel_gas 1e+09 is outside 0-100 %"
        ],
    }


def test_a_half_hour_without_any_share_is_a_gap_not_a_wrong_sum():
    rows = silver_rows(half_hours=1)
    rows.loc[0, list(FUEL_COLUMNS)] = None
    problems = silver_problems(rows)
    assert problems[SILVER_FUEL_MIX_SUMS_TO_100].empty
    assert problems[SILVER_FUEL_SHARES_IN_RANGE].empty
