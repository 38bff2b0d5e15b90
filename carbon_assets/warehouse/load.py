"""Loading a range of days into a warehouse table: idempotent, all-or-nothing, range-replacing.

In ONE transaction a load COPYs the rows into a temporary staging table, counts which are new,
changed or unchanged, upserts them with `INSERT ... ON CONFLICT DO UPDATE ... WHERE values
differ`, and deletes the range's rows whose key the input no longer has. Staging first means a
single fast COPY instead of thousands of INSERTs, and lets PostgreSQL compare the rows in bulk;
doing it all in one transaction means a failure anywhere (a CHECK violation in row 15,000, a
lost connection) leaves the table exactly as it was, and readers never see a half-loaded range.
A first load of a range (nothing of it in the table yet, as in every backfill) COPYs the rows
straight into the table in the same transaction: nothing to compare or delete. The same code
loads every table (tables.py says what differs).

Every row is stamped with the source_id of the API its lake was filled from
(carbon_data.fetch_source, looked up or added in a short transaction of its own before the
load, so two loads of a new source do not wait for each other's transaction).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extras
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy
from psycopg2 import sql

from carbon_assets.partitions import DayRange
from carbon_assets.warehouse.tables import (
    AUDIT_COLUMNS,
    REGION_NAMES,
    SCHEMA,
    WarehouseTable,
)

UNKNOWN_API = "unknown"
LOADED_DAYS = f"{SCHEMA}.loaded_days"
NO_ROWS = "no rows"  # what loaded_days records for a day the load found empty


@dataclass(frozen=True)
class FetchSource:
    """The API a lake was filled from, as carbon_data.fetch_source records it."""

    api_base_url: str
    emulator: bool | None  # None: not known

    @classmethod
    def unknown(cls) -> FetchSource:
        """For a lake that does not record its source: its rows say so rather than guess."""
        return cls(UNKNOWN_API, None)

    def __str__(self) -> str:
        return f"{self.api_base_url}{' (the emulator)' if self.emulator else ''}"


@dataclass(frozen=True)
class Pictures:
    """Charts of a load's range for the UI, recorded as an observation of one day (the range's
    last): drawn only by a load that changed the table, so a range loaded again as it was
    keeps those of the load that last changed it and draws nothing."""

    day: str
    draw: Callable[[], Mapping[str, object]]  # metadata name -> value


@dataclass(frozen=True)
class SourcedRows:
    """What a warehouse asset returns: its rows (one DataFrame, or DataFrames of a few days at a
    time) and the API they were fetched from."""

    rows: pd.DataFrame | Iterable[pd.DataFrame]
    source: FetchSource
    # A digest per day of what the day's rows were made from (its lake file): a load whose
    # every day was last loaded from the same is skipped (load_range).
    day_digests: Mapping[dt.date, str] | None = None
    pictures: Pictures | None = None


def fetch_source_id(engine: sqlalchemy.Engine, source: FetchSource) -> int:
    """The source's carbon_data.fetch_source id, added when the warehouse has not seen it."""
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        cursor.execute(
            "INSERT INTO carbon_data.fetch_source (api_base_url, emulator) VALUES (%s, %s)"
            " ON CONFLICT ON CONSTRAINT fetch_source_api_base_url_emulator_key DO NOTHING",
            (source.api_base_url, source.emulator),
        )
        cursor.execute(
            "SELECT source_id FROM carbon_data.fetch_source"
            " WHERE api_base_url = %s AND emulator IS NOT DISTINCT FROM %s",
            (source.api_base_url, source.emulator),
        )
        (source_id,) = cursor.fetchone()
    return source_id


class RowsRejected(ValueError):
    """Rows the table cannot take (columns, types, days outside the range): the asset's fault,
    not the database's, so they are reported as they are."""


@dataclass(frozen=True)
class LoadCounts:
    """What one load did."""

    rows_in_range: int  # input rows after removing duplicates
    duplicates_removed: int
    skipped_unchanged: int  # rows whose values were already in the table
    updated: int  # rows whose values changed
    refetched_unchanged: int  # of the unchanged rows, those a newer fetch confirmed
    inserted: int
    deleted: int  # rows of the range whose key the input no longer has
    rows_in_table: int  # rows of the range in the table after the load
    left_alone: bool = False  # every day was as last loaded: nothing read, nothing written


def prepare_rows(df: pd.DataFrame, table: WarehouseTable) -> pd.DataFrame:
    """Rows ready for COPY: exactly the table's input columns, whole numbers as integers,
    dates as YYYY-MM-DD and moments as ISO text in UTC. Decimals and floats are left as they
    are: a DECIMAL(10,2) column rounds them half away from zero (= ROUND_HALF_UP) as they are
    read, and floats are written in their shortest round-trip form (so 2.675 is 2.68, as
    Decimal(str(2.675)) would be, and a share the API sent as 12.3 stays 12.3 in NUMERIC).
    Raises ValueError on missing or unexpected columns."""
    wanted = table.input_columns
    missing = [c for c in wanted if c not in df.columns]
    unexpected = [c for c in df.columns if c not in wanted and c not in AUDIT_COLUMNS]
    if missing or unexpected:
        raise RowsRejected(
            f"Rows for {table.qualified} must have the columns {list(wanted)}; "
            f"missing {missing}, unexpected {unexpected}"
        )
    rows = df.loc[:, list(wanted)].reset_index(drop=True)
    for column in (*table.whole_numbers, *table.whole_numbers_or_null):
        required = column in table.whole_numbers
        try:
            rows[column] = rows[column].astype("int64" if required else "Int64")
        except (TypeError, ValueError) as error:  # from pandas
            nulls = " without nulls" if required else ""
            raise RowsRejected(f"{column} must be whole numbers{nulls}: {error}") from None
    days = pd.to_datetime(rows[table.day_column], cache=False)
    if days.isna().any():
        raise RowsRejected(f"{table.day_column} must not be null")
    if (days != days.dt.normalize()).any():
        raise RowsRejected(f"{table.day_column} must be dates, not timestamps with a time of day")
    rows[table.day_column] = iso_text(days, "D")
    for column in table.moments:  # to the microsecond: fetch times have fractions
        rows[column] = iso_text(
            pd.to_datetime(rows[column], utc=True, cache=False), "us", suffix="+00:00"
        )
    return rows


def iso_text(moments: pd.Series, unit: str, suffix: str = "") -> pd.Series:
    """ISO 8601 text of datetimes, to the day ("D") or second ("s"), in their own wall time;
    nulls stay null. numpy formats the whole column at once (Series.dt.strftime formats value
    by value in Python, and was most of a long load's time)."""
    if moments.dt.tz is not None:
        moments = moments.dt.tz_localize(None)
    text = np.datetime_as_string(moments.to_numpy(dtype=f"datetime64[{unit}]"), unit=unit)
    return pd.Series(np.char.add(text, suffix), index=moments.index).where(moments.notna(), None)


def check_range(rows: pd.DataFrame, days: DayRange, table: WarehouseTable) -> None:
    """Raise ValueError if any row's day (YYYY-MM-DD text) is outside `days`."""
    start, end = days.first.isoformat(), days.last.isoformat()
    day = rows[table.day_column]
    outside = rows[(day < start) | (day > end)]
    if len(outside):
        where = "regionid" if table.regional else table.key[0]
        examples = ", ".join(
            f"{day} {where} {value}"
            for day, value in outside[[table.day_column, where]].head(3).itertuples(index=False)
        )
        raise RowsRejected(
            f"{len(outside):,} input rows are outside the partition range {start}...{end} "
            f"(e.g. {examples}); the asset must return only rows of the partitions it materializes"
        )


def remove_duplicates(rows: pd.DataFrame, table: WarehouseTable) -> tuple[pd.DataFrame, int]:
    """Keep the last row of each key; return the rows and how many went."""
    duplicated = rows.duplicated(list(table.key), keep="last")
    count = int(duplicated.sum())
    return (rows[~duplicated].reset_index(drop=True) if count else rows), count


def csv_buffer(rows: pd.DataFrame) -> io.BytesIO:
    """`rows` as CSV for COPY ... (FORMAT csv), written by Arrow: nulls (None, NaN, NA) as
    unquoted empty fields, floats in their shortest round-trip form, text quoted. Object
    columns (Decimals, text, anything mixed) go as each value's text, for PostgreSQL to accept
    or refuse naming the column: Arrow's own typing of Decimal objects is slower than str()."""
    columns = {}
    for name in rows.columns:
        values = rows[name]
        if values.dtype == object:
            present = values.where(values.notna(), None).tolist()
            columns[name] = pa.array(
                [None if value is None else str(value) for value in present], pa.string()
            )
        else:
            columns[name] = pa.array(values, from_pandas=True)
    buffer = io.BytesIO()
    pa_csv.write_csv(pa.table(columns), buffer, pa_csv.WriteOptions(include_header=False))
    buffer.seek(0)
    return buffer


def describe(error: BaseException) -> str:
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
    described = f"{type(shown).__name__}: {' '.join(str(shown).split())}"
    if type(shown).__name__ == "LockNotAvailable":
        described += (
            " (another session held the table longer than lock_timeout: find it in"
            " pg_stat_activity, or raise the warehouse resource's lock_timeout_seconds, then"
            " run again)"
        )
    return described


def load_range(
    engine: sqlalchemy.Engine,
    table: WarehouseTable,
    chunks: Iterable[pd.DataFrame],
    days: DayRange,
    source: FetchSource | None = None,
    day_digests: Mapping[dt.date, str] | None = None,
) -> LoadCounts:
    """Replace the rows of `days` in `table` with those of `chunks` (DataFrames of whole days,
    in day order, each prepared and checked here), stamped with `source` (NULL when None),
    counting what changed, in one transaction.

    With `day_digests` (what each day's rows were made from), the load is recorded per day in
    carbon_data.loaded_days, in the same transaction; a load whose every day was last loaded
    from the same input and still holds the rows that load left reads no chunk and changes
    nothing. A load without digests forgets the range's records."""
    source_id = fetch_source_id(engine, source) if source is not None else None
    target = _qualified(table)
    day_column = sql.Identifier(table.day_column)
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        # Concurrent loads of this table queue up here, so the counts below stay exact.
        # SHARE ROW EXCLUSIVE conflicts with writers (and itself) but not with readers.
        cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target))
        if day_digests is not None:
            stored = _rows_if_unchanged(cursor, table, days, day_digests)
            if stored is not None:
                return LoadCounts(stored, 0, stored, 0, 0, 0, 0, stored, left_alone=True)
        cursor.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} BETWEEN %s AND %s)").format(
                target, day_column
            ),
            (days.first, days.last),
        )
        (range_holds_rows,) = cursor.fetchone()
        prepared = PreparedChunks(chunks, table, days, source_id)
        if range_holds_rows:
            inserted, updated, refetched, deleted = _replace_through_staging(
                cursor, table, prepared, days
            )
        else:
            # A first load of the range (every backfill's): there is nothing to compare or
            # delete, so the rows go straight into the table. Staging them and inserting from
            # the staging table costs as much again as the COPY.
            _copy_into_table(cursor, table, prepared)
            inserted, updated, refetched, deleted = prepared.rows, 0, 0, 0
        if table.holds_region_names:
            # Region names follow each region's latest day in the table (loading an old range
            # must not bring back a name the region has since dropped).
            cursor.execute(
                sql.SQL(
                    "UPDATE carbon_data.dim_region d"
                    " SET shortname = l.shortname, dno = l.dno, updated_at = now()"
                    " FROM unnest(%s::integer[]) r (regionid)"
                    " CROSS JOIN LATERAL (SELECT t.shortname, t.dno FROM {} t"
                    "  WHERE t.regionid = r.regionid ORDER BY t.{} DESC LIMIT 1) l"
                    " WHERE d.regionid = r.regionid"
                    " AND (d.shortname, d.dno) IS DISTINCT FROM (l.shortname, l.dno)"
                ).format(target, day_column),
                (sorted(prepared.regions),),
            )
        per_day = _rows_per_day(cursor, table, days)
        _record_loaded_days(cursor, table, days, day_digests or {}, per_day)
        rows_in_table = sum(per_day.values())

    return LoadCounts(
        rows_in_range=prepared.rows,
        duplicates_removed=prepared.duplicates,
        skipped_unchanged=prepared.rows - inserted - updated,
        updated=updated,
        refetched_unchanged=refetched,
        inserted=inserted,
        deleted=deleted,
        rows_in_table=rows_in_table,
    )


def _rows_per_day(cursor, table: WarehouseTable, days: DayRange) -> dict[dt.date, int]:
    cursor.execute(
        sql.SQL("SELECT {0}, count(*) FROM {1} WHERE {0} BETWEEN %s AND %s GROUP BY 1").format(
            sql.Identifier(table.day_column), _qualified(table)
        ),
        (days.first, days.last),
    )
    return dict(cursor.fetchall())


def _rows_if_unchanged(
    cursor, table: WarehouseTable, days: DayRange, digests: Mapping[dt.date, str]
) -> int | None:
    """The rows of `days` in `table` if every day was last loaded from its digest's input and
    still holds the rows that load left (a day without input holds none); else None."""
    cursor.execute(
        f"SELECT date_recorded, input_sha256, row_count FROM {LOADED_DAYS}"
        " WHERE table_name = %s AND date_recorded BETWEEN %s AND %s",
        (table.name, days.first, days.last),
    )
    recorded = {day: (digest, rows) for day, digest, rows in cursor.fetchall()}
    per_day = _rows_per_day(cursor, table, days)
    for day in days.days():
        if day in digests:
            if recorded.get(day) != (digests[day], per_day.get(day, 0)):
                return None
        elif per_day.get(day, 0):
            return None
    return sum(per_day.values())


def _record_loaded_days(
    cursor,
    table: WarehouseTable,
    days: DayRange,
    digests: Mapping[dt.date, str],
    per_day: Mapping[dt.date, int],
) -> None:
    """The range's records replaced by this load's, one per day (none without digests: the
    load does not say what it was made of). clock_timestamp(): what the load's readers can
    see from now on, not when its transaction began."""
    cursor.execute(
        f"DELETE FROM {LOADED_DAYS} WHERE table_name = %s AND date_recorded BETWEEN %s AND %s",
        (table.name, days.first, days.last),
    )
    if digests:
        loaded = days.days()
        cursor.execute(
            f"INSERT INTO {LOADED_DAYS}"
            " (table_name, date_recorded, input_sha256, row_count, loaded_at)"
            " SELECT %s, unnest(%s::date[]), unnest(%s::text[]), unnest(%s::integer[]),"
            " clock_timestamp()",
            (
                table.name,
                loaded,
                [digests.get(day, NO_ROWS) for day in loaded],
                [per_day.get(day, 0) for day in loaded],
            ),
        )


class PreparedChunks:
    """The chunks ready for COPY: each prepared, checked against the range, rid of duplicate
    keys and stamped with the source as it is read, counting rows, duplicates and regions on
    the way."""

    def __init__(
        self,
        chunks: Iterable[pd.DataFrame],
        table: WarehouseTable,
        days: DayRange,
        source_id: int | None = None,
    ):
        self.chunks, self.table, self.days = chunks, table, days
        self.source_id = source_id
        self.rows = self.duplicates = 0
        self.regions: set[int] = set()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        # The next chunk is read and prepared in a thread while PostgreSQL takes the current
        # one (COPY waits for the server without holding the GIL): the two cores work at once.
        chunks = iter(self.chunks)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-chunk") as reader:
            ahead = reader.submit(self._next, chunks)
            while (rows := ahead.result()) is not None:
                ahead = reader.submit(self._next, chunks)
                yield rows

    def _next(self, chunks: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
        chunk = next(chunks, None)
        if chunk is None:
            return None
        rows = prepare_rows(chunk, self.table)
        check_range(rows, self.days, self.table)
        rows, removed = remove_duplicates(rows, self.table)
        rows["source_id"] = pd.array([self.source_id] * len(rows), dtype="Int64")
        self.rows, self.duplicates = self.rows + len(rows), self.duplicates + removed
        if self.table.regional:
            self.regions.update(rows["regionid"].unique().tolist())
        return rows


def _qualified(table: WarehouseTable) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table.name))


def _copy_statement(into: sql.Composable, columns: Iterable[str]) -> sql.Composable:
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        into, sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _copy_into_table(
    cursor: psycopg2.extensions.cursor, table: WarehouseTable, prepared: PreparedChunks
) -> None:
    """COPY each chunk into the table, its new regions into dim_region first (the foreign key).

    A region this load adds takes the names of its latest day, as a staged load's do."""
    target = _qualified(table)
    copy = _copy_statement(target, table.columns)
    added: set[int] = set()
    for rows in prepared:
        if not table.regional:
            cursor.copy_expert(copy.as_string(cursor), csv_buffer(rows[list(table.columns)]))
            continue
        latest = rows.sort_values(table.day_column).drop_duplicates("regionid", keep="last")
        regions = zip(*(latest[c].tolist() for c in ("regionid", *REGION_NAMES)))
        added.update(
            regionid
            for (regionid,) in psycopg2.extras.execute_values(
                cursor,
                sql.SQL(
                    "INSERT INTO carbon_data.dim_region AS d (regionid, shortname, dno,"
                    " updated_at) VALUES %s ON CONFLICT (regionid) DO UPDATE"
                    " SET shortname = EXCLUDED.shortname, dno = EXCLUDED.dno, updated_at = now()"
                    " WHERE d.regionid = ANY({}::integer[])"
                    " AND (d.shortname, d.dno) IS DISTINCT FROM (EXCLUDED.shortname, EXCLUDED.dno)"
                    " RETURNING regionid"
                ).format(sql.Literal(sorted(added))),
                list(regions),
                template="(%s, %s, %s, now())",
                fetch=True,
            )
        )
        cursor.copy_expert(copy.as_string(cursor), csv_buffer(rows[list(table.columns)]))


def _replace_through_staging(
    cursor: psycopg2.extensions.cursor,
    table: WarehouseTable,
    prepared: PreparedChunks,
    days: DayRange,
) -> tuple[int, int, int, int]:
    """Stage the rows, then insert the new, update the changed and delete the range's rows the
    input no longer has; returns (inserted, updated, refetched_unchanged, deleted).

    A row whose values are the same but whose provenance is newer (the day was fetched again
    and the API sent the same values) gets the new fetched_at and source but keeps its
    updated_at, and is not counted as updated."""
    target = _qualified(table)
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    values = table.value_columns
    measured = table.measured_columns

    def listed(alias: str, names: tuple[str, ...]) -> sql.Composable:
        return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)

    def same_key(left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(left, c), sql.Identifier(right, c))
            for c in table.key
        )

    first_key = sql.Identifier(table.key[0])
    # Staging columns copy the target's types (DECIMAL(10,2), SMALLINT...) but not its
    # constraints, so a bad value fails on the target, naming the target's CHECK. Region
    # names ride along for dim_region when the table does not hold them.
    extra = [c for c in table.input_columns if c not in table.columns]
    cursor.execute(
        sql.SQL(
            "CREATE TEMP TABLE carbon_staging ON COMMIT DROP AS SELECT {}{} FROM {} WITH NO DATA"
        ).format(
            columns,
            sql.SQL("").join(
                sql.SQL(", NULL::text AS {}").format(sql.Identifier(c)) for c in extra
            ),
            target,
        )
    )
    copy = _copy_statement(sql.Identifier("carbon_staging"), table.staged_columns)
    for rows in prepared:
        cursor.copy_expert(copy.as_string(cursor), csv_buffer(rows))
    cursor.execute(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE t.{} IS NULL),"
            " count(*) FILTER (WHERE t.{} IS NOT NULL AND ({}) IS DISTINCT FROM ({})),"
            " count(*) FILTER (WHERE t.{} IS NOT NULL AND ({}) IS NOT DISTINCT FROM ({})"
            "  AND ({}) IS DISTINCT FROM ({}))"
            " FROM carbon_staging s LEFT JOIN {} t ON {}"
        ).format(
            first_key,
            first_key,
            listed("s", measured),
            listed("t", measured),
            first_key,
            listed("s", measured),
            listed("t", measured),
            listed("s", values),
            listed("t", values),
            target,
            same_key("t", "s"),
        )
    )
    inserted, updated, refetched = cursor.fetchone()

    if table.regional:  # regions first, so the foreign key holds for new regions' rows
        cursor.execute(
            sql.SQL(
                "INSERT INTO carbon_data.dim_region (regionid, shortname, dno, updated_at)"
                " SELECT DISTINCT ON (regionid) regionid, shortname, dno, now()"
                " FROM carbon_staging ORDER BY regionid, {} DESC"
                " ON CONFLICT (regionid) DO NOTHING"
            ).format(sql.Identifier(table.day_column))
        )
    if inserted or updated or refetched:  # an idempotent re-run writes nothing at all
        # Only new and changed rows go in (the SELECT's WHERE), so a re-run with a few
        # changes touches a few rows; ON CONFLICT ... WHERE keeps unchanged rows (and
        # their updated_at) untouched even so.
        cursor.execute(
            sql.SQL(
                "INSERT INTO {} AS t ({}) SELECT {} FROM carbon_staging s LEFT JOIN {} c ON {}"
                " WHERE c.{} IS NULL OR ({}) IS DISTINCT FROM ({})"
                " ON CONFLICT ({}) DO UPDATE SET {},"
                " updated_at = CASE WHEN ({}) IS DISTINCT FROM ({})"
                " THEN now() ELSE t.updated_at END"
                " WHERE ({}) IS DISTINCT FROM ({})"
            ).format(
                target,
                columns,
                listed("s", table.columns),
                target,
                same_key("c", "s"),
                first_key,
                listed("s", values),
                listed("c", values),
                sql.SQL(", ").join(map(sql.Identifier, table.key)),
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in values
                ),
                listed("t", measured),
                listed("excluded", measured),
                listed("t", values),
                listed("excluded", values),
            )
        )
    # The range holds exactly the input's rows afterwards: a key that vanished upstream
    # (a region the API stopped sending for a day, a day re-fetched with fewer rows)
    # goes too, in the same transaction as the upsert.
    cursor.execute(
        sql.SQL(
            "DELETE FROM {} t WHERE t.{} BETWEEN %s AND %s"
            " AND NOT EXISTS (SELECT 1 FROM carbon_staging s WHERE {})"
        ).format(target, sql.Identifier(table.day_column), same_key("s", "t")),
        (days.first, days.last),
    )
    return inserted, updated, refetched, cursor.rowcount
