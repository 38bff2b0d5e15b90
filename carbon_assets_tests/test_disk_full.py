"""A full disk: the error names the file and says what to do; the old file and no temporary
one are left. On a real tmpfs mounted small (skipped where the test may not mount one).
A full disk under a run's silver folder is in test_bad_inputs.py."""

from __future__ import annotations

import datetime as dt

import pytest

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.storage import TEMP_PREFIX, LakeWriteError, atomic_write_bytes
from carbon_assets_tests.helpers import real_periods, small_filesystem, source

DAY = dt.date(2019, 8, 25)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    with small_filesystem(tmp_path / "lake", 64 * 1024) as lake:
        target = lake / "exports" / "table.csv"
        atomic_write_bytes(target, b"old,content\n")
        with pytest.raises(LakeWriteError) as raised:
            atomic_write_bytes(target, b"x" * 200_000)
        message = str(raised.value)
        assert message == (
            f"No space left on the device of {target.parent} while writing table.csv "
            "(200,000 bytes): free space there (or set CARBON_DATA_DIR to a bigger disk) and "
            "re-run; the file is unchanged"
        )
        assert raised.value.filename == str(target)
        assert target.read_bytes() == b"old,content\n"
        assert not list(lake.rglob(f"{TEMP_PREFIX}*"))


def test_a_bronze_day_file_on_a_full_disk_is_named(tmp_path):
    periods = [p for p in real_periods() if p["from"].startswith("2019-08-25")]
    with small_filesystem(tmp_path / "bronze", 8 * 1024) as folder:
        store = BronzeStore(folder)
        with pytest.raises(LakeWriteError, match="No space left") as raised:
            store.write(build_document(DAY, [source(periods)]))
        path = store.path(DAY)
        assert f"the device of {path.parent} while writing {path.name}" in str(raised.value)
        assert not store.path(DAY).exists() and not list(folder.rglob(f"{TEMP_PREFIX}*"))
