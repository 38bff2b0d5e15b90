"""Silver and gold transforms with a real local Spark session, without Dagster."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

from carbon_assets.bronze_days import Period, build_document
from carbon_assets.checks import SILVER_NO_UNKNOWN_FUELS, silver_problems
from carbon_assets.gold import aggregate_daily
from carbon_assets.lake import BronzeStore, read_head
from carbon_assets.schema import FUEL_COLUMNS, FUELS, GOLD_COLUMNS, INDEX_LABELS
from carbon_assets.silver import SILVER_COLUMNS, flatten_bronze, read_bronze, silver_from_bronze

pytestmark = pytest.mark.spark

FIXTURES = Path(__file__).parent / "fixtures"
REAL_2019 = FIXTURES / "regional_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json"
CENT = Decimal("0.01")


def real_periods() -> list[dict]:
    return json.loads(REAL_2019.read_text())["data"]


def source(records, fetched_at="2024-01-01T00:00:00+00:00"):
    return {"url": "test", "status": 200, "attempts": 1, "fetched_at": fetched_at,
            "data": [Period.from_record(record) for record in records]}


def write_days(tmp_path: Path, periods: list[dict], fetched_at="2024-01-01T00:00:00+00:00") -> list[str]:
    """Bronze day files from API period records, split by the UTC date of their start."""
    store = BronzeStore(tmp_path / "bronze")
    by_day: dict[str, list] = {}
    for period in periods:
        by_day.setdefault(period["from"][:10], []).append(period)
    paths = []
    for day, records in sorted(by_day.items()):
        store.write(build_document(dt.date.fromisoformat(day), [source(records, fetched_at)]))
        paths.append(str(store.path(dt.date.fromisoformat(day))))
    return paths


def silver_of(spark, paths) -> pd.DataFrame:
    return flatten_bronze(read_bronze(spark, paths)).toPandas()


def pandas_gold(periods: list[dict]) -> pd.DataFrame:
    """Daily rows computed independently with Python's Decimal (half-up to the cent)."""
    rows = []
    for period in periods:
        for region in period["regions"]:
            mix = {m["fuel"]: Decimal(str(m["perc"])) for m in region["generationmix"]}
            rows.append({"regionid": region["regionid"], "date_recorded": dt.date.fromisoformat(period["from"][:10]),
                         "shortname": region["shortname"], "dno": region["dnoregion"],
                         "intensity": Decimal(region["intensity"]["forecast"]), "index": region["intensity"]["index"],
                         **{f"fuel_{f}": mix[f] for f in FUELS}})
    frame = pd.DataFrame(rows)

    def mean(values):
        return (sum(values) / len(values)).quantize(CENT, rounding=ROUND_HALF_UP)

    def mode(labels):
        counts = labels.value_counts()
        top = counts[counts == counts.max()].index
        return max(top, key=INDEX_LABELS.index)

    out = frame.groupby(["regionid", "date_recorded"]).agg(
        shortname=("shortname", "last"), dno=("dno", "last"),
        intensity_avg=("intensity", mean), index_mode=("index", mode),
        **{c: (c, mean) for c in FUEL_COLUMNS}, half_hours=("intensity", "size"),
    ).reset_index()
    return out[list(GOLD_COLUMNS)].sort_values(["date_recorded", "regionid"], ignore_index=True)


def test_real_2019_response_gives_864_silver_rows_and_gold_to_the_cent(spark, tmp_path):
    periods = real_periods()
    paths = write_days(tmp_path, periods)
    silver_frame = flatten_bronze(read_bronze(spark, paths))
    silver = silver_frame.toPandas()
    assert len(silver) == 48 * 18 == 864
    assert list(silver.columns) == list(SILVER_COLUMNS)
    assert not silver.duplicated(["regionid", "timestamp"]).any()
    assert str(silver["timestamp"].min()) == "2019-08-25 12:30:00"
    assert silver["missing_fuels"].isna().all() and silver["extra_fuels"].isna().all()

    gold = aggregate_daily(silver_frame).toPandas().sort_values(["date_recorded", "regionid"], ignore_index=True)
    expected = pandas_gold(periods)
    assert len(gold) == 36 and sorted(gold["half_hours"].unique()) == [23, 25]
    pd.testing.assert_frame_equal(gold.astype(object), expected.astype(object), check_exact=True)


def test_latest_fetch_wins_then_later_record(spark, tmp_path):
    period = real_periods()[0]  # 2019-08-25T12:30Z
    older, newer, repeated = (copy.deepcopy(period) for _ in range(3))
    newer["regions"][0]["intensity"]["forecast"] = 111
    repeated["regions"][0]["intensity"]["forecast"] = 222
    store = BronzeStore(tmp_path / "bronze")
    day = dt.date(2019, 8, 25)
    # The earlier source is stored later in the file, but it is older: the newer fetch wins.
    store.write(build_document(day, [source([newer], "2024-02-01T00:00:00+00:00"),
                                     source([older], "2024-01-01T00:00:00+00:00")]))
    silver = silver_of(spark, [str(store.path(day))])
    assert len(silver) == 18
    assert silver.loc[silver.regionid == 1, "intensity_forecast"].item() == 111
    # Within one fetch, the API repeating a period: the later record wins.
    store.write(build_document(day, [source([newer, repeated])]))
    silver = silver_of(spark, [str(store.path(day))])
    assert silver.loc[silver.regionid == 1, "intensity_forecast"].item() == 222


def test_unknown_fuel_is_kept_and_flagged_and_missing_fuel_is_null(spark, tmp_path):
    period = copy.deepcopy(real_periods()[0])
    period["regions"][0]["generationmix"].append({"fuel": "storage", "perc": 1.5})
    del period["regions"][1]["generationmix"][8]  # wind
    silver = silver_of(spark, write_days(tmp_path, [period]))
    first, second = (silver[silver.regionid == r].iloc[0] for r in (1, 2))
    assert dict(first["extra_fuels"]) == {"storage": 1.5}
    assert pd.isna(second["fuel_wind"]) and list(second["missing_fuels"]) == ["wind"]
    problems = silver_problems(silver)
    assert list(problems[SILVER_NO_UNKNOWN_FUELS]) == [dt.date(2019, 8, 25)]


def test_a_day_with_few_half_hours_counts_them(spark, tmp_path):
    periods = [p for p in real_periods() if p["from"].startswith("2019-08-26")][:5]
    gold = aggregate_daily(flatten_bronze(read_bronze(spark, write_days(tmp_path, periods)))).toPandas()
    assert set(gold["half_hours"]) == {5} and len(gold) == 18


def test_index_mode_tie_goes_to_the_dirtier_label(spark, tmp_path):
    periods = [copy.deepcopy(p) for p in real_periods()[:2]]
    for period, label in zip(periods, ("low", "high")):
        for region in period["regions"]:
            region["intensity"]["index"] = label
    gold = aggregate_daily(flatten_bronze(read_bronze(spark, write_days(tmp_path, periods)))).toPandas()
    assert set(gold["index_mode"]) == {"high"}


def test_a_corrupt_bronze_file_stops_silver_with_its_name(spark, tmp_path):
    paths = write_days(tmp_path, real_periods()[:2])
    Path(paths[0]).write_bytes(b"not gzip at all")
    with pytest.raises(Exception) as raised:
        flatten_bronze(read_bronze(spark, paths)).count()
    assert "2019-08-25" in str(raised.value)


def full_day_periods(day: dt.date) -> list[dict]:
    from carbon_assets.emulator import regional_period_records
    from carbon_assets.request_plan import api_datetime, half_hours_of

    return [{"from": api_datetime(s), "to": api_datetime(s + dt.timedelta(minutes=30)),
             "regions": regional_period_records(s)} for s in half_hours_of(day)]


def test_only_days_that_may_repeat_a_half_hour_are_deduplicated_and_both_kinds_agree(spark, tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    clean_day, repeating_day = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    store.write(build_document(clean_day, [source(full_day_periods(clean_day))]))
    periods = full_day_periods(repeating_day)
    repeated = copy.deepcopy(periods[10])
    repeated["regions"][4]["intensity"]["forecast"] = 999  # the API repeating a period, changed
    store.write(build_document(repeating_day, [source([*periods, repeated])]))
    assert read_head(store.path(clean_day)).holds_each_half_hour_once
    assert not read_head(store.path(repeating_day)).holds_each_half_hour_once

    paths = [str(store.path(clean_day)), str(store.path(repeating_day))]
    silver = silver_from_bronze(spark, paths).toPandas()
    everything_deduplicated = flatten_bronze(read_bronze(spark, paths)).toPandas()
    key = ["date_recorded", "regionid", "timestamp"]
    assert len(silver) == 2 * 864 and not silver.duplicated(key).any()
    region = periods[10]["regions"][4]["regionid"]
    at = pd.Timestamp(periods[10]["from"].replace("Z", ""))
    assert silver.loc[(silver.regionid == region) & (silver.timestamp == at), "intensity_forecast"].item() == 999
    pd.testing.assert_frame_equal(silver.sort_values(key).reset_index(drop=True),
                                  everything_deduplicated.sort_values(key).reset_index(drop=True))
