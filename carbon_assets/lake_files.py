"""Files of the lake, written without tearing: atomic files and Parquet day files.

No Dagster, no Spark: Spark's Python workers import this to stage the day files they compute
(spark.DaysFromFiles), and every process that writes the lake uses the same code.

    {folder}/date_recorded=2024-01-01/part-0.parquet        one Parquet file per day

Every file is replaced by an atomic rename, so a reader (or a run killed half-way) sees a
day's old file or its new one, never a part of either. Files get the mode any tool's file
gets (0644 under the usual umask 022, 0600 under 077), so others can read the lake exactly
when the umask says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TEMP_PREFIX = ".tmp-"
PARTITION_COLUMN = "date_recorded"
DAY_FILE = "part-0.parquet"
PUBLISHER_THREADS = 4


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


@contextlib.contextmanager
def staged_file(path: Path, size: int | None = None) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary file next to `path` to write (its handle and its path), fsynced when the
    block ends; `publish` then puts it in place. A failure (a full disk...) removes it and
    raises LakeWriteError naming `path` (`size`: the bytes meant, else those written so far).
    """
    temp: Path | None = None
    handle: BinaryIO | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = _create_staged(path)
        with os.fdopen(fd, "wb") as handle:
            yield handle, temp
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as error:
        if temp is not None:
            temp.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, LakeWriteError):
            written = size if size is not None else _position(handle)
            raise _write_error(path, written, error) from error
        raise


def _create_staged(path: Path) -> tuple[int, Path]:
    """A new file of a fresh name next to `path`, open for writing. Created with mode 0666
    for the kernel to apply the umask (and a folder's default ACL) as for any tool's file:
    mkstemp's 0600 would keep the lake from everyone but its writer."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name for a staged file", str(path))


def _position(handle: BinaryIO | None) -> int:
    try:
        return handle.tell() if handle is not None else 0
    except (OSError, ValueError):
        return 0


def publish(staged: Path, path: Path) -> None:
    """Rename a staged file over `path`, then fsync the folder so the rename itself survives a
    power cut: readers see the old content or the new, never a part of it."""
    size = 0
    try:
        size = staged.stat().st_size
        os.replace(staged, path)
    except OSError as error:
        staged.unlink(missing_ok=True)
        raise _write_error(path, size, error) from error
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_writer(path: Path, size: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, so that readers see the old content or the new,
    never a part of it: a staged file (temporary, same folder, fsynced) renamed over the target
    when the block ends without an error. A failure leaves the old file and no temporary one,
    and raises LakeWriteError naming it."""
    with staged_file(path, size) as (handle, staged):
        yield handle
    publish(staged, path)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file atomically (see atomic_writer)."""
    with atomic_writer(path, size=len(payload)) as handle:
        handle.write(payload)


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary files that a run killed mid-write (or a failed one) left behind."""
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


def _parquet_bytes(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(rows.drop_columns([PARTITION_COLUMN]), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def stage_day_file(folder: Path, day: dt.date, rows: pa.Table) -> Path:
    """The day's new file (`rows` without the date column, which is the folder's name), staged
    next to its current one: written and fsynced, not yet in place (publish_day_file)."""
    payload = _parquet_bytes(rows)
    with staged_file(day_folder(folder, day) / DAY_FILE, len(payload)) as (handle, staged):
        handle.write(payload)
    return staged


def publish_day_file(folder: Path, day: dt.date, staged: Path) -> None:
    """A staged day file takes the day's place atomically; other files in the day's folder (of
    another layout, an older writer, a failed task's attempt) go."""
    target = day_folder(folder, day) / DAY_FILE
    publish(staged, target)
    for other in target.parent.iterdir():
        if other.name != DAY_FILE:
            shutil.rmtree(other) if other.is_dir() else other.unlink(missing_ok=True)


def publish_day_files(folder: Path, staged: dict[dt.date, Path]) -> None:
    """Publish staged day files, a few at a time (renames and fsyncs wait on the disk, not the
    GIL); each day is replaced atomically on its own."""
    with ThreadPoolExecutor(max_workers=PUBLISHER_THREADS) as pool:
        for done in [pool.submit(publish_day_file, folder, d, p) for d, p in staged.items()]:
            done.result()


def replace_day_file(folder: Path, day: dt.date, rows: pa.Table) -> None:
    """The day's file becomes `rows`, atomically."""
    publish_day_file(folder, day, stage_day_file(folder, day, rows))


def remove_day(folder: Path, day: dt.date) -> bool:
    """Remove a day's folder (a day of a range that has no rows any more); True if it existed."""
    if day_folder(folder, day).exists():
        shutil.rmtree(day_folder(folder, day))
        return True
    return False


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
    folder: Path,
    path: str,
    rows_of_file: Callable[[str], pa.Table],
    counted_columns: Sequence[str] = (),
    days: tuple[dt.date, dt.date] | None = None,
) -> dict | None:
    """The rows `rows_of_file` makes of the file at `path` (one day's), staged as that day's
    new file under `folder`. Returns the day's summary, or None when the file gave no rows in
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
    staged = stage_day_file(folder, day, rows)
    return {
        PARTITION_COLUMN: day,
        "staged": str(staged),
        "rows": rows.num_rows,
        **{f"non_null_{c}": pc.count(rows.column(c)).as_py() for c in counted_columns},
    }


def stage_day_batches(
    paths: Iterator[pa.RecordBatch],
    folder: str,
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
            summary = stage_day_of_file(Path(folder), path, rows_of_file, counted_columns, days)
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
