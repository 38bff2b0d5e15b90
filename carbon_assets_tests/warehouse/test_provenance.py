"""Migration 003 on the PostgreSQL service: every row says where it came from, the half-hourly
table holds the daily one's bounds, dim_region tells DNO regions from aggregates, and the data
dictionary follows the applied schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import psycopg2
import pytest
import sqlalchemy

from carbon_assets.columns import SchemaFileError, read_schema, sql_table_schema
from carbon_assets.partitions import DayRange
from carbon_assets.vocabulary import FUEL_COLUMNS, REGIONS
from carbon_assets.warehouse.checks import HALF_HOURLY_ONE_SOURCE, one_source_result, rows_by_source
from carbon_assets.warehouse.load import FetchSource, load_range
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets.warehouse.tables import DAILY, HALF_HOURLY
from carbon_assets_tests.helpers import synthetic_gold_rows
from carbon_assets_tests.postgres_helpers import create_database, drop_database, query

DAY = "2024-01-01"
FETCHED_AT = pd.Timestamp("2024-01-02T10:00:00.123456Z")
EMULATOR = FetchSource("http://127.0.0.1:8099", True)


@pytest.fixture
def engine() -> Iterator[tuple[str, sqlalchemy.Engine]]:
    name, url = create_database("service", None)
    yield url, WarehouseDatabase(database_url=url).engine()
    drop_database("service", None, name)


def halfhourly_rows(day: str = DAY, regions=range(1, 19)) -> pd.DataFrame:
    start = pd.Timestamp(day, tz="UTC")
    names = {regionid: (shortname, dno) for regionid, dno, shortname in REGIONS}
    return pd.DataFrame(
        {
            "regionid": regionid,
            "period_start": start + pd.Timedelta(minutes=30 * k),
            "date_recorded": start.date(),
            "intensity_forecast": 100 + k,
            "intensity_index": "moderate",
            **{fuel: 100 / len(FUEL_COLUMNS) for fuel in FUEL_COLUMNS},
            "fetched_at": FETCHED_AT,
            "shortname": names[regionid][0],
            "dno": names[regionid][1],
        }
        for regionid in regions
        for k in range(48)
    )


def one_day() -> DayRange:
    return DayRange.from_keys(DAY, DAY)


def test_a_load_stamps_every_row_with_its_source_and_fetch(engine):
    url, engine = engine
    daily = synthetic_gold_rows(DAY, 1).assign(fetched_at=FETCHED_AT)
    load_range(engine, DAILY, [daily], one_day(), EMULATOR)
    load_range(engine, HALF_HOURLY, [halfhourly_rows()], one_day(), EMULATOR)
    (source,) = query(url, "SELECT source_id, api_base_url, emulator FROM carbon_data.fetch_source")
    assert source[1:] == ("http://127.0.0.1:8099", True)
    for table in (DAILY, HALF_HOURLY):
        stamped = query(url, f"SELECT DISTINCT source_id, fetched_at FROM {table.qualified}")
        assert stamped == [(source[0], FETCHED_AT.to_pydatetime())], table.name
        with engine.connect() as connection:
            assert rows_by_source(connection, table) == {
                "http://127.0.0.1:8099 (the emulator)": 18 if table is DAILY else 864
            }


def test_a_lake_of_unknown_source_loads_as_unknown_and_a_second_source_shows(engine):
    url, engine = engine
    load_range(engine, DAILY, [synthetic_gold_rows(DAY, 1)], one_day(), FetchSource.unknown())
    other_day = DayRange.from_keys("2024-01-02", "2024-01-02")
    load_range(engine, DAILY, [synthetic_gold_rows("2024-01-02", 1)], other_day, EMULATOR)
    # The same source again is the same row of fetch_source.
    load_range(engine, DAILY, [synthetic_gold_rows("2024-01-02", 1)], other_day, EMULATOR)
    assert query(
        url, "SELECT api_base_url, emulator FROM carbon_data.fetch_source ORDER BY source_id"
    ) == [("unknown", None), ("http://127.0.0.1:8099", True)]
    with engine.connect() as connection:
        sources = rows_by_source(connection, DAILY)
    assert sources == {"unknown": 18, "http://127.0.0.1:8099 (the emulator)": 18}
    mixed = one_source_result(HALF_HOURLY_ONE_SOURCE, DAILY, sources)
    assert not mixed.passed and mixed.severity.value == "WARN"
    assert "unknown: 18 rows" in mixed.description


def test_a_source_id_fetch_source_lacks_is_named(engine):
    _, engine = engine
    load_range(engine, HALF_HOURLY, [halfhourly_rows(regions=[1])], one_day(), EMULATOR)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"UPDATE {HALF_HOURLY.qualified} SET source_id = 99 WHERE period_start < '{DAY} 01:00Z'"
        )
    with engine.connect() as connection:
        sources = rows_by_source(connection, HALF_HOURLY)
    assert sources == {
        "http://127.0.0.1:8099 (the emulator)": 46,
        "source_id 99, not in fetch_source": 2,
    }
    assert not one_source_result(HALF_HOURLY_ONE_SOURCE, HALF_HOURLY, sources).passed
    alone = {"source_id 99, not in fetch_source": 48}
    assert not one_source_result(HALF_HOURLY_ONE_SOURCE, HALF_HOURLY, alone).passed
    assert one_source_result(HALF_HOURLY_ONE_SOURCE, HALF_HOURLY, {"x": 48}).passed


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("fuel_gas", 1e9, "carbon_intensity_halfhourly_fuel_gas_check"),
        ("fuel_wind", -0.1, "carbon_intensity_halfhourly_fuel_wind_check"),
        ("intensity_forecast", 2_000_000_000, "intensity_forecast_range_check"),
    ],
)
def test_the_halfhourly_table_refuses_a_value_out_of_range_and_keeps_nothing(
    engine, column, value, constraint
):
    url, engine = engine
    rows = halfhourly_rows()
    rows.loc[500, column] = value
    with pytest.raises(psycopg2.errors.CheckViolation, match=constraint):
        load_range(engine, HALF_HOURLY, [rows], one_day(), EMULATOR)
    assert query(url, f"SELECT count(*) FROM {HALF_HOURLY.qualified}") == [(0,)]


def test_the_daily_table_refuses_an_average_intensity_above_2000(engine):
    url, engine = engine
    rows = synthetic_gold_rows(DAY, 1)
    rows.loc[3, "intensity_avg"] = 2000.01
    with pytest.raises(psycopg2.errors.CheckViolation, match="intensity_avg_range_check"):
        load_range(engine, DAILY, [rows], one_day(), EMULATOR)
    assert query(url, f"SELECT count(*) FROM {DAILY.qualified}") == [(0,)]


def test_dim_region_tells_dno_regions_from_nations_and_gb(engine):
    url, engine = engine
    load_range(engine, HALF_HOURLY, [halfhourly_rows()], one_day(), EMULATOR)
    kinds = dict(query(url, "SELECT regionid, region_kind FROM carbon_data.dim_region"))
    assert kinds == {
        **dict.fromkeys(range(1, 15), "dno"),
        15: "nation",
        16: "nation",
        17: "nation",
        18: "gb",
    }
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="dim_region_region_kind_check"):
        query(
            url,
            "INSERT INTO carbon_data.dim_region (regionid, shortname, dno) VALUES (19, 'a', 'b')",
        )


def test_the_data_dictionary_has_the_columns_later_migrations_add():
    daily = {column.name: column for column in sql_table_schema(DAILY.name, DAILY.key).columns}
    assert {"source_id", "fetched_at"} <= set(daily)
    assert "forecast" in daily["intensity_avg"].description
    assert "not energy-weighted" in daily["fuel_gas"].description
    assert "UTC" in daily["date_recorded"].description
    region = {c.name: c for c in sql_table_schema("dim_region", ("regionid",)).columns}
    assert "region_kind = 'dno'" in region["region_kind"].description
    sources = sql_table_schema("fetch_source", ("source_id",)).columns
    assert [c.name for c in sources] == ["source_id", "api_base_url", "emulator", "first_seen_at"]


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE carbon_data.t DROP COLUMN b;",
        "ALTER TABLE carbon_data.t RENAME COLUMN a TO b;",
        "DO $$ BEGIN EXECUTE 'ALTER TABLE carbon_data.t ADD COLUMN c TEXT'; END $$;",
        "CREATE VIEW carbon_data.v AS SELECT 1;",
    ],
)
def test_the_data_dictionary_refuses_a_statement_it_cannot_follow(statement):
    texts = {"001_a.sql": "CREATE TABLE carbon_data.t (\n    a INTEGER NOT NULL\n);"}
    tables, _ = read_schema(texts)
    assert [c.name for c in tables["t"].values()] == ["a"]
    with pytest.raises(SchemaFileError, match="sql/002_b.sql"):
        read_schema({**texts, "002_b.sql": statement})


def test_the_data_dictionary_reads_added_columns_and_quoted_semicolons():
    tables, described = read_schema(
        {
            "001_a.sql": "-- a table; with a comment\nCREATE TABLE carbon_data.t (a INTEGER);",
            "002_b.sql": (
                "ALTER TABLE carbon_data.t ADD COLUMN IF NOT EXISTS b TEXT NOT NULL,"
                " ADD CONSTRAINT t_b_check CHECK (b <> ';');\n"
                "COMMENT ON COLUMN carbon_data.t.b IS 'It''s b; really.';"
            ),
        }
    )
    assert [(c.name, c.type, c.nullable) for c in tables["t"].values()] == [
        ("a", "INTEGER", True),
        ("b", "TEXT", False),
    ]
    assert described == {"t": {"b": "It's b; really."}}


def test_fetch_times_keep_their_microseconds(engine):
    url, engine = engine
    load_range(engine, HALF_HOURLY, [halfhourly_rows(regions=[1])], one_day(), EMULATOR)
    (moment,) = query(url, f"SELECT DISTINCT fetched_at FROM {HALF_HOURLY.qualified}")[0]
    assert moment == dt.datetime(2024, 1, 2, 10, 0, 0, 123456, tzinfo=dt.UTC)


def test_a_refetch_with_the_same_values_refreshes_the_fetch_time_but_changes_no_row(engine):
    """fetched_at says when the API last sent the row's values: a settle-window re-fetch that
    brings the same values moves it, but the row's values and updated_at stay, and the load
    counts it apart from the updated rows."""
    url, engine = engine
    later = FETCHED_AT + pd.Timedelta(days=1)
    for table, rows in ((DAILY, synthetic_gold_rows(DAY, 1)), (HALF_HOURLY, halfhourly_rows())):
        load_range(engine, table, [rows.assign(fetched_at=FETCHED_AT)], one_day(), EMULATOR)
        before = query(url, f"SELECT min(updated_at), max(updated_at) FROM {table.qualified}")
        counts = load_range(engine, table, [rows.assign(fetched_at=later)], one_day(), EMULATOR)
        assert (counts.updated, counts.inserted, counts.deleted) == (0, 0, 0), table.name
        assert counts.refetched_unchanged == counts.skipped_unchanged == len(rows)
        fetched = query(url, f"SELECT DISTINCT fetched_at FROM {table.qualified}")
        assert fetched == [(later.to_pydatetime(),)]
        after = query(url, f"SELECT min(updated_at), max(updated_at) FROM {table.qualified}")
        assert after == before
        again = load_range(engine, table, [rows.assign(fetched_at=later)], one_day(), EMULATOR)
        assert again.refetched_unchanged == again.updated == 0
