"""Silver and gold on a Spark Connect server: a real local server process, the dagster CLI.

The README's CARBON_SPARK_REMOTE is set to the server (and CARBON_SPARK_MASTER to a master
no local session could use), so the run can only have used the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyspark
import pytest

from carbon_assets.gold.rows import daily_rows
from carbon_assets.lake import read_parquet_table
from carbon_assets.settings import DATA_DIR, SPARK_MASTER, SPARK_REMOTE
from carbon_assets.silver.rows import silver_rows
from carbon_assets.spark import find_java_home
from carbon_assets_tests.helpers import real_periods, write_days

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory) -> Iterator[str]:
    """A Spark Connect server from the pyspark wheel (its own JVM and Python workers)."""
    spark_home = Path(pyspark.__file__).parent
    port = free_port()
    log_path = tmp_path_factory.mktemp("connect") / "server.log"
    env = os.environ | {
        "SPARK_HOME": str(spark_home), "JAVA_HOME": find_java_home(),
        "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1",
    }  # fmt: skip
    command = [
        str(spark_home / "bin" / "spark-submit"), "--class", CONNECT_SERVER, "--master", "local[2]",
        "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.memory=1g",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the Spark Connect server did not start:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)


def test_silver_and_gold_materialize_through_spark_connect(connect_server, tmp_path):
    bronze_paths = write_days(tmp_path, real_periods())  # 2019-08-25 and 2019-08-26
    env = os.environ | {
        DATA_DIR: str(tmp_path), SPARK_REMOTE: connect_server, "DAGSTER_HOME": str(tmp_path),
        # A master no local session could start with: the run can only succeed over Connect.
        SPARK_MASTER: "no-such-master://",
    }  # fmt: skip
    command = [
        str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
        "-m", "carbon_assets.definitions",
        "--select", "silver_carbon_intensity,gold_carbon_intensity_daily",
        "--partition-range", "2019-08-25...2019-08-26",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    silver = [silver_rows(Path(path).read_bytes(), path) for path in bronze_paths]
    expected = (
        pa.concat_tables(daily_rows(day, day.column("date_recorded")[0].as_py()) for day in silver)
        .to_pandas()
        .sort_values(["date_recorded", "regionid"], ignore_index=True)
    )
    gold = read_parquet_table(tmp_path / "gold").sort_values(
        ["date_recorded", "regionid"], ignore_index=True
    )
    assert len(read_parquet_table(tmp_path / "silver")) == 864 and len(gold) == 36
    assert gold[list(expected.columns)].astype(str).equals(expected.astype(str))
