"""Silver rows from bronze day files in plain Python: what each Spark worker computes."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
from pathlib import Path

import msgspec
import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.silver.rows import SILVER_COLUMNS, BronzeFileError, silver_rows
from carbon_assets.vocabulary import FUELS
from carbon_assets_tests.helpers import real_periods, source, write_days

DAY = dt.date(2019, 8, 25)


def rows_of(path: str | Path) -> list[dict]:
    return silver_rows(Path(path).read_bytes(), str(path)).to_pylist()


def stored(tmp_path: Path, sources: list[dict], day: dt.date = DAY) -> Path:
    """A day file of `sources`, without bronze's marking of invalid half-hours: how silver
    reads odd records itself (a day bronze marked is refused, see below)."""
    store = BronzeStore(tmp_path / "bronze")
    document = build_document(day, sources)
    document.pop("invalid_half_hours", None)
    store.write(document)
    return store.path(day)


def edited(tmp_path: Path, edit) -> Path:
    """A day file whose decoded document was changed by `edit`, written back as gzip JSON."""
    path = Path(write_days(tmp_path, real_periods())[0])
    document = msgspec.json.decode(gzip.decompress(path.read_bytes()))
    edit(document)
    path.write_bytes(gzip.compress(msgspec.json.encode(document)))
    return path


def test_the_real_response_flattens_to_one_typed_row_per_region_and_half_hour(tmp_path):
    first_day = write_days(tmp_path, real_periods())[0]  # 2019-08-25: 23 half-hours from 12:30
    rows = rows_of(first_day)
    assert len(rows) == 23 * 18
    assert list(rows[0]) == list(SILVER_COLUMNS)
    record = real_periods()[0]["regions"][0]
    first = rows[0]
    assert first["timestamp"] == dt.datetime(2019, 8, 25, 12, 30, tzinfo=dt.UTC)
    assert first["date_recorded"] == DAY
    assert (first["regionid"], first["shortname"], first["dno"]) == (
        record["regionid"],
        record["shortname"],
        record["dnoregion"],
    )
    assert first["intensity_forecast"] == record["intensity"]["forecast"]
    assert [first[f"fuel_{fuel}"] for fuel in FUELS] == [m["perc"] for m in record["generationmix"]]
    assert first["extra_fuels"] is None and first["missing_fuels"] is None
    assert first["fetched_at"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_half_hours_of_another_date_are_left_to_that_dates_file(tmp_path):
    next_day_period = next(p for p in real_periods() if p["from"].startswith("2019-08-26"))
    path = stored(tmp_path, [source([real_periods()[0], next_day_period])])
    assert {row["date_recorded"] for row in rows_of(path)} == {DAY}


def test_a_record_off_the_half_hour_grid_is_no_half_hour_of_silver(tmp_path):
    period = real_periods()[0]  # 12:30
    quarter = {**copy.deepcopy(period), "from": "2019-08-25T12:45Z", "to": "2019-08-25T13:15Z"}
    seconds = {**copy.deepcopy(period), "from": "2019-08-25T13:00:30Z"}
    rows = rows_of(stored(tmp_path, [source([period, quarter, seconds])]))
    assert len(rows) == 18
    assert {row["timestamp"] for row in rows} == {dt.datetime(2019, 8, 25, 12, 30, tzinfo=dt.UTC)}


def test_a_fetch_with_a_time_beats_one_without_and_the_last_region_entry_breaks_a_tie(tmp_path):
    period = real_periods()[0]
    dated, undated = copy.deepcopy(period), copy.deepcopy(period)
    dated["regions"][0]["intensity"]["forecast"] = 111
    undated["regions"][0]["intensity"]["forecast"] = 999
    path = stored(tmp_path, [source([dated]), source([undated], fetched_at=None)])
    assert next(r for r in rows_of(path) if r["regionid"] == 1)["intensity_forecast"] == 111

    repeated_region = copy.deepcopy(period)
    twice = copy.deepcopy(repeated_region["regions"][0])
    twice["intensity"]["forecast"] = 222
    repeated_region["regions"].append(twice)
    path = stored(tmp_path, [source([repeated_region])])
    rows = rows_of(path)
    assert (
        len(rows) == 18 and next(r for r in rows if r["regionid"] == 1)["intensity_forecast"] == 222
    )


def test_copies_that_disagree_are_counted_and_identical_ones_are_not(tmp_path):
    period = real_periods()[0]
    revised = copy.deepcopy(period)
    revised["regions"][0]["intensity"]["forecast"] += 7  # region 1 only
    again = copy.deepcopy(revised)  # the revision sent twice: still two versions
    rows = rows_of(stored(tmp_path, [source([period, revised, again])]))
    by_region = {row["regionid"]: row for row in rows}
    assert len(rows) == 18
    assert by_region[1]["conflicting_versions"] == 2
    assert by_region[1]["intensity_forecast"] == period["regions"][0]["intensity"]["forecast"] + 7
    assert {row["conflicting_versions"] for row in rows if row["regionid"] != 1} == {None}
    once = rows_of(stored(tmp_path, [source([period, copy.deepcopy(period)])]))
    assert {row["conflicting_versions"] for row in once} == {None}


def test_a_fractional_forecast_rounds_half_up_and_a_repeated_fuel_keeps_its_last_share(tmp_path):
    period = copy.deepcopy(real_periods()[0])
    period["regions"][0]["intensity"]["forecast"] = 176.5
    period["regions"][1]["intensity"]["forecast"] = -2.5
    period["regions"][2]["generationmix"].append({"fuel": "wind", "perc": 42.0})
    rows = {row["regionid"]: row for row in rows_of(stored(tmp_path, [source([period])]))}
    assert rows[1]["intensity_forecast"] == 177 and rows[2]["intensity_forecast"] == -3
    assert rows[3]["fuel_wind"] == 42.0 and rows[3]["extra_fuels"] is None


def test_an_unknown_fuel_is_kept_and_a_missing_one_is_null_and_listed(tmp_path):
    period = copy.deepcopy(real_periods()[0])
    period["regions"][0]["generationmix"].append({"fuel": "storage", "perc": 1.5})
    del period["regions"][1]["generationmix"][8]  # wind
    rows = {row["regionid"]: row for row in rows_of(stored(tmp_path, [source([period])]))}
    assert rows[1]["extra_fuels"] == [("storage", 1.5)] and rows[1]["missing_fuels"] is None
    assert rows[2]["fuel_wind"] is None and rows[2]["missing_fuels"] == ["wind"]


def first_region(document: dict) -> dict:
    return document["sources"][0]["data"][0]["regions"][0]


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            lambda doc: first_region(doc)["generationmix"][0].update(perc="abc"),
            (
                "Expected `float | null`, got `str` - at "
                "`$.sources[0].data[0].regions[0].generationmix[0].perc`"
            ),
        ),
        (
            lambda doc: first_region(doc)["generationmix"][0].pop("fuel"),
            (
                "Object missing required field `fuel` - at "
                "`$.sources[0].data[0].regions[0].generationmix[0]`"
            ),
        ),
        (lambda doc: first_region(doc).update(regionid=2**40), "too large to fit"),
        (
            lambda doc: doc["sources"][0]["data"][0].update({"from": "2019-08-25 12:30"}),
            "without a zone",
        ),
    ],
    ids=["string share", "share without a fuel", "regionid beyond int32", "start without a zone"],
)
def test_a_file_of_another_shape_is_rejected_naming_it_and_the_place(tmp_path, edit, says):
    path = edited(tmp_path, edit)
    with pytest.raises(BronzeFileError) as raised:
        rows_of(path)
    assert str(path) in str(raised.value) and says in str(raised.value), raised.value


def test_bytes_that_are_not_gzip_are_rejected_naming_the_file():
    with pytest.raises(BronzeFileError, match="2019-08-25.json.gz is not a bronze day document"):
        silver_rows(b"not gzip at all", "bronze/2019/2019-08-25.json.gz")


def test_a_day_bronze_marked_invalid_is_refused_naming_file_problems_and_command(tmp_path):
    period = copy.deepcopy(real_periods()[0])
    period["regions"][2]["generationmix"][3]["perc"] = 1e9
    store = BronzeStore(tmp_path / "bronze")
    store.write(build_document(DAY, [source([period])]))  # bronze marks the half-hour invalid
    with pytest.raises(BronzeFileError) as raised:
        rows_of(store.path(DAY))
    message = str(raised.value)
    assert str(store.path(DAY)) in message and "1 half-hour(s) of 2019-08-25 invalid" in message
    assert "region 3" in message and "1e+09" in message
    assert "carbon-assets backfill 2019-08-25 2019-08-25" in message


def test_a_damaged_file_names_the_command_that_fetches_the_day_again():
    with pytest.raises(BronzeFileError) as raised:
        silver_rows(b"\x1f\x8b truncated", "bronze/2019/2019-08-25.json.gz")
    assert "carbon-assets backfill 2019-08-25 2019-08-25" in str(raised.value)
    assert "_damaged" in str(raised.value)
