"""The lake: where each layer lives, and how its day files are read.

    {root}/bronze/2024/2024-01-01.json.gz                        bronze/day_files.py
    {root}/silver/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day
    {root}/gold/date_recorded=2024-01-01/part-0.parquet          one Parquet file per day
    {root}/bronze_national/2024/2024-01-01.json.gz               the national series, alike
    {root}/silver_national/..., {root}/gold_national/...
    {root}/exports/gold_carbon_intensity_daily.csv
    {root}/source.json                                           lake_source.py

The root is CARBON_LAKE_URL (a local folder or an object-store URL such as s3://bucket/lake),
else CARBON_DATA_DIR (settings.lake_url). Every layer reaches it through a Storage
(storage.py), so the same code runs on local disk and in a bucket. One lake holds data from
one API only (lake_source.py); the demo has a lake of its own (cli/local_stack.py).

Every file is replaced atomically, so a reader (or a run killed half-way) sees a day's old
file or its new one, never a part of either (storage.py, lake_files.py).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.lake_files import DAY_FILE, PARTITION_COLUMN, day_key
from carbon_assets.partitions import DayRange
from carbon_assets.storage import Storage, storage_at

DAY_FILE_PATTERN = f"{PARTITION_COLUMN}=*/{DAY_FILE}"
HIVE_DATES = pa_ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")


class LakeResource(ConfigurableResource):
    """The lake's root (a folder or an object-store URL) and its layer folders."""

    data_dir: str | None = Field(
        default=None,
        description=f"the lake's root, a folder or an object-store URL; unset: "
        f"${settings.LAKE_URL}, else ${settings.DATA_DIR}, else ./data",
    )

    @property
    def storage(self) -> Storage:
        return storage_at(self.data_dir or settings.lake_url())

    @property
    def url(self) -> str:
        """The root as shown to people (a path or a URL, never a credential)."""
        return self.storage.url

    @property
    def bronze(self) -> Storage:
        return self.storage / "bronze"

    @property
    def silver(self) -> Storage:
        return self.storage / "silver"

    @property
    def gold(self) -> Storage:
        return self.storage / "gold"

    @property
    def bronze_national(self) -> Storage:
        return self.storage / "bronze_national"

    @property
    def silver_national(self) -> Storage:
        return self.storage / "silver_national"

    @property
    def gold_national(self) -> Storage:
        return self.storage / "gold_national"

    @property
    def exports(self) -> Storage:
        return self.storage / "exports"


def read_parquet_table(
    folder: Storage | str, days: DayRange | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """A date-partitioned Parquet folder as pandas: the days of a range (all if None), some
    columns (all if None). Only the range's day files are read, each whole at once (one
    request per file on an object store): a reader going through years a month at a time must
    not list every day of the folder for each month. Files written before a layer gained a
    column still read: what a file lacks is null."""
    folder = storage_at(folder)
    keys = _day_keys(folder, days)
    if not keys:
        return pd.DataFrame()
    payloads = folder.read_many(keys.values())
    tables = [_day_table(payloads[key], day, columns) for day, key in keys.items()]
    table = pa.concat_tables(tables, promote_options="default")
    if columns is not None:
        for name in columns:
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows))
        table = table.select(columns)
    return table.to_pandas()


def _day_table(payload: bytes, day: str, columns: list[str] | None) -> pa.Table:
    """One day file's rows (the columns it has of `columns`), its date as PARTITION_COLUMN."""
    day_file = pq.ParquetFile(pa.BufferReader(payload))
    names = day_file.schema_arrow.names
    table = day_file.read(columns=names if columns is None else [c for c in columns if c in names])
    date = pa.array([dt.date.fromisoformat(day)] * table.num_rows, pa.date32())
    return table.append_column(PARTITION_COLUMN, date)


def _day_keys(folder: Storage, days: DayRange | None) -> dict[str, str]:
    """{date: key of its Parquet file} for the days of the range that have one (all if None)."""
    if days is None:
        return _by_day(folder.glob(DAY_FILE_PATTERN))
    wanted = {day.isoformat(): day_key(day) for day in days.days()}
    found = folder.existing(wanted.values())
    return {day: key for day, key in wanted.items() if key in found}


def _by_day(keys: Iterable[str]) -> dict[str, str]:
    """{date: key} of day-file keys (`DAY_FILE_PATTERN`)."""
    return {key.partition("/")[0].partition("=")[2]: key for key in keys}


def day_files_and_digest(folder: Storage | str) -> tuple[dict[str, str], str]:
    """`day_files(folder)` and a digest of which day files the folder holds and of each one's
    version, from one listing: the digest changes whenever a day file is written, replaced or
    removed."""
    folder = storage_at(folder)
    versions = folder.versions()
    keys = _by_day(key for key in versions if fnmatch.fnmatchcase(key, DAY_FILE_PATTERN))
    digest = hashlib.sha256()
    for day, key in sorted(keys.items()):
        digest.update(f"{day}\0{versions[key]!r}\n".encode())
    return {day: folder.location(key) for day, key in keys.items()}, digest.hexdigest()


def day_files(folder: Storage | str, days: DayRange | None = None) -> dict[str, str]:
    """{date: full path or URL of its Parquet file} for the days of the range that have rows
    (all if None)."""
    folder = storage_at(folder)
    return {day: folder.location(key) for day, key in _day_keys(folder, days).items()}
