"""The CSV export of gold: the whole table, day files of an older layout included (pure)."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from carbon_assets.parquet_io_manager import export_csv


def day_file(folder, day: str, table: pa.Table) -> None:
    path = folder / f"date_recorded={day}" / "part-0.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)


def test_a_day_file_written_before_a_column_existed_exports_it_empty(tmp_path):
    gold = tmp_path / "gold"
    day_file(gold, "2024-01-01", pa.table({"regionid": [1], "intensity_avg": [10.5]}))
    fetched = pa.array([dt.datetime(2024, 1, 3, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))
    day_file(
        gold,
        "2024-01-02",
        pa.table({"regionid": [1], "intensity_avg": [11.5], "fetched_at": fetched}),
    )
    export = tmp_path / "exports" / "gold.csv"
    assert export_csv(gold, export.parent, export.name) == 2
    rows = list(csv.DictReader(export.open()))
    assert [row["date_recorded"] for row in rows] == ["2024-01-01", "2024-01-02"]
    assert rows[0]["fetched_at"] == "" and rows[1]["fetched_at"].startswith("2024-01-03")
