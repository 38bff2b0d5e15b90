"""A run worker that shares nothing with the webserver's side but the databases and the lake.

Two folders stand for two machines. The "container" (A) is the working directory and HOME of
a code server, `dagster api grpc -m carbon_assets.definitions`, whose environment alone says
where the lake (`CARBON_LAKE_URL=s3://...` on the local S3 server), the warehouse
(`CARBON_DATABASE_URL`), the API and Spark are. The "webserver side" (B) has a working
directory, HOME and DAGSTER_HOME of its own, the project's dagster.yaml (instance on
PostgreSQL) with the default run coordinator (no daemon) and no compute logs on its disk, a
workspace.yaml naming the code server by host and port, and none of the project's variables.

`dagster job launch` in B submits one run of every asset over three days; the default run
launcher hands it to the code server over gRPC, which starts the run worker as its own child,
in A's folder and environment. The test watches the code server's children while the run goes
on, and then checks: the run succeeded, the process the run reports as its own ran in A with
A's HOME, the warehouse holds the three days, the bucket holds every layer's objects, and no
lake file is on the disk of either side.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus

from carbon_assets.automation import daily_refresh_job, range_tags
from carbon_assets.cli.dagster_commands import QUIET_WARNINGS
from carbon_assets_tests.postgres_helpers import create_database, drop_database, query
from carbon_assets_tests.s3_server import S3Server

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIRST, LAST = "2024-01-01", "2024-01-03"
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]
REGIONS, HALF_HOURS = 18, 48
HOST = "127.0.0.1"
LOCATION = "carbon_assets"
PREFIX = "lake"  # the lake's folder in its bucket
# The job of the daily layers (Dagster's own __ASSET_JOB now holds the unpartitioned dbt models).
DAILY_JOB = daily_refresh_job.name
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 420
STOP_TIMEOUT_S = 15
SAMPLE_EVERY_S = 0.2
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
LAKE_FOLDERS = {"bronze", "silver", "gold", "exports"}
LAKE_SUFFIXES = (".parquet", ".json.gz", ".csv")
STAGED = ".tmp-"  # storage.TEMP_PREFIX: the name of anything staged and not yet published
# The run worker reports its process id in this engine event (dagster's run subprocess).
STARTED_PROCESS = re.compile(r"Started process for run \(pid: (\d+)\)")


@dataclass
class Side:
    """One side's folder, used as working directory and HOME, and its environment."""

    folder: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Seen:
    """A process under the code server as sampled while it ran."""

    parent: int
    cwd: str
    home: str | None
    dagster_home: str | None


def bare_environment(folder: Path) -> dict[str, str]:
    """This environment without the project's, Dagster's or the store's variables, with
    `folder` as HOME and temporary folder: what a machine of its own would start from."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CARBON_", "DAGSTER_", "AWS_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return env | {"HOME": str(folder), "TMPDIR": str(folder / "tmp")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def instance_yaml() -> dict:
    """The project's dagster.yaml for B (its storages on PostgreSQL at $DAGSTER_POSTGRES_URL)
    with the run coordinator that launches at once, so no daemon is needed, and no compute
    logs, which the run worker would write to B's DAGSTER_HOME, a folder of another machine."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[storage]["config"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    # Dagster's default is the queued one, whose runs wait for the daemon.
    config["run_coordinator"] = {
        "module": "dagster.core.run_coordinator",
        "class": "DefaultRunCoordinator",
    }
    assert "run_launcher" not in config  # the default: through the code server's gRPC API
    config["compute_logs"] = {
        "module": "dagster.core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
    return config


def container_side(folder: Path, lake: dict[str, str], warehouse_url: str, api: str) -> Side:
    """A: the code server's folder and environment, the only place the lake, the warehouse,
    the API and Spark are named. No DAGSTER_HOME: the run worker's instance is B's, which
    the launcher sends with the run, its `env:` values read here (DAGSTER_POSTGRES_URL)."""
    env = bare_environment(folder) | lake
    env.update(
        CARBON_DATABASE_URL=warehouse_url,
        CARBON_API_BASE_URL=api,
        CARBON_SPARK_MASTER="local[2]",
        CARBON_DATA_DIR=str(folder / "data"),
        PYTHONWARNINGS=",".join(QUIET_WARNINGS),
    )
    return Side(folder, env)


def webserver_side(folder: Path, port: int) -> Side:
    """B: a DAGSTER_HOME with the instance's dagster.yaml and a workspace.yaml that names the
    code server by host and port; none of the project's variables."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml()))
    server = {"grpc_server": {"host": HOST, "port": port, "location_name": LOCATION}}
    (folder / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [server]}))
    env = bare_environment(folder)
    env.update(DAGSTER_HOME=str(home), PYTHONWARNINGS=",".join(QUIET_WARNINGS))
    return Side(folder, env)


def code_server_command(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "dagster", "api", "grpc", "-m", "carbon_assets.definitions"),
        *("-h", HOST, "-p", str(port), "--location-name", LOCATION),
    ]


def launch_command(run_id: str) -> list[str]:
    """One run of every daily asset over FIRST..LAST (a single-run backfill's tags), from B."""
    return [
        *(sys.executable, "-m", "dagster", "job", "launch", "-w", "workspace.yaml"),
        *("-j", DAILY_JOB, "--run-id", run_id, "--tags", json.dumps(range_tags(FIRST, LAST))),
    ]


@contextlib.contextmanager
def process_group(command: list[str], side: Side, log: Path) -> Iterator[subprocess.Popen]:
    """`command` started in a session of its own in `side`, its output to `log`; the whole
    group (the run worker and Spark's JVM included) terminated, then killed, on exit."""
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=side.folder,
            env=side.env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to `process`'s group, SIGKILL to whatever of it is left after a while."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and group_alive(process.pid):
        process.poll()  # reaps the leader, so its zombie does not count as alive
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(
        proc.info["status"] != psutil.STATUS_ZOMBIE
        for proc in psutil.process_iter(["status"])
        if _pgid(proc) == pgid
    )


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None


def wait_for_code_server(process: subprocess.Popen, log: Path, port: int) -> None:
    """Until the code server says it serves on `port` (it loads the definitions first)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    started = re.compile(rf"Started Dagster code server .* on port {port}\b")
    while not started.search(log.read_text(errors="replace")):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the code server did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


class Watcher(threading.Thread):
    """Samples the code server's descendants until stopped: each one's parent, working
    directory, HOME and DAGSTER_HOME, as first seen."""

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server = psutil.Process(server_pid)
        self.seen: dict[int, Seen] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_EVERY_S):
            with contextlib.suppress(psutil.Error):
                for child in self.server.children(recursive=True):
                    if child.pid not in self.seen:
                        with contextlib.suppress(psutil.Error):
                            environ = child.environ()
                            self.seen[child.pid] = Seen(
                                child.ppid(),
                                child.cwd(),
                                environ.get("HOME"),
                                environ.get("DAGSTER_HOME"),
                            )

    def stop(self) -> None:
        self.halt.set()
        self.join()


def wait_for_run(instance: DagsterInstance, run_id: str, launched: Path):
    """The run once it has ended; fails with what the launch printed if it never appears or
    does not end in time."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in ENDED:
            return run
        time.sleep(1)
    status = run.status.value if run is not None else "not in the instance"
    pytest.fail(
        f"run {run_id} did not end in {RUN_TIMEOUT_S}s ({status}):\n{launched.read_text()}\n"
        f"--- the run's events ---\n{run_story(instance, run_id)}"
    )


def run_story(instance: DagsterInstance, run_id: str) -> str:
    """The run's event log messages, with the errors they carry, for a failure message."""
    lines = []
    for entry in instance.all_logs(run_id):
        lines.append(entry.message or "")
        error = getattr(getattr(entry.dagster_event, "event_specific_data", None), "error", None)
        if error is not None:
            lines.append(error.to_string())
    return "\n".join(lines)[-20000:]


def files_under(folder: Path) -> list[str]:
    """Every file under `folder`, relative to it, sorted."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def lake_files_under(folder: Path) -> list[str]:
    """Files under `folder` that look like a lake's: inside a bronze, silver, gold or exports
    folder, a Parquet, day or CSV file, source.json or a staged file."""
    found = []
    for parent, _, files in os.walk(folder):
        for name in files:
            relative = Path(parent, name).relative_to(folder)
            in_lake_folder = LAKE_FOLDERS & set(relative.parts[:-1])
            lake_name = name.endswith(LAKE_SUFFIXES) or name == "source.json" or STAGED in name
            if in_lake_folder or lake_name:
                found.append(str(relative))
    return sorted(found)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """(warehouse URL, instance URL): two scratch databases on the PostgreSQL service."""
    warehouse_name, warehouse_url = create_database("service", None)
    try:
        instance_name, instance_url = create_database("service", None)
        try:
            yield warehouse_url, instance_url
        finally:
            drop_database("service", None, instance_name)
    finally:
        drop_database("service", None, warehouse_name)


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    name = s3_server.create_bucket("run-worker-elsewhere")
    yield name
    s3_server.delete_bucket(name)


@pytest.mark.timeout(RUN_TIMEOUT_S + 2 * START_TIMEOUT_S)
def test_a_run_worker_in_another_folder_materializes_a_range_on_s3_and_postgres(
    emulator,
    s3_server,
    bucket,
    databases,
    tmp_path,
    monkeypatch,
):
    warehouse_url, instance_url = databases
    port = free_port()
    lake = s3_server.env | {"CARBON_LAKE_URL": f"s3://{bucket}/{PREFIX}"}
    container = container_side(tmp_path / "container", lake, warehouse_url, emulator.base_url)
    webserver = webserver_side(tmp_path / "webserver", port)
    home = webserver.folder / "dagster_home"
    # The instance's database, the one thing both sides (and this process, which reads the
    # run from B's instance) know besides the lake; dagster-postgres takes postgresql://.
    instance_env = {
        "DAGSTER_POSTGRES_URL": instance_url.replace("postgresql+psycopg2://", "postgresql://")
    }
    container.env |= instance_env
    webserver.env |= instance_env
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", instance_env["DAGSTER_POSTGRES_URL"])
    server_log, launch_log = tmp_path / "code_server.log", tmp_path / "launch.log"
    run_id = str(uuid.uuid4())

    started = time.monotonic()
    with process_group(code_server_command(port), container, server_log) as server:
        wait_for_code_server(server, server_log, port)
        served = time.monotonic()
        watcher = Watcher(server.pid)
        watcher.start()
        instance = DagsterInstance.from_config(str(home))
        try:
            with process_group(launch_command(run_id), webserver, launch_log) as launch:
                assert launch.wait(timeout=START_TIMEOUT_S) == 0, launch_log.read_text()
            run = wait_for_run(instance, run_id, launch_log)
            ran = time.monotonic()
            story = run_story(instance, run_id)
        finally:
            watcher.stop()
            instance.dispose()
        assert run.status == DagsterRunStatus.SUCCESS, (
            f"{story}\n--- code server ---\n{server_log.read_text(errors='replace')[-20000:]}"
        )
        server_pid = server.pid
    print(
        f"code server up in {served - started:.1f}s, run in {ran - served:.1f}s "
        f"(launch included), {time.monotonic() - started:.1f}s in all"
    )

    # The run worker: the process the run reports as its own, a child of the code server,
    # in A's folder with A's HOME, and no DAGSTER_HOME (B's is not on its machine).
    pids = [int(pid) for pid in STARTED_PROCESS.findall(story)]
    assert len(pids) == 1, story
    worker = watcher.seen.get(pids[0])
    assert worker is not None, f"pid {pids[0]} never seen among {watcher.seen}"
    print(f"run worker {pids[0]}, one of the code server's {len(watcher.seen)} descendants")
    assert worker == Seen(server_pid, str(container.folder), str(container.folder), None)
    assert run.tags["dagster/asset_partition_range_start"] == FIRST
    assert run.tags["dagster/asset_partition_range_end"] == LAST

    daily = query(warehouse_url, "SELECT count(*) FROM carbon_data.carbon_intensity_daily")
    halfhourly = query(
        warehouse_url, "SELECT count(*) FROM carbon_data.carbon_intensity_halfhourly"
    )
    assert daily == [(len(DAYS) * REGIONS,)]
    assert halfhourly == [(len(DAYS) * HALF_HOURS * REGIONS,)]

    keys = {key.removeprefix(f"{PREFIX}/") for key in s3_server.keys(bucket, f"{PREFIX}/")}
    layers = {f"bronze/2024/{day}.json.gz" for day in DAYS}
    layers |= {
        f"{layer}/date_recorded={day}/part-0.parquet"
        for layer in ("silver", "gold")
        for day in DAYS
    }
    layers |= {"exports/gold_carbon_intensity_daily.csv", "source.json"}
    assert layers <= keys, sorted(layers - keys)
    assert not [key for key in keys if STAGED in key], sorted(keys)

    assert lake_files_under(container.folder) == []
    # Nor anything else on B's side: the run worker wrote nothing there.
    assert files_under(webserver.folder) == ["dagster_home/dagster.yaml", "workspace.yaml"]
