"""The lake on disk: where each layer lives, and how its files are written without tearing.

    {data_dir}/bronze/2024/2024-01-01.json.gz                        bronze/day_files.py
    {data_dir}/silver/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day
    {data_dir}/gold/date_recorded=2024-01-01/part-0.parquet          one Parquet file per day
    {data_dir}/exports/gold_carbon_intensity_daily.csv

Every file is replaced by an atomic rename, so a reader (or a run killed half-way) sees a
day's old file or its new one, never a part of either.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.partitions import DayRange

TEMP_PREFIX = ".tmp-"
PARTITION_COLUMN = "date_recorded"
DAY_FILE = "part-0.parquet"
WRITER_THREADS = 4
HIVE_DATES = pa_ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")


class LakeResource(ConfigurableResource):
    """The lake's root folder and its layer folders."""

    data_dir: str | None = Field(
        default=None, description=f"the lake's root; unset: ${settings.DATA_DIR}, else ./data"
    )

    @property
    def root(self) -> Path:
        return Path(self.data_dir or settings.data_dir()).resolve()

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


class LakeWriteError(OSError):
    """A lake file could not be written; the message names the file and says what to do (the
    operating system's own message names no file when a disk is full)."""

    def __str__(self) -> str:
        return self.strerror


def _write_error(path: Path, size: int, error: OSError) -> LakeWriteError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "No space left" if error.errno == errno.ENOSPC else "Disk quota exceeded"
        message = (
            f"{what} on the device of {path.parent} while writing {path.name} "
            f"({size:,} bytes): free space there (or set CARBON_DATA_DIR to a bigger disk) and "
            "re-run; the file is unchanged"
        )
    else:
        message = f"Writing {path} failed: {error.strerror or error}; the file is unchanged"
    return LakeWriteError(error.errno, message, str(path))


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part of it.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over the
    target; the folder is fsynced so the rename itself survives a power cut. A failure (a full
    disk...) leaves the old file and no temporary one, and raises LakeWriteError naming it.
    """
    temp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        if temp_name is not None:
            Path(temp_name).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, LakeWriteError):
            raise _write_error(path, len(payload), error) from error
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary files that a run killed mid-write left behind."""
    removed: list[Path] = []
    if not root.exists():
        return removed
    for path in list(root.rglob(f"{TEMP_PREFIX}*")):
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --- Parquet, one file per day -----------------------------------------------------------


def day_folder(folder: Path, day: dt.date) -> Path:
    return folder / f"{PARTITION_COLUMN}={day.isoformat()}"


def _replace_day_file(folder: Path, day: dt.date, rows: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(rows.drop_columns([PARTITION_COLUMN]), sink, compression="snappy")
    target = day_folder(folder, day) / DAY_FILE
    atomic_write_bytes(target, sink.getvalue().to_pybytes())
    for other in target.parent.iterdir():  # files of another layout or an older writer
        if other.name != DAY_FILE:
            shutil.rmtree(other) if other.is_dir() else other.unlink()


def write_days(folder: Path, table: pa.Table, days: list[dt.date]) -> dict[dt.date, int]:
    """Replace the files of `days` with the rows of `table`; returns the rows written per day."""
    table = table.sort_by(PARTITION_COLUMN)
    rows_per_day: dict[dt.date, int] = {}
    slices: list[tuple[dt.date, pa.Table]] = []
    start = 0
    for run in pc.value_counts(table.column(PARTITION_COLUMN)).to_pylist():  # one run per day
        day, count = run["values"], run["counts"]
        rows_per_day[day] = count
        slices.append((day, table.slice(start, count)))
        start += count
    # Encoding and fsync release the GIL, so a few threads write days side by side. Each file
    # is still replaced atomically on its own.
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        for written in [pool.submit(_replace_day_file, folder, day, rows) for day, rows in slices]:
            written.result()
    for day in days:
        if day not in rows_per_day and day_folder(folder, day).exists():
            shutil.rmtree(day_folder(folder, day))
    return rows_per_day


def read_parquet_table(
    folder: Path, days: DayRange | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """A date-partitioned Parquet folder as pandas: the days of a range (all if None), some
    columns (all if None)."""
    if not folder.exists() or not any(folder.glob(f"{PARTITION_COLUMN}=*")):
        return pd.DataFrame()
    dataset = pa_ds.dataset(
        folder, format="parquet", partitioning=HIVE_DATES, exclude_invalid_files=True
    )
    if columns and not set(columns) <= set(dataset.schema.names):
        dataset = _with_every_column(dataset, folder, columns)
    condition = None
    if days is not None:
        date = pa_ds.field(PARTITION_COLUMN)
        condition = (date >= days.first) & (date <= days.last)
    return dataset.to_table(columns=columns, filter=condition).to_pandas()


def _with_every_column(dataset: pa_ds.Dataset, folder: Path, columns: list[str]) -> pa_ds.Dataset:
    """The dataset with the union of its files' schemas (its schema is its first file's), and
    columns no file has yet as nulls: files written before a layer gained a column still read."""
    unified = pa.unify_schemas([pq.read_schema(path) for path in dataset.files])
    unified = pa.unify_schemas([unified, pa.schema([(PARTITION_COLUMN, pa.date32())])])
    absent = [pa.field(name, pa.null()) for name in columns if name not in unified.names]
    return pa_ds.dataset(
        folder,
        schema=pa.schema([*unified, *absent]),
        format="parquet",
        partitioning=HIVE_DATES,
        exclude_invalid_files=True,
    )


def day_files(folder: Path, days: DayRange | None = None) -> dict[str, str]:
    """{date: path of its Parquet file} for the days of the range that have rows (all if None)."""
    if days is None:
        files = sorted(folder.glob(f"{PARTITION_COLUMN}=*/{DAY_FILE}"))
        return {path.parent.name.partition("=")[2]: str(path) for path in files}
    files = {day.isoformat(): day_folder(folder, day) / DAY_FILE for day in days.days()}
    return {day: str(path) for day, path in files.items() if path.exists()}
