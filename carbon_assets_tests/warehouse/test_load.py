"""PostgresWarehouseIOManager against real PostgreSQL (the 5432 service and the embedded one).

The manager is called directly with dagster's build_output_context/build_input_context (which
accept asset_partition_key_range in dagster 1.13), plus one real `materialize` of a
single-run-backfill asset over a partition range.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
from dagster import (
    AssetKey,
    AssetObservation,
    BackfillPolicy,
    DailyPartitionsDefinition,
    PartitionKeyRange,
    asset,
    build_input_context,
    build_output_context,
    materialize,
)

from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.partitions import DayRange
from carbon_assets.postgres.embedded import embedded_server, stop_embedded_server
from carbon_assets.vocabulary import FUEL_COLUMNS
from carbon_assets.warehouse.assets import digests_of_days
from carbon_assets.warehouse.io_manager import PostgresWarehouseIOManager, WarehouseError
from carbon_assets.warehouse.load import (
    FetchSource,
    Pictures,
    SourcedRows,
    csv_buffer,
    iso_text,
    load_range,
)
from carbon_assets.warehouse.resource import (
    WarehouseDatabase,
    create_warehouse_engine,
    session_settings,
    sqlalchemy_url,
)
from carbon_assets.warehouse.tables import DAILY, HALF_HOURLY
from carbon_assets_tests.helpers import REPO, range_tags, synthetic_gold_rows
from carbon_assets_tests.postgres_helpers import (
    SERVERS,
    admin_sql,
    create_database,
    drop_database,
    query,
    role_with_password,
)

PARTITIONS = DailyPartitionsDefinition(start_date="2018-05-11")
ASSET_KEY = AssetKey("carbon_intensity_daily")
TABLE = "carbon_data.carbon_intensity_daily"
CENT = Decimal("0.01")


# --- helpers ---------------------------------------------------------------------------------


def store(
    manager: PostgresWarehouseIOManager,
    rows: pd.DataFrame,
    start: str | None,
    end: str | None = None,
) -> dict:
    """handle_output for the partition range start..end (None: unpartitioned); returns the
    output metadata as plain values."""
    partitions = (
        {}
        if start is None
        else {
            "asset_partitions_def": PARTITIONS,
            "asset_partition_key_range": PartitionKeyRange(start, end or start),
        }
    )
    # As a context manager, so the ephemeral instance dagster builds for it is closed cleanly.
    with build_output_context(asset_key=ASSET_KEY, **partitions) as context:
        manager.handle_output(context, rows)
        return {
            key: getattr(value, "value", getattr(value, "text", value))
            for key, value in context.get_logged_metadata().items()
        }


def load(
    manager: PostgresWarehouseIOManager, start: str | None, end: str | None = None
) -> pd.DataFrame:
    """load_input for the partition range start..end (None: unpartitioned)."""
    partitions = (
        {}
        if start is None
        else {
            "asset_partitions_def": PARTITIONS,
            "asset_partition_key_range": PartitionKeyRange(start, end or start),
        }
    )
    with build_input_context(asset_key=ASSET_KEY, **partitions) as context:
        return manager.load_input(context)


def table_rows(url: str, table: str = TABLE) -> list[tuple]:
    """The whole table in key order: its columns, then the audit columns (loaded_at last but
    one, updated_at last)."""
    return query(
        url,
        f"SELECT *, loaded_at AS loaded, updated_at AS updated FROM {table}"
        " ORDER BY regionid, date_recorded",
    )


def counts(metadata: dict) -> tuple:
    """(duplicates_removed, skipped_unchanged, updated, inserted) of a load's metadata."""
    return tuple(
        metadata[k] for k in ("duplicates_removed", "skipped_unchanged", "updated", "inserted")
    )


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def warehouse(
    server: str, request: pytest.FixtureRequest
) -> Iterator[tuple[str, PostgresWarehouseIOManager]]:
    """(url, io manager) for a fresh database on `server`, dropped after the test."""
    data_dir = request.getfixturevalue("embedded_dir") if server == "embedded" else None
    name, url = create_database(server, data_dir)
    yield url, PostgresWarehouseIOManager(warehouse=WarehouseDatabase(database_url=url))
    drop_database(server, data_dir, name)


# --- loads -----------------------------------------------------------------------------------


def test_a_range_load_replaces_the_range_deleting_keys_gold_no_longer_has(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 4)
    store(manager, rows, "2024-01-01", "2024-01-04")
    day_2, day_3 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)
    # Region 7 vanished from 2 January and 3 January has no rows at all any more; 4 January
    # is outside the range loaded next and must stay as it is.
    fewer = rows[~((rows["regionid"] == 7) & (rows["date_recorded"] == day_2))]
    fewer = fewer[~fewer["date_recorded"].isin([day_3, dt.date(2024, 1, 4)])]

    meta = store(manager, fewer, "2024-01-01", "2024-01-03")
    assert meta["deleted"] == 1 + 18 and meta["skipped_unchanged"] == 2 * 18 - 1
    assert meta["dagster/row_count"] == 2 * 18 - 1
    assert len(table_rows(url)) == 3 * 18 - 1
    assert store(manager, fewer, "2024-01-01", "2024-01-03")["deleted"] == 0


def test_first_load_inserts_all_and_a_rerun_changes_nothing(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 31)

    meta = store(manager, rows, "2024-01-01", "2024-01-31")
    assert counts(meta) == (0, 0, 0, 558)
    assert meta["rows_in_range"] == 558 and meta["dagster/row_count"] == 558
    assert meta["table"] == TABLE
    before = table_rows(url)
    assert len(before) == 558
    assert query(url, "SELECT count(*) FROM carbon_data.dim_region") == [(18,)]

    assert counts(store(manager, rows, "2024-01-01", "2024-01-31")) == (0, 558, 0, 0)
    assert table_rows(url) == before  # not even updated_at moved


def sourced(rows: pd.DataFrame) -> SourcedRows:
    """Rows as the daily asset returns them: with their source and each day's digest."""
    return SourcedRows(rows, FetchSource("http://127.0.0.1:1", True), digests_of_days(rows))


def test_a_days_digest_is_that_of_its_rows_alone_whatever_else_the_range_holds() -> None:
    rows = synthetic_gold_rows("2024-01-01", 5)
    rows["fetched_at"] = "2024-01-06T00:00:00Z"  # an object column, hashed as text
    rows = rows.sample(frac=1, random_state=7, ignore_index=True)  # days interleaved
    digests = digests_of_days(rows)
    assert len(set(digests.values())) == 5
    for day, day_rows in rows.groupby("date_recorded", sort=False):
        alone = digests_of_days(day_rows.reset_index(drop=True))
        assert alone == {pd.Timestamp(day).date(): digests[pd.Timestamp(day).date()]}
    changed = rows.copy()
    changed.loc[changed.index[0], "intensity_avg"] += 1
    first_day = pd.Timestamp(changed.loc[changed.index[0], "date_recorded"]).date()
    differ = {day for day, digest in digests_of_days(changed).items() if digests[day] != digest}
    assert differ == {first_day}


def test_a_load_whose_every_day_is_as_last_loaded_leaves_the_table_alone(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 31)
    assert store(manager, sourced(rows), "2024-01-01", "2024-01-31")["inserted"] == 558
    recorded = query(url, "SELECT count(*), sum(row_count) FROM carbon_data.loaded_days")
    assert recorded == [(31, 558)]
    before = table_rows(url)

    again = store(manager, sourced(rows), "2024-01-01", "2024-01-31")
    assert again["days_unchanged"] == 31 and again["dagster/row_count"] == 558
    assert counts(again) == (0, 558, 0, 0) and table_rows(url) == before

    # A changed day, a day's rows deleted by hand, a load without digests: loaded again.
    changed = rows.copy()
    changed.loc[3, "intensity_avg"] += 1
    assert store(manager, sourced(changed), "2024-01-01", "2024-01-31")["updated"] == 1
    with create_warehouse_engine(url).begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM carbon_data.carbon_intensity_daily WHERE regionid = 5"
        )
    assert store(manager, sourced(changed), "2024-01-01", "2024-01-31")["inserted"] == 31
    assert store(manager, changed, "2024-01-01", "2024-01-31")["days_unchanged"] == 0
    assert query(url, "SELECT count(*) FROM carbon_data.loaded_days") == [(0,)]
    assert store(manager, sourced(changed), "2024-01-01", "2024-01-31")["days_unchanged"] == 0
    assert store(manager, sourced(changed), "2024-01-01", "2024-01-31")["days_unchanged"] == 31


def test_pictures_are_drawn_by_a_load_that_changes_the_table_only(warehouse) -> None:
    _, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 31)
    drawn: list[str] = []

    def with_pictures(rows: pd.DataFrame) -> SourcedRows:
        plain = sourced(rows)
        return SourcedRows(
            plain.rows,
            plain.source,
            plain.day_digests,
            Pictures("2024-01-31", lambda: drawn.append("drawn") or {"chart": "png"}),
        )

    def observed(rows: pd.DataFrame) -> tuple[str, list]:
        with build_output_context(
            asset_key=ASSET_KEY,
            asset_partitions_def=PARTITIONS,
            asset_partition_key_range=PartitionKeyRange("2024-01-01", "2024-01-31"),
        ) as context:
            manager.handle_output(context, with_pictures(rows))
            observations = [
                (event.partition, dict(event.metadata))
                for event in context.get_logged_events()
                if isinstance(event, AssetObservation)
            ]
            return context.get_logged_metadata()["pictures"].value, observations

    shown, observations = observed(rows)
    assert shown == "observation of 2024-01-31" and drawn == ["drawn"]
    assert [(day, list(metadata)) for day, metadata in observations] == [("2024-01-31", ["chart"])]
    shown, observations = observed(rows)  # loaded again as it was: nothing drawn or recorded
    assert shown.startswith("unchanged") and drawn == ["drawn"] and observations == []
    changed = rows.copy()
    changed.loc[3, "intensity_avg"] += 1
    assert observed(changed)[0] == "observation of 2024-01-31" and drawn == ["drawn", "drawn"]


def test_changed_values_update_exactly_those_rows(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 10)
    store(manager, rows, "2024-01-01", "2024-01-10")
    before = {(r[0], r[1]): r for r in table_rows(url)}

    changed = rows.copy()
    changed.loc[3, "intensity_avg"] = changed.loc[3, "intensity_avg"] + 1
    changed.loc[40, "fuel_wind"] = None  # a fuel the API stopped reporting
    changed.loc[41, "index_mode"] = None
    assert counts(store(manager, changed, "2024-01-01", "2024-01-10")) == (0, 177, 3, 0)

    after = {(r[0], r[1]): r for r in table_rows(url)}
    changed_keys = {(int(changed.regionid[i]), changed.date_recorded[i]) for i in (3, 40, 41)}
    for key, row in after.items():
        loaded_at, updated_at = row[-2], row[-1]
        assert loaded_at == before[key][-2]
        if key in changed_keys:
            assert updated_at > before[key][-1]
        else:
            assert row == before[key]
    fuel_wind = GOLD_COLUMNS.index("fuel_wind")
    assert after[(int(changed.regionid[40]), changed.date_recorded[40])][fuel_wind] is None


def test_duplicate_input_rows_are_counted_and_the_last_one_kept(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-02-01", 2)
    duplicate = rows.iloc[[5]].copy()
    duplicate["intensity_avg"] = Decimal("123.45")
    doubled = pd.concat([rows, rows.iloc[[0, 1]], duplicate], ignore_index=True)

    meta = store(manager, doubled, "2024-02-01", "2024-02-02")
    assert counts(meta) == (3, 0, 0, 36)
    assert meta["rows_in_range"] == 36
    region, day = int(rows.regionid[5]), rows.date_recorded[5]
    assert query(
        url,
        f"SELECT intensity_avg FROM {TABLE} WHERE regionid = %s AND date_recorded = %s",
        (region, day),
    ) == [(Decimal("123.45"),)]


def test_floats_are_rounded_half_up_and_missing_fuels_become_null(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-03-01", 1).head(3).copy()
    for column in ("intensity_avg", *FUEL_COLUMNS):
        rows[column] = rows[column].astype(float)
    rows.loc[0, "intensity_avg"] = 2.675  # binary 2.67499999..., still 2.68 like Decimal("2.675")
    rows.loc[1, "intensity_avg"] = 0.125
    rows.loc[2, "intensity_avg"] = 10.004999
    rows.loc[0, "fuel_coal"] = float("nan")
    store(manager, rows, "2024-03-01")
    stored = query(url, f"SELECT intensity_avg, fuel_coal IS NULL FROM {TABLE} ORDER BY regionid")
    assert stored == [(Decimal("2.68"), True), (Decimal("0.13"), False), (Decimal("10.00"), False)]


def test_copy_text_keeps_values_as_written_and_nulls_apart_from_empty_text() -> None:
    rows = pd.DataFrame(
        {
            "share": [2.675, 1e-7, float("nan")],
            "exact": [Decimal("12.3"), None, Decimal("-0.5")],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "name": ["a,b", "", None],
            "mixed": [1, "x", None],  # no single type: each value's text
        }
    )
    text = csv_buffer(rows).getvalue().decode()
    assert text.splitlines() == ['2.675,"12.3",1,"a,b","1"', '1e-7,,,"","x"', ',"-0.5",3,,']


def test_days_and_moments_become_iso_text_in_utc() -> None:
    moments = pd.Series(pd.to_datetime(["2024-03-31T00:30:00+01:00", None], utc=True))
    assert iso_text(moments, "s", suffix="+00:00").tolist() == [
        "2024-03-30T23:30:00+00:00",
        None,
    ]
    days = pd.Series(pd.to_datetime(["2024-02-29", "2018-05-11"]))
    assert iso_text(days, "D").tolist() == ["2024-02-29", "2018-05-11"]


def test_rows_outside_the_partition_range_are_an_error(warehouse) -> None:
    url, manager = warehouse
    store(manager, synthetic_gold_rows("2024-01-01", 1), "2024-01-01")
    before = table_rows(url)
    with pytest.raises(
        ValueError,
        match=r"18 input rows are outside the partition range 2024-01-01\.\.\.2024-01-02",
    ):
        store(manager, synthetic_gold_rows("2024-01-01", 3, seed=1), "2024-01-01", "2024-01-02")
    assert table_rows(url) == before


def test_a_failure_mid_load_rolls_everything_back(warehouse) -> None:
    url, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 5)
    store(manager, rows, "2024-01-01", "2024-01-06")
    before, regions_before = (
        table_rows(url),
        query(url, "SELECT * FROM carbon_data.dim_region ORDER BY 1"),
    )

    bad = pd.concat(
        [rows, synthetic_gold_rows("2024-01-06", 1, seed=3)], ignore_index=True
    )  # 18 new rows
    bad.loc[0, "intensity_avg"] = Decimal("999.99")  # a changed row
    bad.loc[0, "shortname"] = "Renamed"
    bad.loc[len(bad) - 1, "fuel_gas"] = Decimal("150.00")  # violates the CHECK, last row
    with pytest.raises(WarehouseError, match="fuel_gas_check") as raised:
        store(manager, bad, "2024-01-01", "2024-01-06")
    assert "the table is unchanged" in str(raised.value)
    assert table_rows(url) == before
    assert query(url, "SELECT * FROM carbon_data.dim_region ORDER BY 1") == regions_before


def test_a_restarted_server_does_not_break_the_next_load(warehouse, server, request) -> None:
    url, manager = warehouse
    store(manager, synthetic_gold_rows("2024-01-01", 1), "2024-01-01")
    database = url.rsplit("/", 1)[1].split("?")[0]
    if server == "service":
        # What a restart does to our pooled connection, without restarting the shared service.
        terminated = admin_sql(
            "service",
            None,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        assert terminated, "the engine should have kept a pooled connection"
    else:
        data_dir = request.getfixturevalue("embedded_dir")
        assert stop_embedded_server(data_dir)
        embedded_server(data_dir)

    assert counts(store(manager, synthetic_gold_rows("2024-01-02", 1), "2024-01-02")) == (
        0,
        0,
        0,
        18,
    )
    assert len(table_rows(url)) == 36


def test_concurrent_loads_of_one_range_queue_up_and_count_exactly(service_database_url) -> None:
    manager = PostgresWarehouseIOManager(
        warehouse=WarehouseDatabase(database_url=service_database_url)
    )
    rows = synthetic_gold_rows("2024-01-01", 30)
    results: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(store(manager, rows, "2024-01-01", "2024-01-30"))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(counts(meta) for meta in results) == [
        (0, 0, 0, 540),
        (0, 540, 0, 0),
        (0, 540, 0, 0),
    ]


def test_region_names_follow_the_latest_day_loaded(warehouse) -> None:
    url, manager = warehouse
    recent = synthetic_gold_rows("2024-01-01", 1)
    old = synthetic_gold_rows("2019-06-01", 1)
    old.loc[old.regionid == 6, "shortname"] = "North Wales and Merseyside"
    store(manager, recent, "2024-01-01")
    store(manager, old, "2019-06-01")  # backfilling old data must not bring the old name back
    region_6 = "SELECT shortname FROM carbon_data.dim_region WHERE regionid = 6"
    assert query(url, region_6) == [("North Wales & Merseyside",)]

    newer = synthetic_gold_rows("2024-01-02", 1)
    newer.loc[newer.regionid == 6, "shortname"] = "Merseyside & North Wales"
    store(manager, newer, "2024-01-02")
    assert query(url, region_6) == [("Merseyside & North Wales",)]


def halfhourly_rows(day: str, names: dict[int, str]) -> pd.DataFrame:
    """Half-hourly rows of `day` for the regions of `names` ({regionid: shortname})."""
    start = pd.Timestamp(day, tz="UTC")
    return pd.DataFrame.from_records(
        {
            "regionid": regionid,
            "period_start": start + pd.Timedelta(minutes=30 * k),
            "date_recorded": start.date(),
            "intensity_forecast": 100 + k,
            "intensity_index": "moderate",
            **{fuel: 100 / len(FUEL_COLUMNS) for fuel in FUEL_COLUMNS},
            "fetched_at": pd.Timestamp("2024-02-01T10:00Z"),
            "shortname": name,
            "dno": f"{name} DNO",
        }
        for regionid, name in names.items()
        for k in range(48)
    )


def test_a_first_load_copies_chunks_straight_in_and_fails_whole(warehouse) -> None:
    url, manager = warehouse
    engine = manager.warehouse.engine()
    regions = "SELECT regionid, shortname FROM carbon_data.dim_region ORDER BY 1"
    january = DayRange.from_keys("2024-01-01", "2024-01-02")
    chunks = [
        halfhourly_rows("2024-01-01", {1: "North Scotland", 14: "Atlantis"}),
        halfhourly_rows("2024-01-02", {1: "North Scotland", 14: "New Atlantis"}),
    ]
    first = load_range(engine, HALF_HOURLY, chunks, january)  # an empty range: straight in
    assert (first.inserted, first.updated, first.deleted, first.rows_in_table) == (192, 0, 0, 192)
    # A region this load adds takes the names of its latest day, as a staged load's do.
    assert query(url, regions) == [(1, "North Scotland"), (14, "New Atlantis")]
    again = load_range(engine, HALF_HOURLY, chunks, january)  # the range holds rows: staged
    assert (again.skipped_unchanged, again.inserted, again.updated, again.deleted) == (
        192,
        0,
        0,
        0,
    )

    bad = [halfhourly_rows(day, {2: "North West Scotland"}) for day in ("2024-02-01", "2024-02-02")]
    bad[1].loc[47, "intensity_forecast"] = -1  # the last row of the second chunk
    with pytest.raises(psycopg2.errors.CheckViolation, match="intensity_forecast_check"):
        load_range(engine, HALF_HOURLY, bad, DayRange.from_keys("2024-02-01", "2024-02-02"))
    assert query(url, "SELECT count(*) FROM carbon_data.carbon_intensity_halfhourly") == [(192,)]
    assert query(url, regions) == [(1, "North Scotland"), (14, "New Atlantis")]


# --- reads -----------------------------------------------------------------------------------


def test_load_input_returns_exactly_the_rows_of_the_range(warehouse) -> None:
    _, manager = warehouse
    rows = synthetic_gold_rows("2024-01-01", 10)
    store(manager, rows, "2024-01-01", "2024-01-10")

    loaded = load(manager, "2024-01-03", "2024-01-04")
    assert list(loaded.columns) == [*DAILY.columns, "loaded_at", "updated_at"]
    assert len(loaded) == 36
    assert set(loaded.date_recorded) == {dt.date(2024, 1, 3), dt.date(2024, 1, 4)}
    keys = list(loaded[["date_recorded", "regionid"]].itertuples(index=False, name=None))
    assert keys == sorted(keys)
    expected = rows[rows.date_recorded.isin([dt.date(2024, 1, 3), dt.date(2024, 1, 4)])]
    expected = expected.sort_values(["date_recorded", "regionid"], ignore_index=True)
    # fetched_at and source_id: test_provenance.py
    values = [c for c in GOLD_COLUMNS if c != "fetched_at"]
    pd.testing.assert_frame_equal(loaded[values], expected[values])
    assert isinstance(loaded.intensity_avg[0], Decimal) and loaded.regionid.dtype == "int64"

    assert len(load(manager, None)) == 180  # unpartitioned: everything
    empty = load(manager, "2023-01-01", "2023-01-31")
    assert len(empty) == 0 and list(empty.columns) == list(loaded.columns)


def test_unpartitioned_output_uses_the_rows_own_date_span(warehouse) -> None:
    _, manager = warehouse
    meta = store(manager, synthetic_gold_rows("2024-05-01", 2), None)
    assert meta["partition_range"] == "2024-05-01...2024-05-02" and meta["inserted"] == 36


# --- configuration and secrets ---------------------------------------------------------------


def test_no_password_in_logs_metadata_or_errors(password_role, caplog, capsys) -> None:
    url, password = password_role
    manager = PostgresWarehouseIOManager(warehouse=WarehouseDatabase(database_url=url))
    caplog.set_level(logging.DEBUG)
    rows = synthetic_gold_rows("2024-01-01", 2)

    metadata = store(manager, rows, "2024-01-01", "2024-01-02")
    assert (
        metadata["database"].startswith("postgresql://carbon_pw_")
        and ":***@" in metadata["database"]
    )
    logged = capsys.readouterr()  # dagster's console logger writes to stderr
    assert "Inserted 36 new rows" in logged.err

    bad = rows.copy()
    bad.loc[7, "fuel_solar"] = Decimal(150)
    missing_database = PostgresWarehouseIOManager(
        warehouse=WarehouseDatabase(database_url=url.rsplit("/", 1)[0] + "/no_such_db")
    )
    failures = []
    for attempt in (
        lambda: store(manager, bad, "2024-01-01", "2024-01-02"),  # a CHECK violation
        lambda: load(missing_database, "2024-01-01"),  # a connection failure
    ):
        with pytest.raises(WarehouseError) as raised:
            attempt()
        failures.append(raised.value)

    texts = [caplog.text, str(metadata), *logged, *capsys.readouterr()]
    for error in failures:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    for text in texts:
        assert password not in text


def test_embedded_warehouse_by_default_and_started_on_demand(embedded_dir: Path) -> None:
    manager = PostgresWarehouseIOManager(
        warehouse=WarehouseDatabase(data_dir=str(embedded_dir))
    )  # no database_url
    stop_embedded_server(embedded_dir)
    meta = store(manager, synthetic_gold_rows("2020-02-29", 1), "2020-02-29")
    assert meta["database"].startswith("postgresql+psycopg2://postgres@/carbon?host=")
    assert meta["dagster/row_count"] == 18
    assert len(load(manager, "2020-02-29")) == 18


# --- through dagster -------------------------------------------------------------------------


def test_materialize_a_partition_range_in_one_run(service_database_url) -> None:
    url = service_database_url

    @asset(
        partitions_def=PARTITIONS,
        backfill_policy=BackfillPolicy.single_run(),
        io_manager_key="warehouse",
    )
    def carbon_intensity_daily(context) -> pd.DataFrame:
        key_range = context.partition_key_range
        days = (
            dt.date.fromisoformat(key_range.end) - dt.date.fromisoformat(key_range.start)
        ).days + 1
        return synthetic_gold_rows(key_range.start, days)

    result = materialize(
        [carbon_intensity_daily],
        resources={
            "warehouse": PostgresWarehouseIOManager(warehouse=WarehouseDatabase(database_url=url))
        },
        tags=range_tags("2024-01-01", "2024-01-07"),
    )
    assert result.success
    # One run for the whole range: one load, reported on each partition's materialization.
    materializations = result.asset_materializations_for_node("carbon_intensity_daily")
    assert sorted(m.partition for m in materializations) == [f"2024-01-0{d}" for d in range(1, 8)]
    assert {m.metadata["inserted"].value for m in materializations} == {126}
    assert {m.metadata["dagster/row_count"].value for m in materializations} == {126}
    assert len(table_rows(url)) == 126


@pytest.fixture
def password_role() -> Iterator[tuple[str, str]]:
    with role_with_password() as url_and_password:
        yield url_and_password


# --- locks -----------------------------------------------------------------------------------


def test_every_session_has_a_lock_timeout_and_a_client_check(service_database_url) -> None:
    engine = create_warehouse_engine(service_database_url, lock_timeout_seconds=7)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
        assert connection.exec_driver_sql("SHOW client_connection_check_interval").scalar() == "5s"
        connection.rollback()  # what the pool does on return: the settings must survive it
        assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "7s"
    assert session_settings(7, 130000) == {"lock_timeout": "7000ms"}  # no such setting before 14


def test_a_load_blocked_by_a_lock_gives_up_after_the_lock_timeout(service_database_url) -> None:
    url = service_database_url
    manager = PostgresWarehouseIOManager(
        warehouse=WarehouseDatabase(database_url=url, lock_timeout_seconds=0.5)
    )
    store(manager, synthetic_gold_rows("2024-01-01", 1), "2024-01-01")
    before = table_rows(url)
    holder = psycopg2.connect(sqlalchemy_url(url).replace("+psycopg2", ""))
    try:
        with holder.cursor() as cursor:  # a forgotten transaction that holds the table
            cursor.execute(f"LOCK TABLE {TABLE} IN SHARE MODE")
        with pytest.raises(WarehouseError) as raised:
            store(manager, synthetic_gold_rows("2024-01-02", 1), "2024-01-02")
    finally:
        holder.rollback()
        holder.close()
    assert "LockNotAvailable: canceling statement due to lock timeout" in str(raised.value)
    assert "the table is unchanged" in str(raised.value)
    assert table_rows(url) == before


# Waits for a lock on the table through the project's engine; meant to be killed meanwhile.
LOCK_WAITER = """
import sys
from carbon_assets.warehouse.resource import create_warehouse_engine
engine = create_warehouse_engine(sys.argv[1])
with engine.begin() as connection:
    connection.exec_driver_sql(
        "LOCK TABLE carbon_data.carbon_intensity_daily IN SHARE ROW EXCLUSIVE MODE"
    )
"""


def test_a_killed_client_waiting_for_a_lock_leaves_no_session_behind(
    service_database_url,
) -> None:
    """Without client_connection_check_interval the killed client's backend would wait in the
    lock queue until the holder let go (or the lock_timeout, minutes later), then hold the lock."""
    url = service_database_url
    store(
        PostgresWarehouseIOManager(warehouse=WarehouseDatabase(database_url=url)),
        synthetic_gold_rows("2024-01-01", 1),
        "2024-01-01",
    )
    holder = psycopg2.connect(sqlalchemy_url(url).replace("+psycopg2", ""))
    waiter = None
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {TABLE} IN SHARE MODE")
        waiter = subprocess.Popen(
            [sys.executable, "-c", LOCK_WAITER, url], env=os.environ | {"PYTHONPATH": str(REPO)}
        )
        waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        waiting += " AND wait_event_type = 'Lock' AND starts_with(query, 'LOCK TABLE')"
        (pid,) = wait_for(lambda: query(url, waiting), "the client waiting for the lock")[0]
        waiter.kill()
        waiter.wait(timeout=60)
        # The holder still holds the lock: only the server's check of its client ends the wait.
        wait_for(
            lambda: not query(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)),
            "the end of the killed client's session",
            timeout=60,
        )
    finally:
        if waiter is not None and waiter.poll() is None:
            waiter.kill()
        holder.rollback()
        holder.close()


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll `condition` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        time.sleep(0.1)
    return value
