"""The README's CLI backfill with the lake on object storage (a local S3 server, s3_server.py).

A week of every asset, run from nothing twice, once with the lake on local disk and once with
`CARBON_LAKE_URL=s3://BUCKET/lake` and the AWS variables: both succeed, their warehouses are
equal row for row, the bucket holds every layer's files and the S3 run writes no lake file to
the local disk. Then a backfill on S3 killed with SIGKILL while silver is writing, and run
again: every day once in each layer, nothing staged visible to a reader, the checks green.

Each run has a warehouse and a Dagster instance database of its own on the PostgreSQL service
(not the shared `dagster` database the CLI would pick next to CARBON_DATABASE_URL), a data
folder and a DAGSTER_HOME of its own, the emulator as the API.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest

from carbon_assets_tests.postgres_helpers import (
    create_database,
    discard_server,
    drop_database,
    query,
    server_data_dir,
)
from carbon_assets_tests.s3_server import S3Server

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIRST, LAST = "2024-01-01", "2024-01-07"
DAYS = [f"2024-01-{day:02d}" for day in range(1, 8)]
REGIONS, HALF_HOURS = 18, 48
PREFIX = "lake"  # the lake's folder in its bucket
LAKES = ("local", "s3")
TIMEOUT_S = 900
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDLAKEONS3TEST", "AWS_SECRET_ACCESS_KEY": "Lake-s3cret-9f2c"}
# What a load stamps on a row (when, from which fetch): two runs of the same data differ there.
LOAD_COLUMNS = {"loaded_at", "updated_at", "fetched_at", "source_id", "first_seen_at"}
TABLES = ("carbon_intensity_daily", "carbon_intensity_halfhourly", "dim_region")
LAKE_FOLDERS = {"bronze", "silver", "gold", "exports"}
LAKE_SUFFIXES = (".parquet", ".json.gz", ".csv")
STAGED = ".tmp-"  # storage.TEMP_PREFIX: the name of anything staged and not yet published
# Folders of the project no lake file could land in unnoticed by git, and that are large.
NOT_SCANNED = {".venv", ".git", ".ruff_cache", ".pytest_cache", "node_modules", "__pycache__"}


@dataclass
class Stack:
    """One run's world: its environment, data folder, DAGSTER_HOME, databases and bucket."""

    env: dict[str, str]
    data_dir: Path
    home: Path
    warehouse_url: str
    instance_url: str
    s3: S3Server
    bucket: str | None  # None: the lake is on local disk, under data_dir

    @property
    def log(self) -> Path:
        return self.data_dir / "logs" / f"backfill_{FIRST}_{LAST}.log"


@dataclass
class Backfill:
    """What one `carbon-assets backfill FIRST LAST` did."""

    returncode: int
    stdout: str
    screen: str  # stdout and stderr
    log: str
    started: float  # time.time() at its start
    seconds: float

    def failure(self) -> str:
        return f"exit {self.returncode}\n{self.screen}\n--- log ---\n{self.log[-20000:]}"


def backfill_command(first: str = FIRST, last: str = LAST) -> list[str]:
    return [sys.executable, "-m", "carbon_assets.cli", "backfill", first, last]


@contextlib.contextmanager
def new_stack(
    emulator, warehouse_url: str, instance_url: str, s3: S3Server, bucket: str | None
) -> Iterator[Stack]:
    """The environment of a new clone pointed at its own databases (and bucket, for S3)."""
    data_dir = server_data_dir("carbon-test-s3lake-") / "data"
    home = data_dir.parent / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_", "AWS_"))}
    env.pop("VIRTUAL_ENV", None)  # as when started by path (make, .venv/bin/carbon-assets)
    env.update(
        CARBON_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(home),
        CARBON_API_BASE_URL=emulator.base_url,
        CARBON_SPARK_MASTER="local[2]",
        CARBON_DATABASE_URL=warehouse_url,
        # dagster-postgres takes a plain postgresql:// URL.
        DAGSTER_POSTGRES_URL=instance_url.replace("postgresql+psycopg2://", "postgresql://", 1),
    )
    if bucket is not None:
        env |= s3.env | {"CARBON_LAKE_URL": f"s3://{bucket}/{PREFIX}"}
    try:
        yield Stack(env, data_dir, home, warehouse_url, instance_url, s3, bucket)
    finally:
        discard_server(data_dir)  # in case anything started an embedded server there
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def run_backfill(stack: Stack) -> Backfill:
    started = time.time()
    result = subprocess.run(
        backfill_command(),
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    log = stack.log.read_text(errors="replace") if stack.log.exists() else "(no log)"
    screen = result.stdout + result.stderr
    return Backfill(result.returncode, result.stdout, screen, log, started, time.time() - started)


def summary(backfill: Backfill) -> dict[str, str]:
    """The closing summary's counts, by name ("silver rows": "6,048")."""
    return dict(re.findall(r"^  ([a-z -]+?)\s{2,}([0-9,]+)", backfill.stdout, re.MULTILINE))


def assert_a_whole_week(backfill: Backfill) -> None:
    """Exit 0, each layer holding the week, every check passed, as the summary says."""
    assert backfill.returncode == 0, backfill.failure()
    assert "Traceback" not in backfill.screen, backfill.failure()
    rows = summary(backfill)
    assert rows["days in range"] == "7" and rows["bronze complete days"] == "7", backfill.stdout
    assert (
        rows["silver rows"] == rows["warehouse half-hour rows"] == f"{7 * HALF_HOURS * REGIONS:,}"
    )
    assert rows["gold rows"] == rows["warehouse daily rows"] == f"{7 * REGIONS:,}"
    checks = re.search(r"checks\s+(\d+)  \((\d+) passed, (\d+) did not pass\)", backfill.stdout)
    assert checks and checks[1] == checks[2] != "0" and checks[3] == "0", backfill.stdout


def warehouse_rows(url: str, table: str) -> list[tuple]:
    """Every row of carbon_data.`table` without its load stamps, in primary-key order."""
    columns = [
        name
        for (name,) in query(
            url,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'carbon_data' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        if name not in LOAD_COLUMNS
    ]
    assert columns, f"no table carbon_data.{table}"
    order = {
        "carbon_intensity_daily": "regionid, date_recorded",
        "carbon_intensity_halfhourly": "regionid, period_start",
        "dim_region": "regionid",
    }[table]
    listed = ", ".join(columns)
    return query(url, f"SELECT {listed} FROM carbon_data.{table} ORDER BY {order}")


def csv_rows(text: str) -> list[dict[str, str]]:
    """The export's rows without its load stamps."""
    return [
        {name: value for name, value in row.items() if name not in LOAD_COLUMNS}
        for row in csv.DictReader(io.StringIO(text))
    ]


def lake_files_under(folder: Path, since: float | None = None) -> list[str]:
    """Files under `folder` (changed since `since`, if given) that look like a lake's: inside
    a bronze, silver, gold or exports folder, a Parquet, day or CSV file, source.json or a
    staged file."""
    found = []
    for parent, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name not in NOT_SCANNED]
        for name in files:
            path = Path(parent, name)
            relative = path.relative_to(folder)
            if since is not None and path.stat().st_mtime < since:
                continue
            # Inside the project, a "gold" folder is a package (carbon_assets/gold): only the
            # names count there.
            in_lake_folder = since is None and LAKE_FOLDERS & set(relative.parts[:-1])
            lake_name = name.endswith(LAKE_SUFFIXES) or name == "source.json" or STAGED in name
            if in_lake_folder or lake_name:
                found.append(str(relative))
    return sorted(found)


def lake_keys(s3: S3Server, bucket: str) -> list[str]:
    """The bucket's keys under the lake's prefix, relative to it."""
    return [key.removeprefix(f"{PREFIX}/") for key in s3.keys(bucket, f"{PREFIX}/")]


def expected_keys() -> set[str]:
    """The week's files of every layer, and the export."""
    return (
        {f"bronze/2024/{day}.json.gz" for day in DAYS}
        | {
            f"{layer}/date_recorded={day}/part-0.parquet"
            for layer in ("silver", "gold")
            for day in DAYS
        }
        | {"exports/gold_carbon_intensity_daily.csv"}
    )


# --- the same week, on local disk and on S3 -----------------------------------------------------


@pytest.fixture(scope="module")
def backfills(emulator, s3_server):
    """{"local": (stack, backfill), "s3": (stack, backfill)}: the week run once on each lake,
    one after the other (two cores), each from nothing."""
    results: dict[str, tuple[Stack, Backfill]] = {}
    with contextlib.ExitStack() as cleanup:
        for lake in LAKES:
            warehouse_name, warehouse_url = create_database("service", None)
            cleanup.callback(drop_database, "service", None, warehouse_name)
            instance_name, instance_url = create_database("service", None)
            cleanup.callback(drop_database, "service", None, instance_name)
            bucket = s3_server.create_bucket("lake") if lake == "s3" else None
            if bucket:
                cleanup.callback(s3_server.delete_bucket, bucket)
            stack = cleanup.enter_context(
                new_stack(emulator, warehouse_url, instance_url, s3_server, bucket)
            )
            if bucket:
                # moto takes any keys: these are distinctive, to be looked for where they must
                # not be.
                stack.env |= CREDENTIALS
            results[lake] = stack, run_backfill(stack)
            print(f"{lake} backfill {FIRST}...{LAST}: {results[lake][1].seconds:.1f}s")
        yield results


@pytest.mark.parametrize("lake", LAKES)
def test_the_week_backfills_with_every_check_passed(backfills, lake):
    _, backfill = backfills[lake]
    assert_a_whole_week(backfill)
    assert backfill.log.count(" - RUN_START - ") == 1  # the range and then the models, one run


def test_the_lake_shown_is_the_bucket_and_no_credential_is(backfills):
    stack, backfill = backfills["s3"]
    assert f"Lake:           s3://{stack.bucket}/{PREFIX}" in backfill.stdout, backfill.stdout
    for name, value in CREDENTIALS.items():
        assert value not in backfill.screen + backfill.log, name
        # Dagster's instance: the runs (config, tags) and every event with its metadata.
        for table, column in (("runs", "run_body"), ("event_logs", "event")):
            found = query(
                stack.instance_url,
                f"SELECT count(*) FROM {table} WHERE {column} LIKE %s",
                (f"%{value}%",),
            )
            assert found == [(0,)], (name, table)


@pytest.mark.parametrize("table", TABLES)
def test_the_warehouses_are_equal_row_for_row(backfills, table):
    local = warehouse_rows(backfills["local"][0].warehouse_url, table)
    on_s3 = warehouse_rows(backfills["s3"][0].warehouse_url, table)
    expected = {
        "carbon_intensity_daily": 7 * REGIONS,
        "carbon_intensity_halfhourly": 7 * HALF_HOURS * REGIONS,
        "dim_region": REGIONS,
    }[table]
    assert len(local) == expected, (table, len(local))
    differing = [(a, b) for a, b in zip(local, on_s3, strict=False) if a != b]
    assert len(on_s3) == len(local) and not differing, (
        f"{table}: {len(local)} rows on local disk, {len(on_s3)} on S3, "
        f"{len(differing)} differ; first: {differing[:1]}"
    )


def test_the_bucket_holds_every_layer(backfills):
    stack, _ = backfills["s3"]
    keys = lake_keys(stack.s3, stack.bucket)
    assert expected_keys() <= set(keys), sorted(expected_keys() - set(keys))
    assert "source.json" in keys
    assert not [key for key in keys if STAGED in key], keys  # a finished run leaves no staged file
    fs = stack.s3.filesystem()
    for layer, rows in (("silver", HALF_HOURS * REGIONS), ("gold", REGIONS)):
        for day in DAYS:
            with fs.open(
                f"{stack.bucket}/{PREFIX}/{layer}/date_recorded={day}/part-0.parquet"
            ) as f:
                assert pq.ParquetFile(f).metadata.num_rows == rows, (layer, day)


def test_the_export_is_the_same_on_both_lakes(backfills):
    local_stack, _ = backfills["local"]
    s3_stack, _ = backfills["s3"]
    local = (local_stack.data_dir / "exports" / "gold_carbon_intensity_daily.csv").read_text()
    key = f"{s3_stack.bucket}/{PREFIX}/exports/gold_carbon_intensity_daily.csv"
    on_s3 = s3_stack.s3.filesystem().cat(key).decode()
    assert len(csv_rows(local)) == 7 * REGIONS
    assert csv_rows(on_s3) == csv_rows(local)


def test_with_the_lake_on_s3_no_lake_file_is_written_to_local_disk(backfills):
    local_stack, _ = backfills["local"]
    stack, backfill = backfills["s3"]
    # The same scan finds the local run's lake, so finding nothing below means something.
    assert {"bronze", "silver", "gold", "exports"} <= {
        Path(found).parts[0] for found in lake_files_under(local_stack.data_dir)
    }
    assert lake_files_under(stack.data_dir) == [], sorted(stack.data_dir.rglob("*"))
    assert lake_files_under(stack.home) == []
    # The working directory (the project folder): nothing new with a lake file's name, and no
    # folder made from the URL taken for a path ("s3:/bucket/lake").
    assert lake_files_under(REPO, since=backfill.started) == []
    assert not (REPO / "s3:").exists() and not (REPO / "data" / "bronze").exists()


# --- killed in the middle of silver, then run again ---------------------------------------------


@pytest.fixture
def s3_stack(emulator, s3_server, s3_lake):
    """A fresh stack with the lake in a fresh bucket (s3_lake)."""
    warehouse_name, warehouse_url = create_database("service", None)
    instance_name, instance_url = create_database("service", None)
    try:
        bucket = urlsplit(s3_lake).netloc
        with new_stack(emulator, warehouse_url, instance_url, s3_server, bucket) as stack:
            yield stack
    finally:
        drop_database("service", None, warehouse_name)
        drop_database("service", None, instance_name)


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def processes_of(stack: Stack) -> list[int]:
    """Pids of the processes that carry this stack's DAGSTER_HOME in their environment."""
    marker = f"DAGSTER_HOME={stack.home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
    return pids


def kill_in_silver(stack: Stack, s3: S3Server) -> dict:
    """Start the backfill and SIGKILL its whole process group as soon as silver has staged a
    day file (staged files are published together once every day is staged, so this is the
    middle of silver's write). What was seen."""
    silver_start = re.compile(r"^\s+[0-9.]+s  silver_carbon_intensity \.\.\.$")
    silver_end = re.compile(r"^\s+[0-9.]+s  silver_carbon_intensity (done|failed)")
    process = subprocess.Popen(
        backfill_command(),
        cwd=REPO,
        env=stack.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    in_silver_since = None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while True:
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                line = ""
            if line is None:
                pytest.fail("the backfill ended before silver was killed:\n" + "".join(seen))
            seen.append(line)
            if silver_end.match(line):
                pytest.fail("silver ended before it could be killed:\n" + "".join(seen))
            if in_silver_since is None and silver_start.match(line):
                in_silver_since = time.monotonic()
            if in_silver_since is not None:
                staged = [
                    key for key in s3.keys(stack.bucket, f"{PREFIX}/silver/") if STAGED in key
                ]
                if staged:
                    break
            assert time.monotonic() < deadline, "silver never started:\n" + "".join(seen)
        seconds_in_silver = time.monotonic() - in_silver_since
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        time.sleep(1)  # the group's processes are gone once the kernel has reaped them
        survivors = processes_of(stack)
        return {
            "staged": staged,
            "seconds in silver": seconds_in_silver,
            "screen": "".join(seen),
            "survivors": survivors,
        }
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in processes_of(stack):  # anything of this run that left the process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_backfill_killed_in_silver_runs_again_to_a_whole_week(s3_stack):
    stack, s3 = s3_stack, s3_stack.s3
    killed = kill_in_silver(stack, s3)
    assert killed["survivors"] == [], f"still running after the group's SIGKILL: {killed}"
    after_kill = lake_keys(s3, stack.bucket)
    published = [key for key in after_kill if key.startswith("silver/") and STAGED not in key]
    # Killed while silver wrote: some day staged, and not every day published.
    assert killed["staged"] and len(published) < len(DAYS), (after_kill, killed["screen"])
    print(
        f"killed {killed['seconds in silver']:.1f}s into silver, {len(killed['staged'])} staged"
        f" and {len(published)} published silver objects"
    )

    again = run_backfill(stack)
    assert_a_whole_week(again)
    assert again.log.count(" - RUN_START - ") == 1
    steps = re.findall(r"^\s+[0-9.]+s  \S+ done in \S+$", again.stdout, re.MULTILINE)
    print(f"re-run: {again.seconds:.1f}s; runs: {query(stack.instance_url, RUN_STATUSES)}")
    print("\n".join(steps))

    keys = lake_keys(s3, stack.bucket)
    assert expected_keys() <= set(keys), sorted(expected_keys() - set(keys))
    print(f"staged objects left after the re-run: {[key for key in keys if STAGED in key]}")
    for layer in ("silver", "gold"):
        in_layer = [key for key in keys if key.startswith(f"{layer}/")]
        day_files = [f"{layer}/date_recorded={day}/part-0.parquet" for day in DAYS]
        # Anything else in the layer is staged, under a name no reader lists.
        assert [key for key in in_layer if key not in day_files and STAGED not in key] == []
        # What a reader lists (the README's `date_recorded=*/part-0.parquet`): each day once.
        listed = s3.filesystem().glob(
            f"{stack.bucket}/{PREFIX}/{layer}/date_recorded=*/part-0.parquet"
        )
        assert sorted(path.split(f"/{PREFIX}/", 1)[1] for path in listed) == day_files
        for day in DAYS:
            with s3.filesystem().open(
                f"{stack.bucket}/{PREFIX}/{layer}/date_recorded={day}/part-0.parquet"
            ) as f:
                rows = pq.read_table(f).num_rows
            assert rows == (HALF_HOURS * REGIONS if layer == "silver" else REGIONS), (layer, day)

    for table, key, per_day in (
        ("carbon_intensity_daily", "regionid, date_recorded", REGIONS),
        ("carbon_intensity_halfhourly", "regionid, period_start", HALF_HOURS * REGIONS),
    ):
        counts = query(
            stack.warehouse_url,
            f"SELECT count(*), count(DISTINCT ({key})), count(DISTINCT date_recorded),"
            f" min(date_recorded)::text, max(date_recorded)::text FROM carbon_data.{table}",
        )
        assert counts == [(7 * per_day, 7 * per_day, 7, FIRST, LAST)], (table, counts)


RUN_STATUSES = "SELECT status, count(*) FROM runs GROUP BY status ORDER BY status"


# --- two overlapping backfills of one S3 lake, as from two machines ----------------------------

MONTH = ("2024-01-01", "2024-01-31")
# Regional: 3 requests of up to 13 days; national: 3 of up to 14.
MONTH_REQUESTS = 3 + 3


def test_two_overlapping_backfills_of_one_s3_lake_take_turns_at_the_api(s3_server, s3_lake):
    """Two `carbon-assets backfill` runs of one month into one bucket at once, each with a
    Dagster instance, data folder and DAGSTER_HOME of its own (two machines sharing only the
    warehouse and the lake), against a slow API: the warehouse's advisory lock lets one run
    fetch at a time, the other waits, then finds every day stored and fetches none."""
    from carbon_assets.emulator import EmulatorConfig, start_emulator

    bucket = urlsplit(s3_lake).netloc
    warehouse_name, warehouse_url = create_database("service", None)
    instances = [create_database("service", None) for _ in range(2)]
    try:
        # Each request takes longer than a run's start varies by, so the runs meet at the lock.
        config = EmulatorConfig(seed=7, latency_min=6.0, latency_max=8.0)
        with start_emulator(config) as emulator, contextlib.ExitStack() as stacks:
            runs = []
            for _, instance_url in instances:
                stack = stacks.enter_context(
                    new_stack(emulator, warehouse_url, instance_url, s3_server, bucket)
                )
                stack.env["CARBON_API_MAX_CONCURRENCY"] = "1"
                log = stack.data_dir.parent / "screen.log"
                output = stacks.enter_context(log.open("w"))
                process = subprocess.Popen(
                    backfill_command(*MONTH),
                    cwd=REPO,
                    env=stack.env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
                runs.append((stack, process, log))
            exits = [process.wait(timeout=TIMEOUT_S) for _, process, _ in runs]
            served = emulator.stats()
            logs = []
            for stack, _, screen in runs:
                run_log = stack.data_dir / "logs" / f"backfill_{MONTH[0]}_{MONTH[1]}.log"
                logs.append(screen.read_text() + (run_log.read_text() if run_log.exists() else ""))
        daily = query(
            warehouse_url,
            "SELECT count(*), count(DISTINCT date_recorded)"
            " FROM carbon_data.carbon_intensity_daily",
        )
    finally:
        drop_database("service", None, warehouse_name)
        for name, _ in instances:
            drop_database("service", None, name)
    assert exits == [0, 0], "\n\n".join(text[-20000:] for text in logs)
    assert served["peak_in_flight"] <= 1, "both runs were at the API at once"
    assert set(served["by_path"].values()) == {1}, f"a window was fetched twice: {served}"
    assert served["requests_total"] == MONTH_REQUESTS, served
    waited = [text for text in logs if f"Waiting for the lake's API lock (s3://{bucket}/" in text]
    assert len(waited) == 1, "no run (or both) waited for the other's lock"
    assert "fetching 0" in waited[0], waited[0][-5000:]
    assert daily == [(31 * REGIONS, 31)]
