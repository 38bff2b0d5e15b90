"""The lake on disk: where each layer lives, and how its day files are read.

    {root}/bronze/2024/2024-01-01.json.gz                        bronze/day_files.py
    {root}/silver/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day
    {root}/gold/date_recorded=2024-01-01/part-0.parquet          one Parquet file per day
    {root}/exports/gold_carbon_intensity_daily.csv

The root is CARBON_LAKE_URL, else CARBON_DATA_DIR (settings.lake_url). One lake holds data
from one API only (lake_source.py); the demo has a lake of its own (cli/local_stack.py).

Every file is replaced by an atomic rename, so a reader (or a run killed half-way) sees a
day's old file or its new one, never a part of either. How files are written is in
lake_files.py (no Dagster: Spark's workers write silver's and gold's day files with it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.lake_files import DAY_FILE, PARTITION_COLUMN, day_folder
from carbon_assets.partitions import DayRange

HIVE_DATES = pa_ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")


class LakeResource(ConfigurableResource):
    """The lake's root folder and its layer folders."""

    data_dir: str | None = Field(
        default=None,
        description=f"the lake's root; unset: ${settings.LAKE_URL}, else ${settings.DATA_DIR}, "
        "else ./data",
    )

    @property
    def root(self) -> Path:
        return Path(self.data_dir or settings.lake_url()).expanduser().resolve()

    @property
    def bronze_dir(self) -> Path:
        return self.root / "bronze"

    @property
    def silver_dir(self) -> Path:
        return self.root / "silver"

    @property
    def gold_dir(self) -> Path:
        return self.root / "gold"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"


def read_parquet_table(
    folder: Path, days: DayRange | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """A date-partitioned Parquet folder as pandas: the days of a range (all if None), some
    columns (all if None). Only the range's day files are opened: a reader going through years
    a month at a time must not list every day of the folder for each month."""
    files = list(day_files(folder, days).values()) if folder.is_dir() else []
    if not files:
        return pd.DataFrame()
    dataset = _day_files_dataset(folder, files)
    if columns and not set(columns) <= set(dataset.schema.names):
        dataset = _with_every_column(folder, files, columns)
    return dataset.to_table(columns=columns).to_pandas()


def _day_files_dataset(folder: Path, files: list[str], schema: pa.Schema | None = None):
    return pa_ds.dataset(
        files,
        schema=schema,
        format="parquet",
        partitioning=HIVE_DATES,
        partition_base_dir=str(folder),
        exclude_invalid_files=True,
    )


def _with_every_column(folder: Path, files: list[str], columns: list[str]) -> pa_ds.Dataset:
    """The files as one dataset with the union of their schemas (a dataset's schema is its
    first file's), and columns no file has yet as nulls: files written before a layer gained a
    column still read."""
    unified = pa.unify_schemas([pq.read_schema(path) for path in files])
    unified = pa.unify_schemas([unified, pa.schema([(PARTITION_COLUMN, pa.date32())])])
    absent = [pa.field(name, pa.null()) for name in columns if name not in unified.names]
    return _day_files_dataset(folder, files, pa.schema([*unified, *absent]))


def day_files(folder: Path, days: DayRange | None = None) -> dict[str, str]:
    """{date: path of its Parquet file} for the days of the range that have rows (all if None)."""
    if days is None:
        files = sorted(folder.glob(f"{PARTITION_COLUMN}=*/{DAY_FILE}"))
        return {path.parent.name.partition("=")[2]: str(path) for path in files}
    files = {day.isoformat(): day_folder(folder, day) / DAY_FILE for day in days.days()}
    return {day: str(path) for day, path in files.items() if path.exists()}
