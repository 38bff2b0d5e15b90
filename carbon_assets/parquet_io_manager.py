"""Parquet partitioned by date_recorded, for silver and gold.

Spark computes the layer; its result is collected through Arrow and written as one Parquet
file per day, `{folder}/date_recorded=YYYY-MM-DD/part-0.parquet`, each replaced by an atomic
rename (lake.write_days). So a materialization of a day range replaces exactly those days, each
day is either wholly old or wholly new even if the run is killed, and days of the range that
produced no rows lose their old file. (Collecting is cheap at this size, while Spark's own
partitioned writer spent most of gold's time opening small files in a single task.)

Each asset names its folder in its metadata (`lake_folder`); an optional `csv_export` writes
the whole table to {data_dir}/exports as CSV, and an optional `counted_columns` ({metadata
name: column}) reports how many written rows have a value in each such column.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from carbon_assets.lake import (
    PARTITION_COLUMN,
    LakeResource,
    atomic_write_bytes,
    day_files,
    read_parquet_table,
    remove_leftovers,
    write_days,
)
from carbon_assets.partitions import day_range

# "...Exception: ..." from the JVM, "...Error: ..." ending a Python worker's traceback.
TELLING_EXCEPTION = re.compile(r"(Exception|Error): ")


def spark_error_summary(message: str, line_limit: int = 400, lines: int = 12) -> str:
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

    def _folder(self, context: OutputContext | InputContext) -> Path:
        metadata = (
            context.upstream_output if isinstance(context, InputContext) else context
        ).definition_metadata
        return self.lake.root / metadata["lake_folder"]

    def handle_output(self, context: OutputContext, obj: DataFrame) -> None:
        folder = self._folder(context)
        # Created even when no day has rows, so a downstream asset can tell "materialized,
        # nothing in this range" from "never materialized".
        folder.mkdir(parents=True, exist_ok=True)
        remove_leftovers(folder)  # temporary files of a run that was killed mid-write
        date_range = day_range(context)
        if date_range is not None:
            obj = obj.where(
                F.col(PARTITION_COLUMN).between(F.lit(date_range.first), F.lit(date_range.last))
            )
        try:
            table = obj.toArrow()
        except Exception as error:  # noqa: BLE001 - Spark quotes whole input files in its errors
            asset = context.asset_key.to_user_string()
            summary = spark_error_summary(str(error))
            raise RuntimeError(f"Spark could not compute {asset}:\n{summary}") from None
        days = date_range.days() if date_range else []
        rows_per_day = write_days(folder, table, days)
        without_rows = sorted(d.isoformat() for d in days if d not in rows_per_day)
        if without_rows:
            context.log.warning(
                f"{len(without_rows)} day(s) of the range have no rows: {without_rows[:20]}"
            )
        metadata = {
            "dagster/row_count": table.num_rows,
            "days_with_rows": len(rows_per_day),
            "days_without_rows": MetadataValue.json(without_rows),
            "path": MetadataValue.path(str(folder)),
        }
        for name, column in context.definition_metadata.get("counted_columns", {}).items():
            metadata[name] = pc.count(table.column(column)).as_py()  # non-null values
        if export_name := context.definition_metadata.get("csv_export"):
            export_path = self.lake.exports_dir / export_name
            metadata["csv_export"] = MetadataValue.path(str(export_path))
            metadata["csv_rows"] = self._export_csv(folder, export_path)
        context.add_output_metadata(metadata)

    def _export_csv(self, folder: Path, export_path: Path) -> int:
        """The whole table as one CSV, sorted by date and region, replaced atomically."""
        table = read_parquet_table(folder)
        if table.empty:
            return 0
        table = table.sort_values([PARTITION_COLUMN, "regionid"])
        columns = [PARTITION_COLUMN, *(c for c in table.columns if c != PARTITION_COLUMN)]
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(pa.Table.from_pandas(table[columns], preserve_index=False), sink)
        atomic_write_bytes(export_path, sink.getvalue().to_pybytes())
        return len(table)

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
        upstream = context.upstream_output.asset_key.to_user_string()
        if not folder.is_dir():  # never materialized: say so, not "no rows"
            raise FileNotFoundError(f"{folder} holds no data yet: materialize {upstream} first")
        files = day_files(folder, date_range)
        if not files:
            span = f"for {date_range}" if date_range else "at all"
            context.log.warning(
                f"{upstream} has no rows {span}: nothing to build from them (bronze holds no "
                "data for these days; see bronze_days_complete)"
            )
        return files
