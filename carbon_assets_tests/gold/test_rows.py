"""Gold rows from a day of silver in plain Python and Arrow: what each Spark worker computes."""

from __future__ import annotations

import copy
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.gold.rows import (
    GOLD_COLUMNS,
    GOLD_SCHEMA,
    daily_rows,
    date_of_day_file,
    mean_to_the_cent,
)
from carbon_assets.silver.rows import silver_rows
from carbon_assets_tests.helpers import real_periods, source, write_days

DAY = dt.date(2019, 8, 25)


def silver_of_day(tmp_path: Path, periods: list[dict]) -> pa.Table:
    path = write_days(tmp_path, periods)[0]
    return silver_rows(Path(path).read_bytes(), path)


def test_gold_columns_are_the_warehouse_columns_in_order():
    assert tuple(GOLD_SCHEMA.names) == GOLD_COLUMNS


@pytest.mark.parametrize(
    ("total", "count", "mean"),
    [
        (12_345, 1, "12.35"),  # 12.345: a half goes up
        (-12_345, 1, "-12.35"),  # and away from zero below zero, as PostgreSQL's round()
        (12_344, 1, "12.34"),
        (100_000, 3, "33.33"),  # 33.333..
        (200_000, 3, "66.67"),  # 66.666..
        (0, 48, "0.00"),
    ],
)
def test_a_mean_is_rounded_half_away_from_zero_to_the_cent_exactly(total, count, mean):
    assert mean_to_the_cent(total, count) == Decimal(mean)


def test_a_mean_of_nothing_is_null():
    assert mean_to_the_cent(0, 0) is None


def test_a_missing_share_is_skipped_by_the_mean_and_the_last_half_hour_names_the_region(tmp_path):
    periods = [copy.deepcopy(p) for p in real_periods()[:2]]  # 12:30 and 13:00
    mix = periods[0]["regions"][0]["generationmix"]
    wind = mix.pop(8)  # region 1 has no wind at 12:30 (its share moved to gas: the sum stays 100)
    mix[3]["perc"] = round(mix[3]["perc"] + wind["perc"], 1)
    periods[1]["regions"][5]["shortname"] = "Renamed"  # region 6 renamed from 13:00
    gold = {
        row["regionid"]: row
        for row in daily_rows(silver_of_day(tmp_path, periods), DAY).to_pylist()
    }
    wind_at_13 = Decimal(str(periods[1]["regions"][0]["generationmix"][8]["perc"]))
    assert (
        gold[1]["fuel_wind"] == wind_at_13.quantize(Decimal("0.01")) and gold[1]["half_hours"] == 2
    )
    assert gold[6]["shortname"] == "Renamed"
    assert all(row["date_recorded"] == DAY for row in gold.values())


def test_fetched_at_is_the_latest_fetch_behind_the_regions_half_hours(tmp_path):
    early, late = "2024-01-01T00:00:00+00:00", "2024-01-03T00:00:00+00:00"
    store = BronzeStore(tmp_path / "bronze")
    first, second = real_periods()[:2]
    store.write(build_document(DAY, [source([first], early), source([second], late)]))
    silver_day = silver_rows(store.path(DAY).read_bytes(), str(store.path(DAY)))
    gold = daily_rows(silver_day, DAY).to_pylist()
    assert {row["fetched_at"] for row in gold} == {dt.datetime(2024, 1, 3, tzinfo=dt.UTC)}


def test_regions_beyond_the_18_are_left_out(tmp_path):
    periods = [copy.deepcopy(p) for p in real_periods()[:2]]
    for period in periods:
        period["regions"].append({**period["regions"][-1], "regionid": 19, "shortname": "Atlantis"})
    gold = daily_rows(silver_of_day(tmp_path, periods), DAY).to_pylist()
    assert [row["regionid"] for row in gold] == list(range(1, 19))


def test_the_date_comes_from_the_day_files_folder():
    assert date_of_day_file("/lake/silver/date_recorded=2024-02-29/part-0.parquet") == dt.date(
        2024, 2, 29
    )
    with pytest.raises(ValueError, match="not in a date_recorded"):
        date_of_day_file("/lake/silver/2024-02-29/part-0.parquet")


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("fuel_gas", 1e9, "fuel_gas 1e+09 for region 1 at 2019-08-25T12:30Z, outside 0-100"),
        ("intensity_forecast", 2_000_000_000, "intensity_forecast 2e+09 for region 1"),
    ],
)
def test_gold_refuses_a_day_whose_silver_holds_an_impossible_value(tmp_path, column, value, says):
    """Silver's blocking checks stop such a day in a run; gold built on its own refuses it too."""
    silver_day = silver_of_day(tmp_path, real_periods()[:2])
    values = silver_day.column(column).to_pylist()
    values[0] = value
    position = silver_day.schema.get_field_index(column)
    field = silver_day.schema.field(column)
    silver_day = silver_day.set_column(position, field, pa.array(values, field.type))
    with pytest.raises(ValueError, match=re.escape(f"silver of 2019-08-25 holds {says}")):
        daily_rows(silver_day, DAY)
