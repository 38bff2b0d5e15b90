"""Parquet day files of a lake folder: one file per day, replaced whole.

No Dagster, no Spark: Spark's Python workers import this to stage the day files they compute
(spark.DaysFromFiles), and every process that writes the lake uses the same code. Files are
written through a Storage (storage.py), on local disk or in an object store.

    {folder}/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day

A day's file is replaced atomically, so a reader (or a run killed half-way) sees a day's old
file or its new one, never a part of either. On disk files get the mode any tool's file gets
(0644 under the usual umask 022, 0600 under 077), so others can read the lake exactly when the
umask says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from carbon_assets.storage import StagingArea, Storage, read_file

PARTITION_COLUMN = "date_recorded"
DAY_FILE = "part-0.parquet"
# Renames and fsyncs wait on the disk, copies on the object store, not on the GIL.
PUBLISHER_THREADS = 4


# --- Parquet, one file per day -----------------------------------------------------------


def day_folder(day: dt.date) -> str:
    """The key of a day's folder."""
    return f"{PARTITION_COLUMN}={day.isoformat()}"


def day_key(day: dt.date) -> str:
    """The key of a day's Parquet file."""
    return f"{day_folder(day)}/{DAY_FILE}"


def read_day_file(location: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A day file named by its full path or URL (some columns, all if None), read whole: one
    request on an object store, where a seekable file costs a HEAD and ranged GETs."""
    payload = pa.BufferReader(read_file(location))
    return pq.read_table(payload, columns=list(columns) if columns is not None else None)


def day_file_rows(location: str) -> int:
    """A day file's row count, from its Parquet footer (the file read whole: day files are
    small, and one request is cheaper than a HEAD and two ranged GETs)."""
    return pq.ParquetFile(pa.BufferReader(read_file(location))).metadata.num_rows


def day_file_bytes(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(rows.drop_columns([PARTITION_COLUMN]), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def replace_day_file(folder: Storage, day: dt.date, rows: pa.Table) -> None:
    """The day's file becomes `rows`, atomically."""
    folder.write_bytes(day_key(day), day_file_bytes(rows))


def publish_day_files(folder: Storage, staged: dict[dt.date, str]) -> None:
    """Staged day files ({day: staged key}) take their days' places, a few at a time; each
    day is replaced atomically on its own. Other files in those days' folders (of another
    layout, an older writer) go."""
    with ThreadPoolExecutor(max_workers=PUBLISHER_THREADS) as pool:
        jobs = [pool.submit(folder.publish, key, day_key(day)) for day, key in staged.items()]
        for done in jobs:
            done.result()
    folders = {day_folder(day) for day in staged}
    for key in folder.files():
        if key.partition("/")[0] in folders and not key.endswith(f"/{DAY_FILE}"):
            folder.delete(key)


def remove_day(folder: Storage, day: dt.date) -> bool:
    """Remove a day's folder (a day of a range that has no rows any more); True if it existed."""
    return folder.delete(day_folder(day))


# --- written in Spark's workers: a file in, its day's file out, a summary back -------------


def day_summary_schema(counted_columns: Sequence[str]) -> pa.Schema:
    """What a worker sends back per day file staged: the date, the staged file, its rows and,
    for each counted column, how many of its values are not null."""
    return pa.schema(
        [
            (PARTITION_COLUMN, pa.date32()),
            ("staged", pa.string()),
            ("rows", pa.int64()),
            *((f"non_null_{column}", pa.int64()) for column in counted_columns),
        ]
    )


def stage_day_of_file(
    area: StagingArea,
    path: str,
    rows_of_file: Callable[[str], pa.Table],
    counted_columns: Sequence[str] = (),
    days: tuple[dt.date, dt.date] | None = None,
) -> dict | None:
    """The rows `rows_of_file` makes of the file at `path` (one day's), staged in `area` as
    that day's new file. Returns the day's summary, or None when the file gave no rows in
    `days` (first, last; all days if None): that day's old file is the caller's to remove."""
    rows = rows_of_file(path)
    dates = pc.unique(rows.column(PARTITION_COLUMN)).to_pylist()
    if days is not None:
        dates = [day for day in dates if days[0] <= day <= days[1]]
    if not dates:
        return None
    if len(dates) > 1:  # two tasks must never write the same day's file
        raise ValueError(f"{path} gave rows of {len(dates)} dates; each file must give one day")
    day = dates[0]
    rows = rows.filter(pc.equal(rows.column(PARTITION_COLUMN), pa.scalar(day, pa.date32())))
    staged = area.put(day_key(day), day_file_bytes(rows))
    return {
        PARTITION_COLUMN: day,
        "staged": staged,
        "rows": rows.num_rows,
        **{f"non_null_{c}": pc.count(rows.column(c)).as_py() for c in counted_columns},
    }


def stage_day_batches(
    paths: Iterator[pa.RecordBatch],
    area: StagingArea,
    rows_of_file: Callable[[str], pa.Table],
    counted_columns: Sequence[str] = (),
    days: tuple[dt.date, dt.date] | None = None,
) -> Iterator[pa.RecordBatch]:
    """For Spark's mapInArrow: batches of input file paths in (one file per day), each file's
    day staged, and one summary row per day staged out."""
    schema = day_summary_schema(counted_columns)
    for batch in paths:
        summaries = []
        for path in batch.column("path").to_pylist():
            summary = stage_day_of_file(area, path, rows_of_file, counted_columns, days)
            if summary is not None:
                summaries.append(summary)
        yield pa.RecordBatch.from_pylist(summaries, schema=schema)


def rows_batches(
    paths: Iterator[pa.RecordBatch], rows_of_file: Callable[[str], pa.Table]
) -> Iterator[pa.RecordBatch]:
    """For Spark's mapInArrow: batches of input file paths in, the rows of each file out."""
    for batch in paths:
        for path in batch.column("path").to_pylist():
            yield from rows_of_file(path).to_batches()
