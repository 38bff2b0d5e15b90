"""Fault and recovery: kill the run, stop PostgreSQL, lose the API; the re-run repairs everything.

Every scenario ends with the same two proofs:

* the warehouse equals a clean run's, row by row (a sorted dump of carbon_intensity_daily and
  dim_region without loaded_at/updated_at), and
* no partial file is left in the lake: no .tmp-* file, no _temporary or .spark-staging* folder,
  every bronze .json.gz decompresses and parses and every Parquet file reads with pyarrow.

"The middle" is hit deterministically: bronze is killed once two of its day files exist (the
emulator answers slowly, one day per request); silver is killed between two of its day files,
while the next one is still a .tmp- file (the run's fsyncs under data/silver are slowed down to
0.5 s, a slow disk); the warehouse load is killed (or its PostgreSQL stopped) while
it waits, inside its transaction and after its INSERT into carbon_intensity_daily, for a row
lock on dim_region that the test holds. A killed run is killed with SIGKILL sent to its whole
process group (the Python driver and the Spark JVM at once).

Each scenario adds a row to FAULT_MATRIX (fault / how injected / outcome / rows lost), printed
at the end of the module.
"""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg2
import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection

from carbon_assets.definitions import build_resources
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake import read_parquet_table
from carbon_assets.lake_source import read_lake_source
from carbon_assets.partitions import DayRange
from carbon_assets.postgres.embedded import (
    embedded_database_url,
    embedded_server,
)
from carbon_assets_tests.faults.common import (
    FaultRecord,
    assert_lake_whole,
    assert_same_dump,
    check_results,
    closed_port_url,
    leftovers,
    materialized_assets,
    output_metadata,
    report_matrix,
    rows_lost,
    start_pipeline_process,
    step_failures,
    transaction,
    warehouse_dump,
)
from carbon_assets_tests.helpers import FAST_API, materialize_range
from carbon_assets_tests.postgres_helpers import (
    create_database,
    discard_server,
    drop_database,
    query,
    role_with_password,
    server_data_dir,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SEED = 7  # emulator data depend only on (seed, half-hour): every run below sees the same values
FIRST, LAST = "2024-02-01", "2024-02-07"
DAYS = len(DayRange.from_keys(FIRST, LAST).days())
PRELOADED_LAST = "2024-02-03"  # the part of the range loaded before a warehouse fault
ROWS_PER_DAY = 18
WAREHOUSE = AssetSelection.assets("carbon_intensity_daily")
OLD_NAME = "North Scotland (old name)"

FAULT_MATRIX: list[FaultRecord] = []


@pytest.fixture(scope="module", autouse=True)
def _print_matrix(request):
    yield
    report_matrix(request, "Fault and recovery matrix (test_fault_recovery.py)", FAULT_MATRIX)


@dataclass
class Reference:
    """A clean, uninterrupted run of FIRST..LAST: its lake and its warehouse dump."""

    data_dir: Path
    dump: dict[str, list[tuple]]


def lake_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Silver and gold without their fetched_at lineage columns (a recovered run fetched at
    other moments than the clean one), sorted, as pandas."""
    silver = read_parquet_table(data_dir / "silver").drop(columns=["fetched_at"])
    gold = read_parquet_table(data_dir / "gold").drop(columns=["fetched_at"])
    return {
        "silver": silver.sort_values(["date_recorded", "regionid", "timestamp"], ignore_index=True),
        "gold": gold.sort_values(["date_recorded", "regionid"], ignore_index=True),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, spark) -> Reference:
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    name, url = create_database("service", None)
    try:
        with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
            result = materialize_range(
                build_resources(str(data_dir), emulator.base_url, url), FIRST, LAST
            )
        assert result.success, step_failures(result)
        assert all(check.passed for check in check_results(result).values())
        dump = warehouse_dump(url)
    finally:
        drop_database("service", None, name)
    assert len(dump["carbon_intensity_daily"]) == DAYS * ROWS_PER_DAY
    assert len(dump["dim_region"]) == ROWS_PER_DAY
    return Reference(data_dir, dump)


def assert_recovered(data_dir: Path, database_url: str, reference: Reference) -> None:
    """The lake is whole and equals the clean run's; so does the warehouse, row by row."""
    counts = assert_lake_whole(data_dir)
    assert counts["bronze"] == DAYS
    actual, expected = lake_tables(data_dir), lake_tables(reference.data_dir)
    for layer in ("silver", "gold"):
        pd.testing.assert_frame_equal(actual[layer], expected[layer], check_exact=True)
    assert_same_dump(warehouse_dump(database_url), reference.dump)


def table_exists(url: str) -> bool:
    return query(url, "SELECT to_regclass('carbon_data.carbon_intensity_daily') IS NOT NULL")[0][0]


def daily_rows(url: str) -> int:
    return (
        query(url, "SELECT count(*) FROM carbon_data.carbon_intensity_daily")[0][0]
        if table_exists(url)
        else 0
    )


# --- SIGKILL in the middle of each layer -------------------------------------------------


def test_sigkill_during_bronze_then_rerun_matches_a_clean_run(
    tmp_path, reference, service_database_url
):
    data_dir, bronze = tmp_path / "data", tmp_path / "data" / "bronze"
    # One day per request, one at a time, 0.3-0.5 s each: bronze takes a few seconds.
    slow = EmulatorConfig(seed=SEED, latency_min=0.3, latency_max=0.5)
    with start_emulator(slow) as emulator:
        run = start_pipeline_process(
            tmp_path,
            data_dir,
            emulator.base_url,
            service_database_url,
            FIRST,
            LAST,
            "--days-per-request",
            "1",
            "--max-concurrency",
            "1",
        )
        run.wait_for(lambda: len(list(bronze.rglob("*.json.gz"))) >= 2, "second bronze day file")
        run.kill()
        stored = sorted(bronze.rglob("*.json.gz"))
        assert 2 <= len(stored) < DAYS, "the kill must land while bronze is still fetching"
        assert not (data_dir / "silver").exists()
        assert daily_rows(service_database_url) == 0
        # Files already there are whole (written atomically); a .tmp- file may be left over.
        partial = leftovers(data_dir)
        for path in stored:
            assert json.loads(gzip.decompress(path.read_bytes()))["complete"], path

        emulator.reset_stats()
        rerun = materialize_range(
            build_resources(str(data_dir), emulator.base_url, service_database_url), FIRST, LAST
        )
    assert rerun.success, step_failures(rerun)
    bronze_metadata = output_metadata(rerun, "bronze_carbon_intensity")
    assert bronze_metadata["days_left_as_they_are"] == len(stored)
    assert bronze_metadata["days_written"] == DAYS - len(stored)
    assert_recovered(data_dir, service_database_url, reference)
    FAULT_MATRIX.append(
        FaultRecord(
            "run killed during bronze",
            f"SIGKILL to the run's process group once {len(stored)} of {DAYS} day files existed "
            "(emulator latency 0.3-0.5 s, 1 day per request)",
            f"{len(stored)} whole files kept, {len(partial)} temp file(s) left and removed by the "
            f"re-run, which fetched only the {DAYS - len(stored)} missing days; "
            "warehouse = clean run",
            "0",
        )
    )


def test_sigkill_during_the_silver_write_then_rerun_matches_a_clean_run(
    tmp_path, reference, service_database_url
):
    """Silver is written one day file at a time (temporary file, fsync, rename). With a slow
    disk under data/silver (every fsync there takes 0.5 s) the run is killed once at least one
    day is published while the next day's temporary file is being synced."""
    data_dir, silver = tmp_path / "data", tmp_path / "data" / "silver"

    def published() -> list[Path]:
        return sorted(silver.glob("date_recorded=*/*.parquet"))

    def in_flight() -> list[Path]:
        return [
            p
            for p in silver.rglob("*")
            if p.name.startswith((".tmp-", ".spark-staging")) or p.name == "_temporary"
        ]

    with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
        run = start_pipeline_process(
            tmp_path,
            data_dir,
            emulator.base_url,
            service_database_url,
            FIRST,
            LAST,
            "--slow-fsync-under",
            str(silver),
            "--slow-fsync-seconds",
            "0.5",
        )
        run.wait_for(
            lambda: silver.exists() and bool(published()) and bool(in_flight()),
            "a published silver day and the next one in flight",
        )
        run.kill()
    days_published, left = published(), in_flight()
    assert left, "the kill must land while a silver day file is being written"
    assert 1 <= len(days_published) < DAYS
    for path in days_published:  # published days are whole
        assert pq.read_table(path).num_rows == 48 * ROWS_PER_DAY, path
    # A reader of the half-written layer sees exactly the published days, whole.
    seen = read_parquet_table(silver)
    assert len(seen) == len(days_published) * 48 * ROWS_PER_DAY
    assert not (data_dir / "gold").exists()
    assert daily_rows(service_database_url) == 0
    assert len(list((data_dir / "bronze").rglob("*.json.gz"))) == DAYS

    # Bronze is complete, so the re-run must not need the API at all: it names the lake's own
    # API (the lake records its source), whose emulator has stopped: its port is closed.
    rerun = materialize_range(
        build_resources(str(data_dir), emulator.base_url, service_database_url), FIRST, LAST
    )
    assert rerun.success, step_failures(rerun)
    assert output_metadata(rerun, "bronze_carbon_intensity")["days_left_as_they_are"] == DAYS
    assert_recovered(data_dir, service_database_url, reference)
    FAULT_MATRIX.append(
        FaultRecord(
            "run killed during the silver write",
            "slow disk under data/silver (each fsync +0.5 s, in the run's process only); "
            "SIGKILL to the process group (driver + Spark JVM) once a day file was published "
            "and the next one was a .tmp- file",
            f"{len(days_published)} of {DAYS} silver days published and whole (readers see only "
            f"them), {len(left)} .tmp- file left; the re-run removed it, rewrote silver and "
            "gold and loaded the warehouse without calling the API; warehouse = clean run",
            "0",
        )
    )


@pytest.fixture
def copied_lake(tmp_path, reference) -> Path:
    """A copy of the clean run's lake: bronze, silver and gold of FIRST..LAST."""
    data_dir = tmp_path / "data"
    shutil.copytree(reference.data_dir, data_dir)
    return data_dir


def preload_then_hold_a_region_row(data_dir: Path, database_url: str):
    """Load FIRST..PRELOADED_LAST, give region 1 an older name in dim_region (as after a
    rename), and return (the warehouse dump, an open transaction holding that dim_region row
    FOR NO KEY UPDATE); release the lock with `lock.__exit__(None, None, None)`.

    A load of FIRST..LAST then inserts its new rows into carbon_intensity_daily (its foreign
    key checks take FOR KEY SHARE, which does not conflict) and blocks, inside its transaction,
    on `UPDATE carbon_data.dim_region` (region 1's name differs from its latest day's) until
    the lock is released: the rows are written but not committed.
    """
    preload = materialize_range(
        build_resources(str(data_dir), closed_port_url(), database_url),
        FIRST,
        PRELOADED_LAST,
        selection=WAREHOUSE,
    )
    assert preload.success, step_failures(preload)
    with transaction(database_url) as cursor:
        cursor.execute(
            "UPDATE carbon_data.dim_region SET shortname = %s WHERE regionid = 1", (OLD_NAME,)
        )
        cursor.connection.commit()
    before = warehouse_dump(database_url)
    assert len(before["carbon_intensity_daily"]) == 3 * ROWS_PER_DAY
    lock = transaction(database_url)
    cursor = lock.__enter__()
    # NO KEY: the foreign key checks of the INSERT (FOR KEY SHARE) pass, the UPDATE waits.
    cursor.execute("SELECT 1 FROM carbon_data.dim_region WHERE regionid = 1 FOR NO KEY UPDATE")
    return before, lock


BLOCKED_LOAD = """
    SELECT a.pid, a.query FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
      AND a.pid <> pg_backend_pid()
      AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted
                  AND l.relation = 'carbon_data.carbon_intensity_daily'::regclass
                  AND l.mode = 'RowExclusiveLock')"""


def blocked_load(url: str) -> tuple[int, str] | None:
    """(pid, statement) of a warehouse load that has written into the daily table (it holds
    RowExclusiveLock on it) and now waits for a lock, or None."""
    rows = query(url, BLOCKED_LOAD)
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def wait_until(condition, what: str, timeout: float = 120.0, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s")
        time.sleep(interval)
    return value


def test_sigkill_during_the_warehouse_load_then_rerun_matches_a_clean_run(
    tmp_path, reference, copied_lake, service_database_url
):
    url = service_database_url
    before, lock = preload_then_hold_a_region_row(copied_lake, url)
    try:
        run = start_pipeline_process(
            tmp_path,
            copied_lake,
            closed_port_url(),
            url,
            FIRST,
            LAST,
            "--select",
            "carbon_intensity_daily",
        )
        run.wait_for(
            lambda: bool(blocked_load(url)),
            "warehouse load blocked after its INSERT",
            timeout=180,
            interval=0.05,
        )
        pid, statement = blocked_load(url)
        assert statement.startswith("UPDATE carbon_data.dim_region"), statement
        run.kill()
    finally:
        lock.__exit__(None, None, None)  # release: the orphaned backend reads EOF and rolls back
    wait_until(
        lambda: not query(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)),
        "end of the killed load's backend",
    )
    after_kill = warehouse_dump(url)
    assert_same_dump(after_kill, before)  # nothing of the killed load, nothing lost
    assert dict(r[:2] for r in after_kill["dim_region"])[1] == OLD_NAME

    # The lake's own API (its emulator has stopped): bronze is complete and fetches nothing.
    api_url = read_lake_source(copied_lake).api_base_url
    rerun = materialize_range(build_resources(str(copied_lake), api_url, url), FIRST, LAST)
    assert rerun.success, step_failures(rerun)
    load = output_metadata(rerun, "carbon_intensity_daily")
    assert (load["inserted"], load["updated"], load["skipped_unchanged"]) == (
        (DAYS - 3) * ROWS_PER_DAY,
        0,
        3 * ROWS_PER_DAY,
    )
    assert_recovered(copied_lake, url, reference)
    FAULT_MATRIX.append(
        FaultRecord(
            "run killed during the warehouse load",
            "SIGKILL to the run while its load transaction, having inserted 4 new days, "
            "waited on a dim_region row lock held by the test (3 days loaded before)",
            "uncommitted rows rolled back, the 3 loaded days untouched; re-run inserted the 4 days "
            "(72 rows), skipped 54 unchanged; warehouse = clean run",
            "0",
        )
    )


# --- PostgreSQL goes away during a load ----------------------------------------------------


@pytest.fixture
def private_embedded_server():
    """An embedded PostgreSQL of this test alone (stopping it disturbs no other test)."""
    data_dir = server_data_dir("carbon-fault-pg-")
    embedded_server(data_dir)
    yield data_dir
    discard_server(data_dir)


def embedded_url_with_password(data_dir: Path) -> tuple[str, str]:
    """A role with a password, a database it owns on the embedded server, and the URL of it
    (with the password in it: the server trusts local connections, but the URL carries it)."""
    suffix = uuid.uuid4().hex[:10]
    role, password, name = f"carbon_pw_{suffix}", f"S3cret-{suffix}", f"carbon_fault_{suffix}"
    admin = psycopg2.connect(embedded_database_url(data_dir, "postgres", driver=None))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", (password,))
            cursor.execute(f"CREATE DATABASE {name} OWNER {role}")
    finally:
        admin.close()
    url = embedded_database_url(data_dir, "postgres")
    url = url.replace("://postgres@", f"://{role}:{password}@").replace("/postgres?", f"/{name}?")
    return url, password


@dataclass
class Outage:
    """A warehouse load that lost its PostgreSQL: what was there before, the failed run."""

    url: str
    password: str
    before: dict[str, list[tuple]]
    failed: object  # the run's ExecuteInProcessResult
    message: str  # the load step's error, with its causes


def lose_postgres_during_a_load(outage: str, data_dir: Path, request) -> Outage:
    """Load FIRST..PRELOADED_LAST, then load FIRST..LAST (in a thread) and, while that load
    waits inside its transaction after its INSERT, stop the embedded server or terminate the
    load's backend on the service. The database URL carries a password."""
    if outage == "embedded server stopped":
        server_dir = request.getfixturevalue("private_embedded_server")
        url, password = embedded_url_with_password(server_dir)
    else:
        role_context = role_with_password()
        url, password = role_context.__enter__()
        request.addfinalizer(lambda: role_context.__exit__(None, None, None))
    resources = build_resources(str(data_dir), closed_port_url(), url)
    before, lock = preload_then_hold_a_region_row(data_dir, url)

    outcome = {}
    load = threading.Thread(
        target=lambda: outcome.setdefault(
            "result", materialize_range(resources, FIRST, LAST, selection=WAREHOUSE)
        ),
        daemon=True,
    )
    try:
        load.start()
        pid, statement = wait_until(
            lambda: blocked_load(url), "warehouse load blocked after its INSERT"
        )
        assert statement.startswith("UPDATE carbon_data.dim_region"), statement
        if outage == "embedded server stopped":
            # Immediate: every backend exits on the signal itself. A fast shutdown lets each
            # backend finish its wait first, and the lock holder, gone first, let the load
            # commit before it stopped (seen once on a busy machine).
            server = embedded_server(server_dir)
            server.run("pg_ctl", "-w", "-D", str(server.pgdata), "-m", "immediate", "stop")
        else:
            query(url, "SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        lock.__exit__(None, None, None)
    load.join(timeout=180)
    assert not load.is_alive(), "the load did not return after PostgreSQL went away"
    if outage == "embedded server stopped":
        embedded_server(server_dir)  # the operator starts PostgreSQL again
    failed = outcome["result"]
    failures = step_failures(failed)
    assert list(failures) == ["carbon_intensity_daily"], failures
    return Outage(url, password, before, failed, failures["carbon_intensity_daily"])


OUTAGES = ["embedded server stopped", "service backend terminated"]
HOW_LOST = {
    "embedded server stopped": "`pg_ctl stop -m immediate` while the load waited "
    "inside its transaction after its INSERT; embedded_server() again afterwards",
    "service backend terminated": "pg_terminate_backend() on the load's backend while it waited "
    "inside its transaction after its INSERT",
}


@pytest.mark.parametrize("outage", OUTAGES)
def test_postgres_lost_during_a_load_fails_and_a_rerun_after_restart_loads_everything(
    outage, reference, copied_lake, request
):
    lost = lose_postgres_during_a_load(outage, copied_lake, request)
    assert not lost.failed.success
    assert "into carbon_data.carbon_intensity_daily failed; the table is unchanged" in lost.message
    every_message = "\n".join(
        f"{event.message} {getattr(event.event_specific_data, 'error', '') or ''}"
        for event in lost.failed.all_events
    )
    assert lost.password not in every_message + lost.message

    after_outage = warehouse_dump(lost.url)
    assert_same_dump(after_outage, lost.before)  # the 3 loaded days intact, nothing half-loaded
    rerun = materialize_range(
        build_resources(str(copied_lake), closed_port_url(), lost.url),
        FIRST,
        LAST,
        selection=WAREHOUSE,
    )
    assert rerun.success, step_failures(rerun)
    assert all(check.passed for check in check_results(rerun).values()), check_results(rerun)
    assert_same_dump(warehouse_dump(lost.url), reference.dump)
    first_line = next(line for line in lost.message.splitlines() if "WarehouseError" in line)
    first_line = first_line.split("caused by: ")[-1].replace(
        "carbon_assets.io_managers.postgres.", ""
    )
    cause = (
        "names the cause"
        if "server closed the connection" in lost.message
        else "does not name the cause"
    )
    FAULT_MATRIX.append(
        FaultRecord(
            f"PostgreSQL lost during a load ({outage})",
            HOW_LOST[outage],
            f'step fails: "{first_line}" (no password; {cause}); the 3 loaded days intact; the '
            "re-run after restart loads the rest, checks pass; warehouse = clean run",
            str(rows_lost(after_outage, lost.before)),
        )
    )


@pytest.mark.parametrize("outage", OUTAGES)
def test_postgres_lost_during_a_load_is_reported_with_its_cause(outage, copied_lake, request):
    lost = lose_postgres_during_a_load(outage, copied_lake, request)
    assert "server closed the connection unexpectedly" in lost.message or (
        "terminating connection due to administrator command" in lost.message
    ), lost.message


# --- the API is down for a whole run -------------------------------------------------------


@pytest.mark.parametrize("down", ["connection refused", "HTTP 500 on every request"])
def test_api_down_for_a_whole_run_fails_naming_the_cause_writes_nothing_and_a_later_run_completes(
    down, tmp_path, reference, service_database_url
):
    data_dir = tmp_path / "data"
    options = {"max_attempts": 2, **FAST_API}
    if down == "connection refused":
        failed = materialize_range(
            build_resources(str(data_dir), closed_port_url(), service_database_url, **options),
            FIRST,
            LAST,
        )
        expected_cause, requests = "connection: ClientConnectorError", None
    else:
        with start_emulator(EmulatorConfig(seed=SEED, rate_500=1.0)) as broken:
            failed = materialize_range(
                build_resources(str(data_dir), broken.base_url, service_database_url, **options),
                FIRST,
                LAST,
            )
            requests = broken.stats()["requests_total"]
        expected_cause = "5xx: HTTP 500: Requested resource not found."
    assert not failed.success
    failures = step_failures(failed)
    # The national endpoint is down too: both bronze assets fail, each naming every day.
    assert set(failures) == {"bronze_carbon_intensity", "bronze_national_intensity"}, failures
    for message in failures.values():
        assert f"{DAYS} day(s) could not be fetched" in message
        for day in DayRange.from_keys(FIRST, LAST).days():
            assert f"{day.isoformat()}: {expected_cause}" in message, message
    if requests is not None:
        assert requests == 4, "one 7-day request per endpoint, each tried max_attempts=2 times"
    assert not list(data_dir.rglob("*.json.gz")) and not leftovers(data_dir)
    assert not (data_dir / "silver").exists() and not (data_dir / "gold").exists()
    assert materialized_assets(failed) == set()
    assert daily_rows(service_database_url) == 0

    with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
        later = materialize_range(
            build_resources(str(data_dir), emulator.base_url, service_database_url), FIRST, LAST
        )
    assert later.success, step_failures(later)
    assert_recovered(data_dir, service_database_url, reference)
    FAULT_MATRIX.append(
        FaultRecord(
            f"API down for a whole run ({down})",
            (
                "CARBON_API base_url = a closed loopback port"
                if down == "connection refused"
                else "emulator with rate_500=1.0"
            )
            + "; max_attempts=2, backoff 0.01 s",
            f'bronze fails listing all {DAYS} days with cause "{expected_cause}"; no file written, '
            "downstream skipped; the next run (API back) completes; warehouse = clean run",
            "0",
        )
    )
