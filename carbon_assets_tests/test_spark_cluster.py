"""The README's backfill on a standalone Spark cluster that shares no filesystem with the driver.

A real cluster from the pyspark wheel (spark_cluster.py): a master and a worker process on
127.0.0.1, the worker in a folder of its own and, run as root, as the user `nobody`, who
cannot enter the driver's data folder (mkdtemp's 0700, owned by root) nor DAGSTER_HOME. The
lake is on the local S3 server, the warehouse on the PostgreSQL service. So silver and gold
can only have worked if the executors' Python workers read bronze and wrote Parquet through
the lake on S3, and the run can only have used the cluster: its executor's log holds the tasks.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_assets_tests.postgres_helpers import (
    create_database,
    drop_database,
    query,
    server_data_dir,
)
from carbon_assets_tests.s3_server import s3_lake, s3_server  # noqa: F401 (fixtures)
from carbon_assets_tests.spark_cluster import (  # noqa: F401 (the fixture)
    spark_cluster,
    worker_environment,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIRST, LAST = "2024-01-01", "2024-01-03"
DAYS, REGIONS, HALF_HOURS = 3, 18, 48
# What a lake holds, whichever layer wrote it.
LAKE_FILES = ("*.json.gz", "*.parquet", "*.csv", "source.json")
# The driver's own address for the executors to call back: loopback, not the machine's.
CLUSTER_SPARK_CONF = "spark.driver.host=127.0.0.1; spark.driver.bindAddress=127.0.0.1"


@pytest.fixture
def driver_data_dir() -> Iterator[Path]:
    """The CLI's CARBON_DATA_DIR, in a fresh 0700 folder of root's (as mkdtemp makes it)."""
    data_dir = server_data_dir("carbon-test-cluster-") / "data"
    data_dir.mkdir()
    yield data_dir
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def instance_database_url() -> Iterator[str]:
    """Dagster's instance in a scratch database of the service too, not its `dagster` one."""
    name, url = create_database("service", None)
    yield url.replace("+psycopg2", "")
    drop_database("service", None, name)


def lake_files(folder: Path) -> list[Path]:
    return sorted(path for pattern in LAKE_FILES for path in folder.rglob(pattern))


def test_backfill_runs_silver_and_gold_on_the_clusters_executor_with_the_lake_on_s3(
    spark_cluster, s3_lake, s3_server,  # noqa: F811 (the fixtures imported above)
    emulator, service_database_url, instance_database_url, driver_data_dir, tmp_path,
):  # fmt: skip
    cluster = spark_cluster
    private = driver_data_dir.parent
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and private.stat().st_uid == os.geteuid()
    if cluster.user is not None:
        # The worker's user cannot even look into the driver's data folder.
        denied = cluster.run_as_worker(["ls", str(driver_data_dir)])
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    env = worker_environment(s3_server.env) | {
        "CARBON_DATA_DIR": str(driver_data_dir),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "CARBON_API_BASE_URL": emulator.base_url,
        "CARBON_DATABASE_URL": service_database_url,
        "DAGSTER_POSTGRES_URL": instance_database_url,
        "CARBON_LAKE_URL": s3_lake,
        "CARBON_SPARK_MASTER": cluster.url,
        "CARBON_SPARK_CONF": CLUSTER_SPARK_CONF,
        # The interpreter the executors start their Python workers with (the driver names it).
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    env.pop("VIRTUAL_ENV", None)  # as when started by path (make, .venv/bin/carbon-assets)
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "carbon_assets.cli", "backfill", FIRST, LAST],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    screen = result.stdout + result.stderr
    log = driver_data_dir / "logs" / f"backfill_{FIRST}_{LAST}.log"
    assert result.returncode == 0, screen + (log.read_text() if log.exists() else "")
    assert re.search(r"checks\s+(\d+)  \(\1 passed, 0 did not pass\)", result.stdout), screen

    daily = query(service_database_url, "SELECT count(*) FROM carbon_data.carbon_intensity_daily")
    halfhourly = query(
        service_database_url, "SELECT count(*) FROM carbon_data.carbon_intensity_halfhourly"
    )
    assert daily == [(DAYS * REGIONS,)]
    assert halfhourly == [(DAYS * HALF_HOURS * REGIONS,)]

    # The work happened on the cluster: the run was its application, and its executor (in the
    # worker's folder, as the worker's user) ran Python tasks, and never named the driver's folder.
    assert {app["name"] for app in cluster.applications()} == {"carbon-assets"}, screen
    executor_logs = cluster.executor_logs()
    assert executor_logs, f"no executor ran in {cluster.work_dir}"
    text = "\n".join(executor_logs.values())
    # Silver's stage and gold's: each day's file read and written by the executor's Python.
    stages = set(re.findall(r"Finished task \S+ in stage (\d+)\.", text))
    assert len(stages) >= 2 and "Starting Python task execution" in text, text[-3000:]
    assert str(private) not in text and "Traceback" not in text, text[-3000:]
    if cluster.user is not None:
        assert {path.parent.owner() for path in executor_logs} == {cluster.user}

    # The lake is in the bucket, every layer of it, and nowhere on the local disk.
    bucket, _, prefix = s3_lake.removeprefix("s3://").partition("/")
    keys = s3_server.keys(bucket, f"{prefix}/")
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert f"{prefix}/bronze/2024/{day}.json.gz" in keys, keys
        for layer in ("silver", "gold"):
            assert f"{prefix}/{layer}/date_recorded={day}/part-0.parquet" in keys, keys
    for folder in (driver_data_dir, tmp_path, cluster.work_dir):
        assert lake_files(folder) == [], folder
    # Nor where a relative default would have put it (the CLI runs in the repository).
    assert [path for path in lake_files(REPO / "data") if path.stat().st_mtime >= started] == []
