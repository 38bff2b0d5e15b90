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
import hashlib
import inspect
import json
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

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


def day_file_bytes(rows: pa.Table, built_from: BuiltFrom | None = None) -> bytes:
    """A day's rows as a Parquet file; its footer records what it was `built_from`, if given."""
    rows = rows.drop_columns([PARTITION_COLUMN])
    if built_from is not None:
        rows = rows.replace_schema_metadata(
            {**(rows.schema.metadata or {}), BUILT_FROM: built_from.to_json()}
        )
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, compression="snappy")
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


# --- what a day file was built from: a day whose input and code are the same is left alone ---

BUILT_FROM = b"carbon_assets.built_from"


@dataclass(frozen=True)
class BuiltFrom:
    """What a derived day file was made of, recorded in its Parquet footer: the SHA-256 of its
    input file, the version of the code that made its rows (`code_version`), and how many
    values of each counted column are not null (so a day left alone still reports them)."""

    input_sha256: str
    code_version: str
    non_null: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "input_sha256": self.input_sha256,
                "code_version": self.code_version,
                "non_null": dict(self.non_null),
            },
            sort_keys=True,
        )

    @classmethod
    def of_footer(cls, metadata: Mapping[bytes, bytes] | None) -> BuiltFrom | None:
        """What a footer records, or None when it records nothing usable (an older writer)."""
        try:
            recorded = json.loads((metadata or {})[BUILT_FROM])
            return cls(
                str(recorded["input_sha256"]),
                str(recorded["code_version"]),
                {str(k): int(v) for k, v in recorded["non_null"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def same_making(self, other: BuiltFrom | None) -> bool:
        return other is not None and (self.input_sha256, self.code_version) == (
            other.input_sha256,
            other.code_version,
        )


def code_version(rows_of_file: Callable[[str], pa.Table], schema: pa.Schema) -> str:
    """A digest of what makes a day's rows: the source of the module of `rows_of_file` and of
    every carbon_assets module it reaches through its names, and the output schema. Any change
    to that code or schema changes it, so every day is built again by the new code."""
    seen: dict[str, str] = {}
    pending = [sys.modules[rows_of_file.__module__]]
    while pending:
        module = pending.pop()
        if module.__name__ in seen:
            continue
        seen[module.__name__] = inspect.getsource(module)
        for value in vars(module).values():
            name = (
                value.__name__
                if isinstance(value, types.ModuleType)
                else getattr(value, "__module__", None)
            )
            ours = isinstance(name, str) and name.split(".")[0] == "carbon_assets"
            if ours and name not in seen and name in sys.modules:
                pending.append(sys.modules[name])
    digest = hashlib.sha256(schema.to_string(show_schema_metadata=False).encode())
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name].encode())
    return digest.hexdigest()


def file_sha256(location: str) -> str:
    return hashlib.sha256(read_file(location)).hexdigest()


def input_digests(locations: Mapping[dt.date, str]) -> dict[dt.date, str]:
    """The SHA-256 of each day's input file ({day: location}), a few files at a time."""
    with ThreadPoolExecutor(max_workers=PUBLISHER_THREADS) as pool:
        return dict(zip(locations, pool.map(file_sha256, locations.values())))


def recorded_making(folder: Storage, days: Sequence[dt.date]) -> dict[dt.date, tuple]:
    """For each of `days` with a day file in `folder`: (what its footer records, its rows)."""

    def footer(day: dt.date) -> tuple | None:
        try:
            payload = folder.read_bytes(day_key(day))
        except FileNotFoundError:
            return None
        try:
            metadata = pq.ParquetFile(pa.BufferReader(payload)).metadata
        except (pa.ArrowInvalid, OSError):  # a damaged file: built again, never trusted
            return None
        return BuiltFrom.of_footer(metadata.metadata), metadata.num_rows

    with ThreadPoolExecutor(max_workers=PUBLISHER_THREADS) as pool:
        found = dict(zip(days, pool.map(footer, days)))
    return {day: recorded for day, recorded in found.items() if recorded is not None}


def unchanged_days(
    folder: Storage,
    wanted: Mapping[dt.date, BuiltFrom],
    counted_columns: Sequence[str] = (),
) -> list[dict]:
    """The summaries (as stage_day_of_file returns, `staged` None) of the days of `wanted`
    whose file in `folder` was built from the same input by the same code: those days need
    not be built again."""
    summaries = []
    for day, (recorded, rows) in sorted(recorded_making(folder, list(wanted)).items()):
        if wanted[day].same_making(recorded) and set(counted_columns) <= set(recorded.non_null):
            summaries.append(
                {
                    PARTITION_COLUMN: day,
                    "staged": None,
                    "rows": rows,
                    **{f"non_null_{c}": recorded.non_null[c] for c in counted_columns},
                }
            )
    return summaries


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
    made_by: tuple[str, str] | None = None,
) -> dict | None:
    """The rows `rows_of_file` makes of the file at `path` (one day's), staged in `area` as
    that day's new file. Returns the day's summary, or None when the file gave no rows in
    `days` (first, last; all days if None): that day's old file is the caller's to remove.
    With `made_by` (the input's SHA-256, the code version) the file's footer records them."""
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
    non_null = {column: pc.count(rows.column(column)).as_py() for column in counted_columns}
    built_from = BuiltFrom(*made_by, non_null) if made_by is not None else None
    staged = area.put(day_key(day), day_file_bytes(rows, built_from))
    return {
        PARTITION_COLUMN: day,
        "staged": staged,
        "rows": rows.num_rows,
        **{f"non_null_{c}": count for c, count in non_null.items()},
    }


def stage_day_batches(
    paths: Iterator[pa.RecordBatch],
    area: StagingArea,
    rows_of_file: Callable[[str], pa.Table],
    counted_columns: Sequence[str] = (),
    days: tuple[dt.date, dt.date] | None = None,
    code_version: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """For Spark's mapInArrow: batches of input file paths in (one file per day; with their
    SHA-256 in `input_sha256` when `code_version` is given, to record in each day's footer),
    each file's day staged, and one summary row per day staged out."""
    schema = day_summary_schema(counted_columns)
    for batch in paths:
        summaries = []
        digests = (
            batch.column("input_sha256").to_pylist()
            if code_version is not None
            else [None] * batch.num_rows
        )
        for path, digest in zip(batch.column("path").to_pylist(), digests):
            made_by = (digest, code_version) if code_version is not None else None
            summary = stage_day_of_file(area, path, rows_of_file, counted_columns, days, made_by)
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
