"""Spark's secrets stay secret: read when a run starts, masked wherever they are shown.

The main test loads the definitions in a real `dagster dev` on a PostgreSQL instance with a
secret in CARBON_SPARK_CONF, runs silver (which starts Spark) through GraphQL, then looks for
the secret in every GraphQL answer, every row of the instance database (its compressed
snapshots opened) and every log file: it must be nowhere, while the masked settings line is.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from pathlib import Path

import psycopg2
import pytest

from carbon_assets import settings
from carbon_assets.spark import (
    SparkResource,
    hide_secret_values,
    mask_connect_url,
    masked_spark_config,
)
from carbon_assets_tests.helpers import real_periods, write_days
from carbon_assets_tests.ui.dagster_dev import REPO_ROOT, DagsterDev

SECRET = "S3cr3t-xyz"
SILVER = "silver_carbon_intensity"


# --- masking, no Spark ---------------------------------------------------------------------


def test_the_definitions_hold_no_spark_setting_of_the_environment(monkeypatch):
    monkeypatch.setenv(settings.SPARK_CONF, f"spark.authenticate.secret={SECRET}")
    monkeypatch.setenv(settings.SPARK_REMOTE, "sc://spark:15002/;token=tok-123")
    resource = SparkResource()
    assert resource.spark_config == {}
    assert SECRET not in json.dumps(resource.model_dump())
    # ...and a run reads them when it starts.
    config = resource.session_config
    assert config["spark.authenticate.secret"] == SECRET
    assert config["spark.remote"] == "sc://spark:15002/;token=tok-123"
    assert "spark.master" not in config


def test_run_config_settings_go_on_top_of_the_environments(monkeypatch):
    monkeypatch.setenv(settings.SPARK_CONF, "spark.sql.shuffle.partitions=64")
    resource = SparkResource(spark_config={"spark.sql.shuffle.partitions": "3"})
    assert resource.session_config["spark.sql.shuffle.partitions"] == "3"
    remote = SparkResource(spark_config={"spark.remote": "sc://elsewhere:15002"})
    assert "spark.master" not in remote.session_config


@pytest.mark.parametrize(
    "key",
    [
        "spark.authenticate.secret",
        "spark.hadoop.fs.s3a.secret.key",
        "spark.hadoop.fs.s3a.access.key",
        "spark.ssl.keyPassword",
        "spark.hadoop.fs.s3a.session.token",
        "spark.hadoop.google.cloud.auth.service.account.json.credentials",
        "SPARK.SOMETHING.PASSWORD",
    ],
)
def test_settings_named_like_secrets_are_masked(key):
    assert masked_spark_config({key: SECRET}) == {key: "***"}


def test_other_settings_are_shown_as_they_are_but_a_password_in_a_url_is_not():
    shown = masked_spark_config(
        {
            "spark.master": "local[*]",
            "spark.sql.shuffle.partitions": "8",
            "spark.eventLog.dir": f"s3a://user:{SECRET}@bucket/events",
        }
    )
    assert shown == {
        "spark.master": "local[*]",
        "spark.sql.shuffle.partitions": "8",
        "spark.eventLog.dir": "s3a://user:***@bucket/events",
    }


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("sc://spark:15002", "sc://spark:15002"),
        ("sc://spark:15002/;token=abc", "sc://spark:15002/;token=***"),
        ("sc://spark:15002/;user_id=me;token=abc;", "sc://spark:15002/;user_id=***;token=***"),
        ("sc://spark:15002/;use_ssl=true", "sc://spark:15002/;use_ssl=***"),
    ],
)
def test_every_parameter_of_a_connect_url_is_masked(url, masked):
    assert mask_connect_url(url) == masked
    assert masked_spark_config({"spark.remote": url}) == {"spark.remote": masked}


def test_an_error_naming_a_secret_value_is_masked_and_other_words_are_kept():
    config = {
        "spark.authenticate.secret": SECRET,
        "spark.remote": "sc://spark:15002/;token=tok-123;user_id=u",
    }
    text = f"failed with {SECRET} and tok-123 for user u (unused)"
    assert hide_secret_values(text, config) == "failed with *** and *** for user *** (unused)"


# --- a real dagster dev, a real run, a real instance database --------------------------------

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RESOURCES = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results { name configuredValues { key value type } }
    }
  }
}"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status runConfigYaml tags { key value } }
  }
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message level stepKey }
        ... on ErrorEvent { error { message stack cause { message stack } } }
      }
    }
  }
}"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"


def every_row_of(database_url: str) -> list[str]:
    """Every row of every table of the database, as JSON text, and every binary value
    decompressed (Dagster stores job and execution-plan snapshots zlib-compressed)."""
    texts: list[str] = []
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        tables = cursor.fetchall()
        for schema, table in tables:
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t')
            texts.extend(row for (row,) in cursor.fetchall())
        cursor.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'bytea' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for schema, table, column in cursor.fetchall():
            cursor.execute(
                f'SELECT "{column}" FROM "{schema}"."{table}" WHERE "{column}" IS NOT NULL'
            )
            for (value,) in cursor.fetchall():
                raw = bytes(value)
                try:
                    raw = zlib.decompress(raw)
                except zlib.error:
                    pass
                texts.append(raw.decode(errors="replace"))
    return texts


def every_file(*places: Path) -> dict[str, str]:
    """The text of each file that is one of `places` or lies under one."""
    paths = [path for place in places for path in [place, *place.rglob("*")] if path.is_file()]
    return {str(path): path.read_bytes().decode(errors="replace") for path in paths}


def wait_for_run(dev: DagsterDev, run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = dev.graphql(RUN, {"runId": run_id})
        if answer["runOrError"].get("status") in {"SUCCESS", "FAILURE", "CANCELED"}:
            return answer
        time.sleep(2)
    raise TimeoutError(f"run {run_id} not finished after {timeout:.0f} s\n{dev.log_tail()}")


@pytest.mark.slow
@pytest.mark.spark
def test_a_spark_secret_is_in_no_graphql_answer_database_row_or_log(tmp_path, service_database_url):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO_ROOT / "dagster.yaml")
    lake = tmp_path / "lake"
    write_days(lake, real_periods())  # bronze for 2019-08-25 and 2019-08-26
    instance_url = service_database_url.replace("+psycopg2", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    env |= {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": instance_url,
        settings.DATA_DIR: str(lake),
        settings.SPARK_MASTER: "local[1]",
        # A setting local Spark accepts (it authenticates nothing unless spark.authenticate).
        settings.SPARK_CONF: f"spark.authenticate.secret={SECRET}; spark.ui.enabled=false",
        # Whatever the automation sensor starts reaches no real service.
        settings.API_BASE_URL: "http://127.0.0.1:9",
        settings.DATABASE_URL: "postgresql://postgres@127.0.0.1:9/none",
    }
    answers: list[dict] = []
    dev = DagsterDev(env, log_path=tmp_path / "dagster-dev.log")
    with dev:
        dev.wait_until_ready([SILVER], timeout=180)
        locations = dev.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        selector = {
            "repositoryName": "__repository__",
            "repositoryLocationName": locations[0]["name"],
        }
        answers.append(dev.graphql(RESOURCES, {"selector": selector}))
        params = {
            "selector": {
                **selector,
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [SILVER]}],
            },
            # One day would be built without Spark (in_process_max_days): Spark it is.
            "runConfigData": {"resources": {"pyspark": {"config": {"in_process_max_days": 0}}}},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": "2019-08-25"}]},
        }
        launched = dev.graphql(LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        run = wait_for_run(dev, run_id)
        answers.append(run)
        assert run["runOrError"]["status"] == "SUCCESS", dev.run_problems(run_id)
    assert (lake / "silver" / "date_recorded=2019-08-25").is_dir()  # Spark ran

    resources = answers[0]["allTopLevelResourceDetailsOrError"]["results"]
    pyspark = next(resource for resource in resources if resource["name"] == "pyspark")
    assert SECRET not in json.dumps(pyspark)
    rows = every_row_of(instance_url)
    files = every_file(home, dev.log_path)

    # The places searched hold what they should: the run's job snapshot, opened...
    assert any(row.startswith('{"__class__": "PipelineSnapshot"') and SILVER in row for row in rows)
    # ...and the run's log, with the settings Spark started with, masked.
    assert any("compute_logs" in path for path in files)  # the steps' stdout and stderr
    masked_line = "spark.authenticate.secret=***"
    assert any(masked_line in json.dumps(answer) for answer in answers)
    assert any(masked_line in row for row in rows)
    # The secret is nowhere.
    assert [i for i, answer in enumerate(answers) if SECRET in json.dumps(answer)] == []
    assert [row[:200] for row in rows if SECRET in row] == []
    assert [path for path, text in files.items() if SECRET in text] == []
