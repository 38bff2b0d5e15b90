"""The lake: where each layer lives, and how its day files are read.

    {root}/bronze/2024/2024-01-01.json.gz                        bronze/day_files.py
    {root}/silver/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day
    {root}/gold/date_recorded=2024-01-01/part-0.parquet          one Parquet file per day
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
    def exports(self) -> Storage:
        return self.storage / "exports"


def read_parquet_table(
    folder: Storage | str, days: DayRange | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """A date-partitioned Parquet folder as pandas: the days of a range (all if None), some
    columns (all if None). Only the range's day files are opened: a reader going through years
    a month at a time must not list every day of the folder for each month."""
    folder = storage_at(folder)
    keys = list(_day_keys(folder, days).values())
    if not keys:
        return pd.DataFrame()
    dataset = _day_files_dataset(folder, keys)
    if columns and not set(columns) <= set(dataset.schema.names):
        dataset = _with_every_column(folder, keys, columns)
    return dataset.to_table(columns=columns).to_pandas()


def _day_files_dataset(folder: Storage, keys: list[str], schema: pa.Schema | None = None):
    filesystem, base = folder.arrow
    return pa_ds.dataset(
        [f"{base}/{key}" for key in keys],
        schema=schema,
        format="parquet",
        filesystem=filesystem,
        partitioning=HIVE_DATES,
        partition_base_dir=base,
        exclude_invalid_files=True,
    )


def _with_every_column(folder: Storage, keys: list[str], columns: list[str]) -> pa_ds.Dataset:
    """The files as one dataset with the union of their schemas (a dataset's schema is its
    first file's), and columns no file has yet as nulls: files written before a layer gained a
    column still read."""
    filesystem, base = folder.arrow
    schemas = [pq.read_schema(f"{base}/{key}", filesystem=filesystem) for key in keys]
    unified = pa.unify_schemas([*schemas, pa.schema([(PARTITION_COLUMN, pa.date32())])])
    absent = [pa.field(name, pa.null()) for name in columns if name not in unified.names]
    return _day_files_dataset(folder, keys, pa.schema([*unified, *absent]))


def _day_keys(folder: Storage, days: DayRange | None) -> dict[str, str]:
    """{date: key of its Parquet file} for the days of the range that have one (all if None)."""
    if days is None:
        keys = folder.glob(f"{PARTITION_COLUMN}=*/{DAY_FILE}")
        return {key.partition("/")[0].partition("=")[2]: key for key in keys}
    wanted = {day.isoformat(): day_key(day) for day in days.days()}
    found = folder.existing(wanted.values())
    return {day: key for day, key in wanted.items() if key in found}


def day_files(folder: Storage | str, days: DayRange | None = None) -> dict[str, str]:
    """{date: full path or URL of its Parquet file} for the days of the range that have rows
    (all if None)."""
    folder = storage_at(folder)
    return {day: folder.location(key) for day, key in _day_keys(folder, days).items()}
