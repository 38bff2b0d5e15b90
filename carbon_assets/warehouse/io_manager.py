"""The warehouse IO manager: an asset's rows <-> its PostgreSQL table (load.py does the load).

The asset's key names its table (tables.TABLES): carbon_intensity_daily takes gold's rows as
one DataFrame, carbon_intensity_halfhourly takes silver's as DataFrames of a few days at a
time, so a load of years never holds them all in memory; both come with the API they were
fetched from (load.SourcedRows), which the load stamps on every row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

import pandas as pd
from dagster import AssetObservation, ConfigurableIOManager, InputContext, OutputContext
from psycopg2 import sql

from carbon_assets.partitions import DayRange, day_range
from carbon_assets.postgres.secrets import mask_secrets, mask_url
from carbon_assets.warehouse.load import (
    FetchSource,
    Pictures,
    RowsRejected,
    SourcedRows,
    describe,
    load_range,
)
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets.warehouse.tables import AUDIT_COLUMNS, SCHEMA, TABLES, WarehouseTable


class WarehouseError(RuntimeError):
    """A warehouse load or read failed (message already scrubbed of passwords)."""


def table_of(context: OutputContext | InputContext) -> WarehouseTable:
    name = context.asset_key.path[-1]
    if name not in TABLES:
        raise ValueError(f"{name} is not a warehouse table; known tables: {sorted(TABLES)}")
    return TABLES[name]


class PostgresWarehouseIOManager(ConfigurableIOManager):
    """Stores an asset's rows in its PostgreSQL table (idempotent, range-replacing upsert) and
    reads them back.

    The database is the `warehouse` resource's (CARBON_DATABASE_URL, or the embedded
    PostgreSQL); its schema comes from the SQL files in sql/, applied once per process before
    the first load or read.
    """

    warehouse: WarehouseDatabase

    # --- output ----------------------------------------------------------------------------

    def handle_output(
        self, context: OutputContext, obj: SourcedRows | pd.DataFrame | Iterable[pd.DataFrame]
    ) -> None:
        """Load the rows of the partition range in one transaction (see load.py), stamped with
        their source (rows given without one get a NULL source_id)."""
        table = table_of(context)
        days = day_range(context)
        source: FetchSource | None = None
        digests: dict[dt.date, str] | None = None
        pictures: Pictures | None = None
        if isinstance(obj, SourcedRows):
            pictures = obj.pictures
            if obj.day_digests is not None:  # the same input from another API is not the same
                digests = {
                    day: hashlib.sha256(f"{digest} {obj.source}".encode()).hexdigest()
                    for day, digest in obj.day_digests.items()
                }
            obj, source = obj.rows, obj.source
        chunks: Iterable[pd.DataFrame]
        if isinstance(obj, pd.DataFrame):
            chunks = [obj]
            if days is None and len(obj):
                day = pd.to_datetime(obj[table.day_column]).dt.date
                days = DayRange(day.min(), day.max())
        elif isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, dict)):
            chunks = obj
        else:
            raise TypeError(
                f"{type(self).__name__} stores pandas DataFrames (or an iterable of them), "
                f"got {type(obj).__name__}"
            )
        if days is None:  # no partitions and no rows: nothing to do
            context.log.info(f"No rows and no partition range: {table.qualified} left as it is")
            return

        url: str | None = None
        try:
            url = self.warehouse.url()
            counts = load_range(self.warehouse.engine(), table, chunks, days, source, digests)
        except RowsRejected:
            raise  # rows the table cannot take: the message says which
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            cause = mask_secrets(describe(error), url or self.warehouse.configured_url())
            raise WarehouseError(
                f"Loading into {table.qualified} failed; the table is unchanged. {cause}"
            ) from None  # the chained original could show the URL unmasked

        if counts.left_alone:
            context.log.info(
                f"Every day of {days} in {table.qualified} was loaded from this same input: "
                f"left as it is ({counts.rows_in_table:,} rows)"
            )
        else:
            context.log.info(f"Loaded {days} into {table.qualified} at {mask_url(url)}")
        context.log.info(f"Removed {counts.duplicates_removed:,} duplicate rows from input")
        context.log.info(f"Skipped {counts.skipped_unchanged:,} rows already in database")
        context.log.info(f"Updated {counts.updated:,} rows with changed values")
        if counts.refetched_unchanged:
            context.log.info(
                f"Refreshed the fetch time of {counts.refetched_unchanged:,} unchanged rows"
            )
        context.log.info(f"Inserted {counts.inserted:,} new rows")
        context.log.info(f"Deleted {counts.deleted:,} rows the input no longer has")
        if pictures is not None:
            if counts.left_alone:
                shown = f"unchanged: those of the last load that changed {days}"
            else:
                # Metadata of a range's materialization is copied onto every day's event; the
                # pictures are hundreds of kilobytes, so they go once, in an observation.
                context.log_event(
                    AssetObservation(
                        asset_key=context.asset_key,
                        partition=pictures.day,
                        metadata=dict(pictures.draw()),
                    )
                )
                shown = f"observation of {pictures.day}"
            context.add_output_metadata({"pictures": shown})
        context.add_output_metadata(
            {
                "rows_in_range": counts.rows_in_range,
                "duplicates_removed": counts.duplicates_removed,
                "skipped_unchanged": counts.skipped_unchanged,
                "updated": counts.updated,
                "refetched_unchanged": counts.refetched_unchanged,
                "inserted": counts.inserted,
                "deleted": counts.deleted,
                "table": table.qualified,
                "database": mask_url(url),
                "partition_range": str(days),
                "days_unchanged": len(days) if counts.left_alone else 0,
                "dagster/row_count": counts.rows_in_table,
            }
        )

    # --- input -----------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The table's rows of the requested partition range (all rows if unpartitioned): its
        loaded columns + loaded_at, updated_at, sorted by day and key."""
        table = table_of(context)
        days = day_range(context)
        columns = (*table.columns, *AUDIT_COLUMNS)
        url: str | None = None
        try:
            url = self.warehouse.url()
            query = sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(SCHEMA),
                sql.Identifier(table.name),
            )
            if days is not None:
                query += sql.SQL(" WHERE {} BETWEEN %s AND %s").format(
                    sql.Identifier(table.day_column)
                )
            query += sql.SQL(" ORDER BY {}, {}").format(
                sql.Identifier(table.day_column),
                sql.SQL(", ").join(map(sql.Identifier, table.key)),
            )
            with self.warehouse.engine().connect() as connection:
                cursor = connection.connection.cursor()
                cursor.execute(query, (days.first, days.last) if days else None)
                records = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            cause = mask_secrets(describe(error), url or self.warehouse.configured_url())
            raise WarehouseError(f"Reading {table.qualified} failed. {cause}") from None
        frame = pd.DataFrame.from_records(records, columns=list(columns))
        return frame.astype({c: "int64" for c in table.whole_numbers})
