"""Parquet partitioned by date_recorded, for silver and gold.

Silver and gold return `DaysFromFiles`: one day's rows from each input file, computed in
Spark's Python workers. The IO manager has each worker stage the day it computed as its new
Parquet file, `{folder}/date_recorded=YYYY-MM-DD/part-0.parquet` (in a staging area of the
folder that no reader lists), and send back a summary (date, staged file, rows, counts); no
rows reach the driver, so its memory does not grow with the range. Once every day is staged,
the driver publishes each staged file over its day's file (DaysFromFiles.write). So a
materialization of a day range replaces exactly those days, a range that fails leaves every
day as it was, each day is wholly old or wholly new even if the run is killed (a killed run's
staged files are removed by the next), and days of the range that produced no rows lose their
old file. The workers reach the lake through its Storage: a folder every executor sees at the
same path, or an object store (storage.py).

Each asset names its folder in its metadata (`lake_folder`); an optional `csv_export` writes
the whole table to {lake}/exports as CSV (again only once its day files have changed), and an
optional `counted_columns` ({metadata name: column}) reports how many written rows have a value
in each such column.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from carbon_assets.lake import LakeResource, day_files, day_files_and_digest, read_parquet_table
from carbon_assets.lake_files import PARTITION_COLUMN, read_day_file
from carbon_assets.partitions import day_range
from carbon_assets.spark import DaysFromFiles
from carbon_assets.storage import LakeWriteError, Storage, storage_at

# "...Exception: ..." from the JVM, "...Error: ..." ending a Python worker's traceback.
TELLING_EXCEPTION = re.compile(r"(Exception|Error): ")


def spark_error_summary(message: str, line_limit: int = 800, lines: int = 12) -> str:
    """The lines of a Spark error that say what went wrong, each cut short.

    Spark's errors can quote whole input records and carry long stack traces; the error
    classes, their causes and the exception lines are what a reader needs.
    """
    telling = [
        line.strip()
        for line in message.splitlines()
        if line.strip().startswith("[") or "Caused by" in line or TELLING_EXCEPTION.search(line)
    ] or message.splitlines()[:1]
    shown = []
    for line in dict.fromkeys(telling):  # unique, in order
        shown.append(
            line
            if len(line) <= line_limit
            else line[:line_limit] + f" ... [{len(line):,} characters]"
        )
    return "\n".join(shown[:lines])


class SparkParquetIOManager(ConfigurableIOManager):
    """Stores Spark DataFrames as Parquet under {data_dir}/{lake_folder}, one file per day."""

    lake: LakeResource

    def _folder(self, context: OutputContext | InputContext) -> Storage:
        metadata = (
            context.upstream_output if isinstance(context, InputContext) else context
        ).definition_metadata
        return self.lake.storage / metadata["lake_folder"]

    def handle_output(self, context: OutputContext, obj: DaysFromFiles) -> None:
        folder = self._folder(context)
        folder.remove_leftovers()  # what a run killed mid-write staged
        date_range = day_range(context)
        counted = context.definition_metadata.get("counted_columns", {})
        try:
            summaries = obj.write(folder, list(counted.values()), date_range)
        except LakeWriteError:
            raise
        except Exception as error:  # noqa: BLE001 - Spark quotes whole input files in its errors
            asset = context.asset_key.to_user_string()
            summary = spark_error_summary(str(error))
            who = "This process" if obj.in_process else "Spark"
            raise RuntimeError(f"{who} could not compute {asset}:\n{summary}") from None
        days = date_range.days() if date_range else []
        written = set(summaries.column(PARTITION_COLUMN).to_pylist())
        without_rows = sorted(d.isoformat() for d in days if d not in written)
        if without_rows:
            context.log.warning(
                f"{len(without_rows)} day(s) of the range have no rows: {without_rows[:20]}"
            )
        unchanged = summaries.column("staged").null_count
        if unchanged:
            context.log.info(
                f"{unchanged} of {len(written)} day(s) left as they were: built from the same "
                "input by the same code"
            )
        metadata = {
            "dagster/row_count": pc.sum(summaries.column("rows")).as_py() or 0,
            "days_with_rows": len(written),
            "days_rebuilt": len(written) - unchanged,
            "days_unchanged": unchanged,
            "built_with": "this process (a small run)" if obj.in_process else "Spark",
            "days_without_rows": MetadataValue.json(without_rows),
            "path": MetadataValue.path(folder.url),
        }
        for name, column in counted.items():  # non-null values
            metadata[name] = pc.sum(summaries.column(f"non_null_{column}")).as_py() or 0
        if export_name := context.definition_metadata.get("csv_export"):
            metadata["csv_export"] = MetadataValue.path(self.lake.exports.location(export_name))
            export = export_csv(folder, self.lake.exports, export_name)
            metadata["csv_rows"] = export.rows
            metadata["csv_written"] = export.written
        context.add_output_metadata(metadata)

    def load_input(self, context: InputContext) -> pd.DataFrame | dict[str, str]:
        """By the input's annotation: pandas for a pandas DataFrame, {date: day file} for a
        dict[str, str] (a day without rows has no file)."""
        folder = self._folder(context)
        date_range = day_range(context)
        wanted = context.dagster_type.typing_type
        if wanted is pd.DataFrame:
            return read_parquet_table(folder, date_range)
        if typing.get_origin(wanted) is not dict:
            raise TypeError(
                f"{type(self).__name__} loads pandas DataFrames or dict[str, str], not {wanted}"
            )
        upstream_key = context.upstream_output.asset_key
        upstream = upstream_key.to_user_string()
        files = day_files(folder, date_range)
        if not files and context.instance.get_latest_materialization_event(upstream_key) is None:
            # Never materialized: say so, not "no rows".
            raise FileNotFoundError(f"{folder.url} holds no data yet: materialize {upstream} first")
        if not files:
            span = f"for {date_range}" if date_range else "at all"
            context.log.warning(
                f"{upstream} has no rows {span}: nothing to build from them (bronze holds no "
                "data for these days; see bronze_days_complete)"
            )
        return files


@dataclass(frozen=True)
class CsvExport:
    rows: int
    written: bool  # False: it was already written from the same day files


def export_record_key(name: str) -> str:
    """Beside the export: the day files it was written from and the export as written."""
    return f".{name}.written-from.json"


def export_csv(folder: Storage | str, exports: Storage | str, name: str) -> CsvExport:
    """The whole table as one CSV `name` in `exports`, sorted by date and region, replaced
    atomically; written again only when the folder's day files (which, and each one's
    version) or the export itself changed since it was last written, as its record says
    (`export_record_key`: written after the export, so a run that died between the two
    writes the export again). Written a day file at a time, so memory does not grow with the
    table. Its columns are those of the newest day file: a column older files lack (added to
    the layer since) is empty there."""
    folder, exports = storage_at(folder), storage_at(exports)
    files, source = day_files_and_digest(folder)  # {date: file}, what they are
    if not files:
        return CsvExport(rows=0, written=False)
    record = _export_record(exports, name)
    current = repr(exports.version(name))  # "None" when there is no export
    if record.get("source") == source and record.get("export") == current:
        return CsvExport(rows=record["rows"], written=False)
    rows = _write_csv(files, exports, name)
    record = {"source": source, "export": repr(exports.version(name)), "rows": rows}
    exports.write_bytes(export_record_key(name), json.dumps(record).encode())
    return CsvExport(rows=rows, written=True)


def _export_record(exports: Storage, name: str) -> dict:
    try:
        record = json.loads(exports.read_bytes(export_record_key(name)))
    except (FileNotFoundError, ValueError):
        return {}
    return record if isinstance(record, dict) and isinstance(record.get("rows"), int) else {}


def _write_csv(files: dict[str, str], exports: Storage, name: str) -> int:
    newest = read_day_file(files[max(files)]).schema
    schema = pa.schema([pa.field(PARTITION_COLUMN, pa.date32()), *newest])
    rows = 0
    with exports.writer(name) as handle:
        writer = pa_csv.CSVWriter(handle, schema)
        for date, path in sorted(files.items()):
            day = read_day_file(path).sort_by("regionid")
            dates = pa.array([dt.date.fromisoformat(date)] * len(day), pa.date32())
            day = day.add_column(0, PARTITION_COLUMN, dates)
            columns = [
                day.column(field.name)
                if field.name in day.column_names
                else pa.nulls(len(day), field.type)
                for field in schema
            ]
            writer.write_table(pa.Table.from_arrays(columns, names=schema.names).cast(schema))
            rows += len(day)
        writer.close()
    return rows
