"""Silver and gold leave alone a day built from the same input by the same code: its file keeps
its bytes and its modification time, and its summary is the one it had when built."""

import copy
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from carbon_assets import lake_files
from carbon_assets.gold.assets import gold_from_silver
from carbon_assets.gold.rows import GOLD_SCHEMA, gold_rows_of_file
from carbon_assets.lake import day_files
from carbon_assets.lake_files import BuiltFrom, code_version, day_file_bytes, day_key
from carbon_assets.partitions import DayRange
from carbon_assets.silver.assets import silver_from_bronze
from carbon_assets.silver.rows import SILVER_SCHEMA, silver_rows_of_file
from carbon_assets_tests.helpers import dated, real_periods, write_days

DAYS = DayRange(dt.date(2019, 8, 25), dt.date(2019, 8, 26))
COUNTED = ["conflicting_versions"]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*.parquet"))
    }


def summaries(table: pa.Table) -> list[dict]:
    return table.drop_columns(["staged"]).to_pylist()


def rebuilt(table: pa.Table) -> list[str]:
    rows = table.to_pylist()
    return [row["date_recorded"].isoformat() for row in rows if row["staged"] is not None]


def write_silver(spark, bronze: list[str], folder: Path) -> pa.Table:
    return silver_from_bronze(spark, dated(bronze)).write(folder, COUNTED, DAYS)


def write_gold(spark, silver: Path, folder: Path) -> pa.Table:
    return gold_from_silver(spark, day_files(silver)).write(folder, [], DAYS)


@pytest.mark.spark
def test_a_rerun_with_nothing_new_leaves_every_day_file_as_it_was(spark, tmp_path):
    bronze = write_days(tmp_path, real_periods())
    silver, gold = tmp_path / "silver", tmp_path / "gold"
    first_silver = write_silver(spark, bronze, silver)
    first_gold = write_gold(spark, silver, gold)
    assert rebuilt(first_silver) == rebuilt(first_gold) == ["2019-08-25", "2019-08-26"]
    before = snapshot(silver), snapshot(gold)

    again_silver = write_silver(spark, bronze, silver)
    again_gold = write_gold(spark, silver, gold)

    assert rebuilt(again_silver) == rebuilt(again_gold) == []
    assert summaries(again_silver) == summaries(first_silver)
    assert summaries(again_gold) == summaries(first_gold)
    assert (snapshot(silver), snapshot(gold)) == before  # bytes and modification times


@pytest.mark.spark
def test_a_day_is_built_again_when_anything_it_was_made_of_differs(spark, tmp_path, monkeypatch):
    periods = real_periods()
    bronze = write_days(tmp_path, periods)
    silver = tmp_path / "silver"
    write_silver(spark, bronze, silver)

    # A changed input: only its day.
    changed = copy.deepcopy(periods)
    changed[-1]["regions"][0]["intensity"]["forecast"] += 1  # a half-hour of the 26th
    bronze = write_days(tmp_path, changed)
    assert rebuilt(write_silver(spark, bronze, silver)) == ["2019-08-26"]

    # A day file gone, and one whose footer records nothing (an older writer).
    (silver / day_key(dt.date(2019, 8, 25))).unlink()
    assert rebuilt(write_silver(spark, bronze, silver)) == ["2019-08-25"]
    old_style = silver / day_key(dt.date(2019, 8, 26))
    table = pq.read_table(old_style).replace_schema_metadata(None)
    dates = pa.array([dt.date(2019, 8, 26)] * len(table), pa.date32())
    old_style.write_bytes(day_file_bytes(table.append_column("date_recorded", dates)))
    assert rebuilt(write_silver(spark, bronze, silver)) == ["2019-08-26"]

    # A damaged day file is built again, not trusted.
    old_style.write_bytes(b"PAR1 not parquet")
    assert rebuilt(write_silver(spark, bronze, silver)) == ["2019-08-26"]

    # New code: every day.
    monkeypatch.setattr("carbon_assets.spark.code_version", lambda *_: "a new version")
    assert rebuilt(write_silver(spark, bronze, silver)) == ["2019-08-25", "2019-08-26"]


def test_the_code_version_follows_the_transform_its_modules_and_the_schema():
    silver = code_version(silver_rows_of_file, SILVER_SCHEMA)
    assert silver == code_version(silver_rows_of_file, SILVER_SCHEMA)
    assert silver != code_version(gold_rows_of_file, GOLD_SCHEMA)
    assert silver != code_version(silver_rows_of_file, SILVER_SCHEMA.remove(0))


def test_a_footer_that_records_nothing_usable_is_no_record():
    assert BuiltFrom.of_footer(None) is None
    assert BuiltFrom.of_footer({lake_files.BUILT_FROM: b"not json"}) is None
    assert BuiltFrom.of_footer({lake_files.BUILT_FROM: b'{"input_sha256": "x"}'}) is None
    recorded = BuiltFrom("abc", "v1", {"column": 3})
    assert BuiltFrom.of_footer({lake_files.BUILT_FROM: recorded.to_json().encode()}) == recorded
