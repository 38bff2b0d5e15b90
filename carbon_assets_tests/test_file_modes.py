"""Lake files get the modes the umask gives any tool's file (0644 under 022, 0600 under 077)."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake_files import (
    PARTITION_COLUMN,
    day_file_bytes,
    day_folder,
    publish_day_files,
    replace_day_file,
)
from carbon_assets.parquet_io_manager import export_csv
from carbon_assets.storage import LocalStorage, atomic_write_bytes
from carbon_assets_tests.helpers import real_periods, source

DAY = dt.date(2019, 8, 25)


@pytest.fixture(params=[0o022, 0o077, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def day_rows(day: dt.date) -> pa.Table:
    return pa.table({PARTITION_COLUMN: pa.array([day], pa.date32()), "regionid": [1]})


def test_lake_files_honour_the_umask(tmp_path, umask):
    expected = 0o666 & ~umask

    atomic_write_bytes(tmp_path / "plain.txt", b"x")
    assert mode(tmp_path / "plain.txt") == expected

    store = BronzeStore(tmp_path / "bronze")
    records = [p for p in real_periods() if p["from"].startswith(DAY.isoformat())]
    store.write(build_document(DAY, [source(records)]))
    assert mode(store.path(DAY)) == expected
    assert mode(store.path(DAY).parent) == 0o777 & ~umask

    gold = LocalStorage(tmp_path / "gold")
    replace_day_file(gold, DAY, day_rows(DAY))
    other = DAY + dt.timedelta(days=1)
    area = gold.staging_area()
    publish_day_files(gold, {other: area.put("day.parquet", day_file_bytes(day_rows(other)))})
    area.discard()
    for day in (DAY, other):
        (file,) = (gold.root / day_folder(day)).iterdir()
        assert mode(file) == expected, file

    assert export_csv(gold, tmp_path / "exports", "gold.csv").rows == 2
    assert mode(tmp_path / "exports" / "gold.csv") == expected


def test_a_file_replaced_takes_the_umask_of_its_writer(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_bytes(tmp_path / "f", b"old")
        assert mode(tmp_path / "f") == 0o600
        os.umask(0o022)
        atomic_write_bytes(tmp_path / "f", b"new")
        assert mode(tmp_path / "f") == 0o644 and (tmp_path / "f").read_bytes() == b"new"
    finally:
        os.umask(previous)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no staged file left
