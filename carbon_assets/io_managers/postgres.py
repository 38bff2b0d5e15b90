"""The warehouse IO manager: gold's daily rows <-> carbon_data.carbon_intensity_daily.

A load is idempotent and all-or-nothing. In ONE transaction it COPYs the rows into a temporary
staging table, counts which are new, changed or unchanged, and upserts them with
`INSERT ... ON CONFLICT DO UPDATE ... WHERE values differ`. Staging first means a single fast
COPY instead of thousands of INSERTs, and lets PostgreSQL compare the rows in bulk; doing it all
in one transaction means a failure anywhere (a CHECK violation in row 15,000, a lost
connection) leaves the table exactly as it was, and readers never see a half-loaded range.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass

import pandas as pd
import psycopg2
import sqlalchemy
from dagster import ConfigurableIOManager, InputContext, OutputContext
from psycopg2 import sql
from pydantic import Field, field_validator

from carbon_assets.database import (
    create_warehouse_engine,
    ensure_schema,
    mask_secrets,
    mask_url,
    resolve_warehouse_url,
)
from carbon_assets.schema import FUEL_COLUMNS, GOLD_COLUMNS

# Lowercase SQL identifiers only: no quoting surprises, and nothing to inject.
IDENTIFIER_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")

# The table the SQL files in sql/ create; other configured tables are created like it.
CANONICAL_SCHEMA = "carbon_data"
CANONICAL_TABLE = "carbon_intensity_daily"

KEY_COLUMNS: tuple[str, ...] = ("regionid", "date_recorded")
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in GOLD_COLUMNS if c not in KEY_COLUMNS)
DECIMAL_COLUMNS: tuple[str, ...] = ("intensity_avg", *FUEL_COLUMNS)
AUDIT_COLUMNS: tuple[str, ...] = ("loaded_at", "updated_at")

# (url, schema, table) of non-canonical target tables already created in this process.
_ensured_tables: set[tuple[str, str, str]] = set()


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
    rows_in_table: int  # rows of the range in the table after the load


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain lowercase SQL identifier, else raise ValueError."""
    if not isinstance(name, str) or not IDENTIFIER_PATTERN.match(name) or len(name) > 63:
        raise ValueError(
            f"Invalid {what} {name!r}: expected lowercase letters, digits and underscores"
        )
    return name


def _parse_day(key: str) -> str:
    try:
        return dt.date.fromisoformat(key).isoformat()
    except (TypeError, ValueError):
        raise ValueError(f"Expected a daily partition key like 2024-01-31, got {key!r}") from None


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


def check_range(rows: pd.DataFrame, start: str, end: str) -> None:
    """Raise ValueError if any row's date_recorded (YYYY-MM-DD text) is outside start..end."""
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

    The warehouse is `database_url` (CARBON_DATABASE_URL) when set, else the embedded
    PostgreSQL under `data_dir`. The schema comes from the SQL files in sql/, applied once per
    process before the first load or read.
    """

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/libpq URL of the warehouse; unset = the embedded PostgreSQL.",
    )
    data_dir: str = Field(default="data", description="Data directory of the embedded PostgreSQL.")
    schema_name: str = Field(default=CANONICAL_SCHEMA, description="Schema of the target table.")
    table_name: str = Field(default=CANONICAL_TABLE, description="Target table.")

    @field_validator("schema_name", "table_name")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        return validate_identifier(value, "schema or table name")

    # --- helpers ---------------------------------------------------------------------------

    @property
    def qualified_table(self) -> str:
        return f"{self.schema_name}.{self.table_name}"

    def _table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(validate_identifier(self.schema_name, "schema name")),
            sql.Identifier(validate_identifier(self.table_name, "table name")),
        )

    def _url(self) -> str:
        return resolve_warehouse_url(self.database_url, self.data_dir)

    def _engine(self, url: str) -> sqlalchemy.Engine:
        """The engine for `url`, with the schema applied and the target table present."""
        engine = create_warehouse_engine(url)
        ensure_schema(engine)
        table_key = (url, self.schema_name, self.table_name)
        if (self.schema_name, self.table_name) != (CANONICAL_SCHEMA, CANONICAL_TABLE) and (
            table_key not in _ensured_tables
        ):
            # A table other than the one sql/ owns (a scratch or test table): create it with
            # the canonical table's columns, defaults, CHECKs, key and index.
            with engine.begin() as connection:
                cursor = connection.connection.cursor()
                cursor.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.schema_name)
                    )
                )
                cursor.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {}.{} INCLUDING ALL)").format(
                        self._table(),
                        sql.Identifier(CANONICAL_SCHEMA),
                        sql.Identifier(CANONICAL_TABLE),
                    )
                )
            _ensured_tables.add(table_key)
        return engine

    @staticmethod
    def _context_range(context: OutputContext | InputContext) -> tuple[str, str] | None:
        if not context.has_asset_partitions:
            return None
        key_range = context.asset_partition_key_range
        return _parse_day(key_range.start), _parse_day(key_range.end)

    # --- output ----------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        """Upsert the rows of the partition range in one transaction; see the module docstring."""
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"{type(self).__name__} stores pandas DataFrames, got {type(obj).__name__}"
            )
        rows = prepare_rows(obj)
        day_range = self._context_range(context)
        if day_range is None and len(rows):
            day_range = (rows["date_recorded"].min(), rows["date_recorded"].max())
        if day_range is not None:
            check_range(rows, *day_range)
        rows, duplicates = remove_duplicates(rows)

        url: str | None = None
        try:
            url = self._url()
            if day_range is None:  # no partitions and no rows: nothing to do
                counts = LoadCounts(0, duplicates, 0, 0, 0, 0)
            else:
                counts = self._load(self._engine(url), rows, duplicates, *day_range)
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            raise WarehouseError(
                f"Loading {len(rows):,} rows into {self.qualified_table} failed; the table is "
                f"unchanged. {mask_secrets(_describe(error), url or self.database_url)}"
            ) from None  # the chained original could show the URL unmasked

        span = f"{day_range[0]}...{day_range[1]}" if day_range else "no dates"
        context.log.info(f"Loaded {span} into {self.qualified_table} at {mask_url(url)}")
        context.log.info(f"Removed {counts.duplicates_removed:,} duplicate rows from input")
        context.log.info(f"Skipped {counts.skipped_unchanged:,} rows already in database")
        context.log.info(f"Updated {counts.updated:,} rows with changed values")
        context.log.info(f"Inserted {counts.inserted:,} new rows")
        context.add_output_metadata(
            {
                "rows_in_range": counts.rows_in_range,
                "duplicates_removed": counts.duplicates_removed,
                "skipped_unchanged": counts.skipped_unchanged,
                "updated": counts.updated,
                "inserted": counts.inserted,
                "table": self.qualified_table,
                "database": mask_url(url),
                "partition_range": span,
                "dagster/row_count": counts.rows_in_table,
            }
        )

    def _load(
        self, engine: sqlalchemy.Engine, rows: pd.DataFrame, duplicates: int, start: str, end: str
    ) -> LoadCounts:
        """Stage, count and upsert `rows` (deduplicated, all within start..end) in one transaction."""
        table = self._table()
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
                    "CREATE TEMP TABLE carbon_staging ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
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
                        " ON CONFLICT (regionid, date_recorded) DO UPDATE SET {}, updated_at = now()"
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
            # Region names follow each region's latest day in the table (loading an old range
            # must not bring back a name the region has since dropped).
            cursor.execute(
                sql.SQL(
                    "UPDATE carbon_data.dim_region d SET shortname = l.shortname, dno = l.dno, updated_at = now()"
                    " FROM (SELECT DISTINCT regionid FROM carbon_staging) r"
                    " CROSS JOIN LATERAL (SELECT t.shortname, t.dno FROM {} t WHERE t.regionid = r.regionid"
                    "  ORDER BY t.date_recorded DESC LIMIT 1) l"
                    " WHERE d.regionid = r.regionid AND (d.shortname, d.dno) IS DISTINCT FROM (l.shortname, l.dno)"
                ).format(table)
            )
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE date_recorded BETWEEN %s AND %s").format(
                    table
                ),
                (start, end),
            )
            (rows_in_table,) = cursor.fetchone()

        return LoadCounts(
            rows_in_range=len(rows),
            duplicates_removed=duplicates,
            skipped_unchanged=len(rows) - inserted - updated,
            updated=updated,
            inserted=inserted,
            rows_in_table=rows_in_table,
        )

    # --- input -----------------------------------------------------------------------------

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The table's rows of the requested partition range (all rows if unpartitioned):
        GOLD_COLUMNS + loaded_at, updated_at, sorted by date_recorded, regionid."""
        day_range = self._context_range(context)
        url: str | None = None
        try:
            url = self._url()
            engine = self._engine(url)
            query = sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, (*GOLD_COLUMNS, *AUDIT_COLUMNS))),
                self._table(),
            )
            if day_range is not None:
                query += sql.SQL(" WHERE date_recorded BETWEEN %s AND %s")
            query += sql.SQL(" ORDER BY date_recorded, regionid")
            with engine.connect() as connection:
                cursor = connection.connection.cursor()
                cursor.execute(query, day_range)
                records = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - re-raised below with the password masked
            raise WarehouseError(
                f"Reading {self.qualified_table} failed. {mask_secrets(_describe(error), url or self.database_url)}"
            ) from None
        frame = pd.DataFrame.from_records(records, columns=[*GOLD_COLUMNS, *AUDIT_COLUMNS])
        return frame.astype({"regionid": "int64", "half_hours": "int64"})
