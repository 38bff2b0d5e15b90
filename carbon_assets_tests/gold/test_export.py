"""The CSV export of gold: the whole table, day files of an older layout included, written
again only when its day files or the export itself changed (pure; on local disk and on the
local S3 server)."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from carbon_assets.lake_files import day_file_bytes, day_key
from carbon_assets.parquet_io_manager import CsvExport, export_csv, export_record_key
from carbon_assets.storage import storage_at


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
    assert export_csv(gold, export.parent, export.name).rows == 2
    rows = list(csv.DictReader(export.open()))
    assert [row["date_recorded"] for row in rows] == ["2024-01-01", "2024-01-02"]
    assert rows[0]["fetched_at"] == "" and rows[1]["fetched_at"].startswith("2024-01-03")


def test_an_export_of_the_same_day_files_is_not_written_again(tmp_path):
    gold, export = tmp_path / "gold", tmp_path / "exports" / "gold.csv"
    for day in ("2024-01-01", "2024-01-02"):
        day_file(gold, day, pa.table({"regionid": [1, 2], "intensity_avg": [10.5, 11.5]}))
    first = export_csv(gold, export.parent, export.name)
    assert (first.rows, first.written) == (4, True)
    written, inode = export.read_bytes(), export.stat().st_ino

    again = export_csv(gold, export.parent, export.name)
    assert (again.rows, again.written) == (4, False)
    assert export.read_bytes() == written and export.stat().st_ino == inode  # not touched

    # A day file replaced: written again, with its new rows.
    replaced = gold / "date_recorded=2024-01-02" / "part-0.parquet"
    replaced.unlink()
    pq.write_table(pa.table({"regionid": [1, 2, 3], "intensity_avg": [1.0, 2.0, 3.0]}), replaced)
    assert export_csv(gold, export.parent, export.name) == type(first)(rows=5, written=True)
    assert export.read_text().count("\n") == 6  # a header and 5 rows


def test_an_export_is_written_again_when_it_or_its_record_changed(tmp_path):
    gold, exports = tmp_path / "gold", tmp_path / "exports"
    day_file(gold, "2024-01-01", pa.table({"regionid": [1], "intensity_avg": [10.5]}))
    export = exports / "gold.csv"
    assert export_csv(gold, exports, "gold.csv").written
    whole = export.read_bytes()

    export.write_bytes(b"edited by hand\n")
    assert export_csv(gold, exports, "gold.csv").written and export.read_bytes() == whole
    export.unlink()
    assert export_csv(gold, exports, "gold.csv").written and export.read_bytes() == whole
    # A run that died after the export and before its record: the record is not there.
    (exports / export_record_key("gold.csv")).unlink()
    assert export_csv(gold, exports, "gold.csv").written
    (exports / export_record_key("gold.csv")).write_text("{not json")
    assert export_csv(gold, exports, "gold.csv").written
    assert not export_csv(gold, exports, "gold.csv").written


def test_an_unchanged_export_on_object_storage_is_not_written_again(s3_lake):
    gold, exports = storage_at(f"{s3_lake}/gold"), storage_at(f"{s3_lake}/exports")

    def store_day(day: dt.date, intensities: list[float]) -> None:
        dates = pa.array([day] * len(intensities), pa.date32())
        table = pa.table(
            {"date_recorded": dates, "regionid": range(1, 1 + len(intensities)),
             "intensity_avg": intensities}
        )  # fmt: skip
        gold.write_bytes(day_key(day), day_file_bytes(table))

    for day in (dt.date(2024, 1, 1), dt.date(2024, 1, 2)):
        store_day(day, [10.5, 11.5])
    assert export_csv(gold, exports, "gold.csv") == CsvExport(rows=4, written=True)
    version = exports.version("gold.csv")

    assert export_csv(gold, exports, "gold.csv") == CsvExport(rows=4, written=False)
    assert exports.version("gold.csv") == version  # the object not written again

    store_day(dt.date(2024, 1, 2), [1.0, 2.0, 3.0])
    assert export_csv(gold, exports, "gold.csv") == CsvExport(rows=5, written=True)
    assert exports.read_bytes("gold.csv").count(b"\n") == 6  # a header and 5 rows
