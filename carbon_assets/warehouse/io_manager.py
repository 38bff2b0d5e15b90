"""The warehouse IO manager: gold's daily rows <-> carbon_data.carbon_intensity_daily.

A load is idempotent, all-or-nothing, and replaces its range. In ONE transaction it COPYs the
rows into a temporary staging table, counts which are new, changed or unchanged, upserts them
with `INSERT ... ON CONFLICT DO UPDATE ... WHERE values differ`, and deletes the range's rows
whose key the input no longer has. Staging first means a single fast COPY instead of thousands
of INSERTs, and lets PostgreSQL compare the rows in bulk; doing it all in one transaction means
a failure anywhere (a CHECK violation in row 15,000, a lost connection) leaves the table exactly
as it was, and readers never see a half-loaded range.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pandas as pd
import psycopg2
import sqlalchemy
from dagster import ConfigurableIOManager, InputContext, OutputContext
from psycopg2 import sql

from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.partitions import DayRange, day_range
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets.warehouse.secrets import mask_secrets, mask_url

# The table sql/001 creates.
SCHEMA, TABLE = "carbon_data", "carbon_intensity_daily"
WAREHOUSE_TABLE = f"{SCHEMA}.{TABLE}"

KEY_COLUMNS: tuple[str, ...] = ("regionid", "date_recorded")
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in GOLD_COLUMNS if c not in KEY_COLUMNS)
AUDIT_COLUMNS: tuple[str, ...] = ("loaded_at", "updated_at")


class WarehouseError(RuntimeError):
    """A warehouse load or read failed (message already scrubbed of passwords)."""


@dataclass(frozen=True)
class LoadCounts:
    """What one load did."""

    rows_in_range: int  # input rows after removing duplicates
    duplicates_removed: int
    skipped_unchanged: int
    updated: int
    inserted: int
    deleted: int  # rows of the range whose key the input no longer has
    rows_in_table: int  # rows of the range in the table after the load


def prepare_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Gold rows ready for COPY: exactly GOLD_COLUMNS, integer ids and counts, dates as
    YYYY-MM-DD text. Decimals and floats are left as they are: the staging table's
    DECIMAL(10,2) columns round them half away from zero (= ROUND_HALF_UP) as they are read,
    and floats are written in their shortest round-trip form (so 2.675 is 2.68, as
    Decimal(str(2.675)) would be). Raises ValueError on missing or unexpected columns."""
    missing = [c for c in GOLD_COLUMNS if c not in df.columns]
    unexpected = [c for c in df.columns if c not in GOLD_COLUMNS and c not in AUDIT_COLUMNS]
    if missing or unexpected:
        raise ValueError(
            f"Warehouse rows must have the gold columns {list(GOLD_COLUMNS)}; "
            f"missing {missing}, unexpected {unexpected}"
        )
    rows = df.loc[:, list(GOLD_COLUMNS)].reset_index(drop=True)
    for column in ("regionid", "half_hours"):
        try:
            rows[column] = rows[column].astype("int64")
        except (TypeError, ValueError) as error:
            raise ValueError(f"{column} must be whole numbers without nulls: {error}") from None
    days = pd.to_datetime(rows["date_recorded"])
    if days.isna().any():
        raise ValueError("date_recorded must not be null")
    if (days != days.dt.normalize()).any():
        raise ValueError("date_recorded must be dates, not timestamps with a time of day")
    rows["date_recorded"] = days.dt.strftime("%Y-%m-%d")
    return rows


def check_range(rows: pd.DataFrame, days: DayRange) -> None:
    """Raise ValueError if any row's date_recorded (YYYY-MM-DD text) is outside `days`."""
    start, end = days.first.isoformat(), days.last.isoformat()
    outside = rows[(rows["date_recorded"] < start) | (rows["date_recorded"] > end)]
    if len(outside):
        examples = ", ".join(
            f"{day} region {region}"
            for day, region in outside[["date_recorded", "regionid"]]
            .head(3)
            .itertuples(index=False)
        )
        raise ValueError(
            f"{len(outside):,} input rows are outside the partition range {start}...{end} "
            f"(e.g. {examples}); the asset must return only rows of the partitions it materializes"
        )


def remove_duplicates(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the last row of each (regionid, date_recorded); return the rows and how many went."""
    duplicated = rows.duplicated(list(KEY_COLUMNS), keep="last")
    count = int(duplicated.sum())
    return (rows[~duplicated].reset_index(drop=True) if count else rows), count


def csv_buffer(rows: pd.DataFrame) -> io.StringIO:
    """`rows` as CSV text for COPY ... (FORMAT csv): nulls (None, NaN) as empty fields, floats
    in their shortest round-trip form, Decimals as written. Python's csv module over plain
    lists is about twice as fast as DataFrame.to_csv with Decimal objects."""
    columns = []
    for name in rows.columns:
        values = rows[name]
        if values.dtype == object or values.dtype.kind == "f":
            values = values.astype(object).where(values.notna(), None)
        columns.append(values.tolist())
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(*columns))
    buffer.seek(0)
    return buffer


def _describe(error: BaseException) -> str:
    """'ErrorType: message' of the database's own error rather than SQLAlchemy's wrapper (which
    appends the whole statement)."""
    # When the connection dies inside the transaction, leaving engine.begin() tries a rollback
    # that fails with "connection already closed"; report the error that says what happened.
    while (
        isinstance(error, (sqlalchemy.exc.InterfaceError, psycopg2.InterfaceError))
        and error.__context__ is not None
    ):
        error = error.__context__

    original = (
        getattr(error, "orig", None) if isinstance(error, sqlalchemy.exc.DBAPIError) else None
    )
    shown = original if original is not None else error
    return f"{type(shown).__name__}: {str(shown).strip()}"


class PostgresWarehouseIOManager(ConfigurableIOManager):
    """Stores gold's daily rows in PostgreSQL (idempotent upsert) and reads them back.

    The database is the `warehouse` resource's (CARBON_DATABASE_URL, or the embedded
    PostgreSQL); its schema comes from the SQL files in sql/, applied once per process before
    the first load or read.
    """

    warehouse: WarehouseDatabase

    # --- output ----------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        """Upsert the rows of the partition range in one transaction; see the module docstring."""
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{type(self).__name__} stores pandas DataFrames, got {type(obj).__name__}"
            )
        rows = prepare_rows(obj)
        days = day_range(context)
        if days is None and len(rows):
            days = DayRange.from_keys(rows["date_recorded"].min(), rows["date_recorded"].max())
        if days is not None:
            check_range(rows, days)
        rows, duplicates = remove_duplicates(rows)

        url: str | None = None
        try:
            url = self.warehouse.url()
            if days is None:  # no partitions and no rows: nothing to do
                counts = LoadCounts(0, duplicates, 0, 0, 0, 0, 0)
            else:
                counts = self._load(self.warehouse.engine(), rows, duplicates, days)
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            cause = mask_secrets(_describe(error), url or self.warehouse.configured_url())
            raise WarehouseError(
                f"Loading {len(rows):,} rows into {WAREHOUSE_TABLE} failed; the table is "
                f"unchanged. {cause}"
            ) from None  # the chained original could show the URL unmasked

        span = str(days) if days else "no dates"
        context.log.info(f"Loaded {span} into {WAREHOUSE_TABLE} at {mask_url(url)}")
        context.log.info(f"Removed {counts.duplicates_removed:,} duplicate rows from input")
        context.log.info(f"Skipped {counts.skipped_unchanged:,} rows already in database")
        context.log.info(f"Updated {counts.updated:,} rows with changed values")
        context.log.info(f"Inserted {counts.inserted:,} new rows")
        context.log.info(f"Deleted {counts.deleted:,} rows that gold no longer has")
        context.add_output_metadata(
            {
                "rows_in_range": counts.rows_in_range,
                "duplicates_removed": counts.duplicates_removed,
                "skipped_unchanged": counts.skipped_unchanged,
                "updated": counts.updated,
                "inserted": counts.inserted,
                "deleted": counts.deleted,
                "table": WAREHOUSE_TABLE,
                "database": mask_url(url),
                "partition_range": span,
                "dagster/row_count": counts.rows_in_table,
            }
        )

    def _load(
        self, engine: sqlalchemy.Engine, rows: pd.DataFrame, duplicates: int, days: DayRange
    ) -> LoadCounts:
        """Stage, count and upsert `rows` (deduplicated, all within `days`) in one transaction."""
        table = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(TABLE))
        columns = sql.SQL(", ").join(map(sql.Identifier, GOLD_COLUMNS))

        def qualified(alias: str, names: tuple[str, ...]) -> sql.Composable:
            return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)

        with engine.begin() as connection:
            cursor = connection.connection.cursor()
            # Concurrent loads of this table queue up here, so the counts below stay exact.
            # SHARE ROW EXCLUSIVE conflicts with writers (and itself) but not with readers.
            cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
            # Staging columns copy the target's types (DECIMAL(10,2), SMALLINT...) but not its
            # constraints, so a bad value fails on the target, naming the target's CHECK.
            cursor.execute(
                sql.SQL(
                    "CREATE TEMP TABLE carbon_staging ON COMMIT DROP"
                    " AS SELECT {} FROM {} WITH NO DATA"
                ).format(columns, table)
            )
            cursor.copy_expert(
                sql.SQL("COPY carbon_staging ({}) FROM STDIN WITH (FORMAT csv)")
                .format(columns)
                .as_string(cursor),
                csv_buffer(rows),
            )
            cursor.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE t.regionid IS NULL),"
                    " count(*) FILTER (WHERE t.regionid IS NOT NULL AND ({}) IS DISTINCT FROM ({}))"
                    " FROM carbon_staging s LEFT JOIN {} t"
                    " ON t.regionid = s.regionid AND t.date_recorded = s.date_recorded"
                ).format(qualified("s", VALUE_COLUMNS), qualified("t", VALUE_COLUMNS), table)
            )
            inserted, updated = cursor.fetchone()

            # Regions first, so the foreign key holds for new regions' rows.
            cursor.execute(
                "INSERT INTO carbon_data.dim_region (regionid, shortname, dno, updated_at)"
                " SELECT DISTINCT ON (regionid) regionid, shortname, dno, now() FROM carbon_staging"
                " ORDER BY regionid, date_recorded DESC"
                " ON CONFLICT (regionid) DO NOTHING"
            )
            if inserted or updated:  # an idempotent re-run writes nothing at all
                # Only new and changed rows go in (the SELECT's WHERE), so a re-run with a few
                # changes touches a few rows; ON CONFLICT ... WHERE keeps unchanged rows (and
                # their updated_at) untouched even so.
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO {} AS t ({}) SELECT {} FROM carbon_staging s LEFT JOIN {} c"
                        " ON c.regionid = s.regionid AND c.date_recorded = s.date_recorded"
                        " WHERE c.regionid IS NULL OR ({}) IS DISTINCT FROM ({})"
                        " ON CONFLICT (regionid, date_recorded)"
                        " DO UPDATE SET {}, updated_at = now()"
                        " WHERE ({}) IS DISTINCT FROM ({})"
                    ).format(
                        table,
                        columns,
                        qualified("s", GOLD_COLUMNS),
                        table,
                        qualified("s", VALUE_COLUMNS),
                        qualified("c", VALUE_COLUMNS),
                        sql.SQL(", ").join(
                            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                            for c in VALUE_COLUMNS
                        ),
                        qualified("t", VALUE_COLUMNS),
                        qualified("excluded", VALUE_COLUMNS),
                    )
                )
            # The range holds exactly the input's rows afterwards: a key that vanished upstream
            # (a region the API stopped sending for a day, a day re-fetched with fewer rows)
            # goes too, in the same transaction as the upsert.
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} t WHERE t.date_recorded BETWEEN %s AND %s AND NOT EXISTS"
                    " (SELECT 1 FROM carbon_staging s"
                    "  WHERE s.regionid = t.regionid AND s.date_recorded = t.date_recorded)"
                ).format(table),
                (days.first, days.last),
            )
            deleted = cursor.rowcount
            # Region names follow each region's latest day in the table (loading an old range
            # must not bring back a name the region has since dropped).
            cursor.execute(
                sql.SQL(
                    "UPDATE carbon_data.dim_region d"
                    " SET shortname = l.shortname, dno = l.dno, updated_at = now()"
                    " FROM (SELECT DISTINCT regionid FROM carbon_staging) r"
                    " CROSS JOIN LATERAL (SELECT t.shortname, t.dno FROM {} t"
                    "  WHERE t.regionid = r.regionid ORDER BY t.date_recorded DESC LIMIT 1) l"
                    " WHERE d.regionid = r.regionid"
                    " AND (d.shortname, d.dno) IS DISTINCT FROM (l.shortname, l.dno)"
                ).format(table)
            )
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE date_recorded BETWEEN %s AND %s").format(
                    table
                ),
                (days.first, days.last),
            )
            (rows_in_table,) = cursor.fetchone()

        return LoadCounts(
            rows_in_range=len(rows),
            duplicates_removed=duplicates,
            skipped_unchanged=len(rows) - inserted - updated,
            updated=updated,
            inserted=inserted,
            deleted=deleted,
            rows_in_table=rows_in_table,
        )

    # --- input -----------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The table's rows of the requested partition range (all rows if unpartitioned):
        GOLD_COLUMNS + loaded_at, updated_at, sorted by date_recorded, regionid."""
        days = day_range(context)
        url: str | None = None
        try:
            url = self.warehouse.url()
            query = sql.SQL("SELECT {} FROM {}.{}").format(
                sql.SQL(", ").join(map(sql.Identifier, (*GOLD_COLUMNS, *AUDIT_COLUMNS))),
                sql.Identifier(SCHEMA),
                sql.Identifier(TABLE),
            )
            if days is not None:
                query += sql.SQL(" WHERE date_recorded BETWEEN %s AND %s")
            query += sql.SQL(" ORDER BY date_recorded, regionid")
            with self.warehouse.engine().connect() as connection:
                cursor = connection.connection.cursor()
                cursor.execute(query, (days.first, days.last) if days else None)
                records = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            raise WarehouseError(
                f"Reading {WAREHOUSE_TABLE} failed. "
                f"{mask_secrets(_describe(error), url or self.warehouse.configured_url())}"
            ) from None
        frame = pd.DataFrame.from_records(records, columns=[*GOLD_COLUMNS, *AUDIT_COLUMNS])
        return frame.astype({"regionid": "int64", "half_hours": "int64"})
