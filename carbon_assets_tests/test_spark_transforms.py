"""Silver and gold transforms with a real local Spark session, without Dagster."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.gold.assets import gold_from_silver
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.lake import day_files
from carbon_assets.silver.assets import silver_from_bronze
from carbon_assets.silver.checks import SILVER_NO_UNKNOWN_FUELS, silver_problems
from carbon_assets.silver.rows import SILVER_COLUMNS
from carbon_assets.vocabulary import FUEL_COLUMNS, FUELS, INDEX_LABELS
from carbon_assets_tests.helpers import dated, real_periods, source, write_days

pytestmark = pytest.mark.spark

CENT = Decimal("0.01")
# Gold's columns but the fetch time (Spark hands timestamps back in local time; gold/test_rows.py)
VALUE_COLUMNS = [c for c in GOLD_COLUMNS if c != "fetched_at"]


def silver_of(spark, paths) -> pd.DataFrame:
    return silver_from_bronze(spark, dated(paths)).rows().toPandas()


def pandas_gold(periods: list[dict]) -> pd.DataFrame:
    """Daily rows computed independently with Python's Decimal (half-up to the cent)."""
    rows = []
    for period in periods:
        for region in period["regions"]:
            mix = {m["fuel"]: Decimal(str(m["perc"])) for m in region["generationmix"]}
            rows.append(
                {
                    "regionid": region["regionid"],
                    "date_recorded": dt.date.fromisoformat(period["from"][:10]),
                    "shortname": region["shortname"],
                    "dno": region["dnoregion"],
                    "intensity": Decimal(region["intensity"]["forecast"]),
                    "index": region["intensity"]["index"],
                    **{f"fuel_{f}": mix[f] for f in FUELS},
                }
            )
    frame = pd.DataFrame(rows)

    def mean(values):
        return (sum(values) / len(values)).quantize(CENT, rounding=ROUND_HALF_UP)

    def mode(labels):
        counts = labels.value_counts()
        top = counts[counts == counts.max()].index
        return max(top, key=INDEX_LABELS.index)

    out = (
        frame.groupby(["regionid", "date_recorded"])
        .agg(
            shortname=("shortname", "last"),
            dno=("dno", "last"),
            intensity_avg=("intensity", mean),
            index_mode=("index", mode),
            **{c: (c, mean) for c in FUEL_COLUMNS},
            half_hours=("intensity", "size"),
        )
        .reset_index()
    )
    return out[list(VALUE_COLUMNS)].sort_values(["date_recorded", "regionid"], ignore_index=True)


def gold_of(spark, tmp_path: Path, bronze_paths: list[str]) -> pd.DataFrame:
    """Silver from bronze, stored as the IO manager stores it, then gold from its day files."""
    folder = tmp_path / "silver"
    silver_from_bronze(spark, dated(bronze_paths)).write(folder)
    gold = gold_from_silver(spark, day_files(folder)).rows().toPandas()
    return gold.sort_values(["date_recorded", "regionid"], ignore_index=True)


def test_real_2019_response_gives_864_silver_rows_and_gold_to_the_cent(spark, tmp_path):
    periods = real_periods()
    paths = write_days(tmp_path, periods)
    silver = silver_from_bronze(spark, dated(paths)).rows().toPandas()
    assert len(silver) == 48 * 18 == 864
    assert list(silver.columns) == list(SILVER_COLUMNS)
    assert not silver.duplicated(["regionid", "timestamp"]).any()
    assert str(silver["timestamp"].min()) == "2019-08-25 12:30:00"
    assert silver["missing_fuels"].isna().all() and silver["extra_fuels"].isna().all()

    gold = gold_of(spark, tmp_path, paths)
    expected = pandas_gold(periods)
    assert len(gold) == 36 and sorted(gold["half_hours"].unique()) == [23, 25]
    assert gold["fetched_at"].notna().all()
    pd.testing.assert_frame_equal(
        gold[VALUE_COLUMNS].astype(object), expected.astype(object), check_exact=True
    )


def test_latest_fetch_wins_then_later_record(spark, tmp_path):
    period = real_periods()[0]  # 2019-08-25T12:30Z
    older, newer, repeated = (copy.deepcopy(period) for _ in range(3))
    newer["regions"][0]["intensity"]["forecast"] = 111
    repeated["regions"][0]["intensity"]["forecast"] = 222
    store = BronzeStore(tmp_path / "bronze")
    day = dt.date(2019, 8, 25)
    # The earlier source is stored later in the file, but it is older: the newer fetch wins.
    store.write(
        build_document(
            day,
            [
                source([newer], "2024-02-01T00:00:00+00:00"),
                source([older], "2024-01-01T00:00:00+00:00"),
            ],
        )
    )
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
    # Bronze would mark the half-hour invalid (its shares no longer sum to 100): silver's own
    # reading, of a file bronze did not mark.
    store = BronzeStore(tmp_path / "bronze")
    document = build_document(dt.date(2019, 8, 25), [source([period])])
    document.pop("invalid_half_hours", None)
    store.write(document)
    silver = silver_of(spark, [str(store.path(dt.date(2019, 8, 25)))])
    first, second = (silver[silver.regionid == r].iloc[0] for r in (1, 2))
    assert dict(first["extra_fuels"]) == {"storage": 1.5}
    assert pd.isna(second["fuel_wind"]) and list(second["missing_fuels"]) == ["wind"]
    problems = silver_problems(silver)
    assert list(problems[SILVER_NO_UNKNOWN_FUELS]) == [dt.date(2019, 8, 25)]


def test_a_day_with_few_half_hours_counts_them(spark, tmp_path):
    periods = [p for p in real_periods() if p["from"].startswith("2019-08-26")][:5]
    gold = gold_of(spark, tmp_path, write_days(tmp_path, periods))
    assert set(gold["half_hours"]) == {5} and len(gold) == 18


def test_index_mode_tie_goes_to_the_dirtier_label(spark, tmp_path):
    periods = [copy.deepcopy(p) for p in real_periods()[:2]]
    for period, label in zip(periods, ("low", "high")):
        for region in period["regions"]:
            region["intensity"]["index"] = label
    gold = gold_of(spark, tmp_path, write_days(tmp_path, periods))
    assert set(gold["index_mode"]) == {"high"}


def test_a_corrupt_bronze_file_stops_silver_with_its_name(spark, tmp_path):
    paths = write_days(tmp_path, real_periods()[:2])
    Path(paths[0]).write_bytes(b"not gzip at all")
    with pytest.raises(Exception) as raised:
        silver_from_bronze(spark, dated(paths)).rows().count()
    assert "2019-08-25" in str(raised.value)
