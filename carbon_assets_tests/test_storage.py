"""The lake's Storage, the same contract on local disk and in an object store (a real S3
server on loopback, moto's): reads, atomic writes, listings, moves, staging and publishing."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import socket
import subprocess

import pyarrow as pa
import pytest

from carbon_assets.lake import day_files, read_parquet_table
from carbon_assets.lake_files import (
    PARTITION_COLUMN,
    day_file_bytes,
    day_file_rows,
    day_key,
    publish_day_files,
    read_day_file,
    replace_day_file,
)
from carbon_assets.parquet_io_manager import export_csv
from carbon_assets.partitions import DayRange
from carbon_assets.storage import (
    STAGING_PREFIX,
    TEMP_PREFIX,
    LocalStorage,
    ObjectStorage,
    StagingAreaGone,
    new_area_name,
    read_file,
    stale_area,
    storage_at,
)

DAY = dt.date(2024, 1, 1)


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "lake")
    return storage_at(request.getfixturevalue("s3_lake"))


def rows(day: dt.date, n: int = 2) -> pa.Table:
    return pa.table({PARTITION_COLUMN: pa.array([day] * n, pa.date32()), "regionid": range(n)})


def test_a_file_reads_back_and_is_listed_under_its_folder(lake):
    lake.write_bytes("bronze/2024/2024-01-01.json.gz", b"one")
    lake.write_bytes("bronze/2024/2024-01-02.json.gz", b"two!")
    assert lake.read_bytes("bronze/2024/2024-01-01.json.gz") == b"one"
    assert lake.read_start("bronze/2024/2024-01-02.json.gz", 2) == b"tw"
    bronze = lake / "bronze"
    assert bronze.files() == ["2024/2024-01-01.json.gz", "2024/2024-01-02.json.gz"]
    assert bronze.sizes("2024") == {"2024/2024-01-01.json.gz": 3, "2024/2024-01-02.json.gz": 4}
    assert bronze.glob("2024/*-02.json.gz") == ["2024/2024-01-02.json.gz"]
    assert bronze.existing(["2024/2024-01-01.json.gz", "2024/2024-01-09.json.gz"]) == {
        "2024/2024-01-01.json.gz"
    }
    assert read_file(bronze.location("2024/2024-01-02.json.gz")) == b"two!"
    assert (lake / "nothing").files() == [] and not lake.exists("nothing/here")
    versions = bronze.versions("2024")
    assert versions == {key: bronze.version(key) for key in bronze.files("2024")}
    bronze.write_bytes("2024/2024-01-02.json.gz", b"two?")
    assert bronze.versions()["2024/2024-01-02.json.gz"] != versions["2024/2024-01-02.json.gz"]
    assert bronze.versions()["2024/2024-01-01.json.gz"] == versions["2024/2024-01-01.json.gz"]
    with pytest.raises(FileNotFoundError):
        lake.read_bytes("bronze/2024/2024-01-03.json.gz")


def test_a_write_that_fails_leaves_the_old_file(lake):
    lake.write_bytes("exports/table.csv", b"old")
    with pytest.raises(RuntimeError, match="half-way"), lake.writer("exports/table.csv") as out:
        out.write(b"new, but not whole")
        raise RuntimeError("half-way")
    assert lake.read_bytes("exports/table.csv") == b"old"
    with lake.writer("exports/table.csv") as out:
        out.write(b"new")
    assert lake.read_bytes("exports/table.csv") == b"new"
    assert lake.files("exports") == ["exports/table.csv"]


def test_a_damaged_file_moves_aside_unless_it_was_replaced(lake):
    lake.write_bytes("bronze/2024/d.json.gz", b"garbage")
    seen = lake.version("bronze/2024/d.json.gz")
    lake.write_bytes("bronze/2024/d.json.gz", b"a good new file")
    assert not lake.move_unless_replaced("bronze/2024/d.json.gz", "bronze/_damaged/d", seen)
    current = lake.version("bronze/2024/d.json.gz")
    assert lake.move_unless_replaced("bronze/2024/d.json.gz", "bronze/_damaged/d", current)
    assert lake.files("bronze") == ["bronze/_damaged/d"]
    assert lake.delete("bronze") and lake.files() == []


def test_staged_day_files_are_invisible_until_published(lake):
    silver = lake / "silver"
    replace_day_file(silver, DAY, rows(DAY, 1))
    area = silver.staging_area()
    staged = {
        day: area.put(day_key(day), day_file_bytes(rows(day)))
        for day in (DAY, DAY + dt.timedelta(days=1))
    }
    assert list(day_files(silver)) == ["2024-01-01"]  # readers list no staged file
    assert read_parquet_table(silver)["regionid"].tolist() == [0]
    publish_day_files(silver, staged)
    area.discard()
    assert list(day_files(silver)) == ["2024-01-01", "2024-01-02"]
    assert not [key for key in silver.files() if TEMP_PREFIX in key]
    assert day_file_rows(day_files(silver)["2024-01-02"]) == 2
    assert read_day_file(silver.location(day_key(DAY)), ["regionid"]).num_rows == 2
    table = read_parquet_table(silver, DayRange(DAY, DAY + dt.timedelta(days=1)))
    assert len(table) == 4 and set(table[PARTITION_COLUMN].astype(str)) == {
        "2024-01-01",
        "2024-01-02",
    }
    assert export_csv(silver, lake / "exports", "silver.csv").rows == 4
    assert lake.read_bytes("exports/silver.csv").count(b"\n") == 5  # a header and 4 rows


def test_a_discarded_area_stages_nothing_more_and_leftovers_go(lake):
    silver = lake / "silver"
    area = silver.staging_area()
    area.put("a.parquet", b"x")
    area.discard()
    live = silver.files()
    if isinstance(silver, LocalStorage):  # a worker still running after its job failed
        with pytest.raises(StagingAreaGone):
            area.put("b.parquet", b"y")
    else:  # an object store has no folder to take away: the area stays while its run lives
        area.put("b.parquet", b"y")
        live = [f"{area.key}/b.parquet"]
    killed = f"{STAGING_PREFIX}20240101T000000Z-{dead_pid()}-0000@{socket.gethostname()}"
    silver.write_bytes(f"{killed}/c.parquet", b"z")
    silver.write_bytes(f"{STAGING_PREFIX}unreadable/d.parquet", b"z")
    silver.write_bytes(day_key(DAY), b"kept")
    assert len(silver.remove_leftovers()) == 2
    assert silver.files() == sorted([*live, day_key(DAY)])


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_only_the_staging_areas_of_ended_runs_are_stale():
    now = dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)
    here, alive, dead = socket.gethostname(), os.getpid(), dead_pid()
    assert not stale_area(f"{STAGING_PREFIX}20240101T115000Z-{alive}-ab@{here}", now)
    assert stale_area(f"{STAGING_PREFIX}20240101T115000Z-{dead}-ab@{here}", now)
    # another machine's run: alive as far as anyone here knows, until no run could be
    assert not stale_area(f"{STAGING_PREFIX}20240101T115000Z-{dead}-ab@elsewhere", now)
    assert stale_area(f"{STAGING_PREFIX}20240101T055000Z-{alive}-ab@elsewhere", now)
    assert stale_area(f"{STAGING_PREFIX}gibberish", now)
    assert not stale_area(new_area_name())


def test_an_object_store_is_picklable_and_holds_no_credentials(s3_lake):
    storage = storage_at(s3_lake) / "silver"
    storage.write_bytes("k", b"v")  # its filesystem (with the keys it found) is built
    copy = pickle.loads(pickle.dumps(storage))
    assert copy == storage and copy.read_bytes("k") == b"v"
    assert b"test" not in pickle.dumps(storage)  # the access key moto is given
    assert isinstance(storage, ObjectStorage) and storage.url == f"{s3_lake}/silver"
    assert storage.location("k") == f"{s3_lake}/silver/k"
