"""Parquet partitioned by date_recorded, written by Spark, for silver and gold.

A materialization of a day range replaces exactly those days (dynamic partition overwrite),
and days of the range that produced no rows lose their old folder, so the lake never keeps
rows the current run would not have written. Each asset names its folder in its metadata
(`lake_folder`); an optional `csv_export` writes the whole table to data/exports as CSV.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from carbon_assets.lake import LakeResource, atomic_write_bytes, remove_leftovers
from carbon_assets.partitions import partition_dates
from carbon_assets.spark import CarbonSparkResource

PARTITION_COLUMN = "date_recorded"
HIVE_DATES = pa_ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive")


def _date_range(context: OutputContext | InputContext) -> tuple[dt.date, dt.date] | None:
    if not context.has_asset_partitions:
        return None
    key_range = context.asset_partition_key_range
    return dt.date.fromisoformat(key_range.start), dt.date.fromisoformat(key_range.end)


def read_parquet_table(folder: Path, first: dt.date | None = None, last: dt.date | None = None) -> pd.DataFrame:
    """A Spark-written, date-partitioned Parquet folder as pandas, optionally one date range."""
    if not folder.exists() or not any(folder.glob(f"{PARTITION_COLUMN}=*")):
        return pd.DataFrame()
    dataset = pa_ds.dataset(folder, format="parquet", partitioning=HIVE_DATES, exclude_invalid_files=True)
    condition = None
    if first is not None and last is not None:
        condition = (pa_ds.field(PARTITION_COLUMN) >= first) & (pa_ds.field(PARTITION_COLUMN) <= last)
    return dataset.to_table(filter=condition).to_pandas()


class SparkParquetIOManager(ConfigurableIOManager):
    """Stores Spark DataFrames as Parquet under {data_dir}/{lake_folder}, partitioned by day."""

    lake: LakeResource
    pyspark: CarbonSparkResource

    def _folder(self, context: OutputContext | InputContext) -> Path:
        metadata = (context.upstream_output if isinstance(context, InputContext) else context).definition_metadata
        return self.lake.root / metadata["lake_folder"]

    def handle_output(self, context: OutputContext, obj: DataFrame) -> None:
        folder = self._folder(context)
        remove_leftovers(folder)  # staging folders of a run that was killed mid-write
        date_range = _date_range(context)
        if date_range is not None:
            first, last = date_range
            obj = obj.where(F.col(PARTITION_COLUMN).between(F.lit(first), F.lit(last)))
        # Cached so that counting rows per day and writing compute the DataFrame only once.
        obj = obj.persist()
        try:
            rows_per_day = {row[0]: row[1] for row in obj.groupBy(PARTITION_COLUMN).count().collect()}
            (
                obj.write.mode("overwrite")
                .option("partitionOverwriteMode", "dynamic")
                .partitionBy(PARTITION_COLUMN)
                .parquet(str(folder))
            )
        finally:
            obj.unpersist()
        emptied = []
        if date_range is not None:
            for day in partition_dates(first.isoformat(), last.isoformat()):
                stale = folder / f"{PARTITION_COLUMN}={day.isoformat()}"
                if day not in rows_per_day and stale.exists():
                    shutil.rmtree(stale)
                    emptied.append(day.isoformat())
        metadata = {
            "dagster/row_count": sum(rows_per_day.values()),
            "days_with_rows": len(rows_per_day),
            "days_without_rows": MetadataValue.json(
                sorted(d.isoformat() for d in partition_dates(first.isoformat(), last.isoformat())
                       if d not in rows_per_day) if date_range else []
            ),
            "path": MetadataValue.path(str(folder)),
        }
        if emptied:
            context.log.warning(f"Removed stale partitions with no rows this run: {emptied}")
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

    def load_input(self, context: InputContext):
        """A Spark DataFrame, or pandas when the input is annotated as a pandas DataFrame."""
        folder = self._folder(context)
        date_range = _date_range(context)
        if context.dagster_type.typing_type is pd.DataFrame:
            return read_parquet_table(folder, *(date_range or (None, None)))
        frame = self.pyspark.spark_session.read.parquet(str(folder))
        if date_range is not None:
            frame = frame.where(F.col(PARTITION_COLUMN).between(F.lit(date_range[0]), F.lit(date_range[1])))
        return frame
