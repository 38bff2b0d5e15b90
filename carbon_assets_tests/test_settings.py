"""Every variable of the README's configuration table does what the README says.

The main test sets all of them at once and runs the README's CLI command on a persistent
PostgreSQL instance; the others cover run config over the environment, the settle variables
and bad values.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_schedule_context, materialize

from carbon_assets import settings
from carbon_assets.automation import MAX_RUN_TAGS, daily_refresh_schedule
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.helpers import REPO, range_tags
from carbon_assets_tests.postgres_helpers import create_database, drop_database, query

README = REPO / "README.md"
# Where each variable is set and used in a test, beside this module.
TESTED_ELSEWHERE = {
    settings.SPARK_REMOTE: "test_spark_connect.py",
    "JAVA_HOME": "test_spark_setup.py",
}


def readme_variables() -> list[str]:
    """The variables of the README's configuration table."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE)


def test_every_readme_variable_is_set_by_a_test():
    variables = readme_variables()
    assert settings.SETTLE_DAYS in variables and "DAGSTER_POSTGRES_URL" in variables
    this_module = Path(__file__).read_text()
    for name in variables:
        where = Path(__file__).parent / TESTED_ELSEWHERE.get(name, Path(__file__).name)
        text = this_module if where == Path(__file__) else where.read_text()
        used = name in text or re.search(rf"\b{_constant(name)}\b", text)
        assert used, f"{name} is not set by a test"


def resources_seen(env: dict[str, str], values: str) -> list[str]:
    """`values` (an expression over the resources `r`) as a fresh process with `env` loading
    the definitions sees them."""
    probe = f"from carbon_assets.definitions import defs; r = defs.resources; print({values})"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def _constant(variable: str) -> str:
    """The settings constant that names a variable (CARBON_API_BASE_URL -> API_BASE_URL)."""
    return next(key for key, value in vars(settings).items() if value == variable)


@pytest.mark.slow
@pytest.mark.spark
def test_every_variable_at_once_through_the_readme_cli_command(tmp_path):
    """CARBON_API_BASE_URL, CARBON_API_MAX_CONCURRENCY, CARBON_DATABASE_URL, CARBON_DATA_DIR,
    CARBON_LAKE_URL, CARBON_SPARK_MASTER, CARBON_SPARK_CONF, CARBON_SETTLE_DAYS,
    CARBON_SETTLE_HOURS, CARBON_HEAL_DAYS, DAGSTER_POSTGRES_URL and DAGSTER_EVENT_BATCH_SIZE,
    with `dagster asset materialize`."""
    warehouse_name, warehouse_url = create_database("service", None)
    instance_name, instance_url = create_database("service", None)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(REPO / "dagster.yaml")
    lake, data_dir = tmp_path / "lake", tmp_path / "data"
    try:
        with start_emulator(EmulatorConfig(latency_min=0.3, latency_max=0.4)) as emulator:
            env = os.environ | {
                settings.API_BASE_URL: emulator.base_url,
                settings.API_MAX_CONCURRENCY: "3",
                settings.DATABASE_URL: warehouse_url,
                # The lake where CARBON_LAKE_URL says, not under CARBON_DATA_DIR.
                settings.DATA_DIR: str(data_dir),
                settings.LAKE_URL: f"file://{lake}",
                settings.SPARK_MASTER: "local[1]",
                settings.SPARK_CONF: "spark.sql.shuffle.partitions=3; spark.ui.enabled=false",
                settings.SETTLE_DAYS: "2",
                settings.SETTLE_HOURS: "0",
                settings.HEAL_DAYS: "5",
                "DAGSTER_HOME": str(home),
                "DAGSTER_EVENT_BATCH_SIZE": "100",
                "DAGSTER_POSTGRES_URL": instance_url.replace("+psycopg2", ""),
            }
            # 60 days are 5 regional requests of up to 13 days and 5 national ones of up to
            # 14: more than 3 could be in flight.
            command = [
                str(Path(sys.executable).parent / "dagster"),
                *(
                    "asset",
                    "materialize",
                    "-m",
                    "carbon_assets.definitions",
                    "--select",
                    "group:carbon_intensity",
                ),
                *("--partition-range", "2024-01-01...2024-02-29"),
            ]
            done = subprocess.run(
                command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            served = emulator.stats()
        assert served["peak_in_flight"] == 3
        assert served["by_endpoint"] == {"national": 5, "regional": 5}, served
        assert len(list((lake / "bronze").rglob("*.json.gz"))) == 60
        assert len(list((lake / "gold").glob("date_recorded=*"))) == 60
        assert not (data_dir / "bronze").exists()
        daily = "SELECT count(*) FROM carbon_data.carbon_intensity_daily"
        assert query(warehouse_url, daily) == [(60 * 18,)]
        assert query(instance_url, "SELECT count(*) FROM runs") == [(1,)]
        # What a run starting now makes of the Spark variables (the run above used them).
        spark = "r['pyspark'].session_config['spark.master'], r['pyspark'].session_config"
        shown = resources_seen(env, f"{spark}['spark.sql.shuffle.partitions']")
        assert shown == ["local[1]", "3"]
    finally:
        drop_database("service", None, warehouse_name)
        drop_database("service", None, instance_name)


def test_run_config_for_a_resource_keeps_the_environment_for_the_fields_it_does_not_set(
    tmp_path, monkeypatch
):
    with start_emulator(EmulatorConfig(seed=3)) as emulator:
        monkeypatch.setenv(settings.API_BASE_URL, emulator.base_url)
        monkeypatch.setenv(settings.API_MAX_CONCURRENCY, "2")
        monkeypatch.setenv(settings.DATA_DIR, str(tmp_path / "lake"))
        lake = LakeResource()
        result = materialize(
            [bronze_carbon_intensity],
            resources={
                "lake": lake,
                "carbon_api": CarbonIntensityApi(),
                "refresh_policy": RefreshPolicy(),
                "bronze_io_manager": BronzeJsonIOManager(lake=lake),
                # unused by a lake on disk (the API lock of an object-store lake)
                "warehouse": WarehouseDatabase(),
            },
            instance=DagsterInstance.ephemeral(),
            tags=range_tags("2024-01-01", "2024-01-04"),
            run_config={"resources": {"carbon_api": {"config": {"days_per_request": 1}}}},
        )
        served = emulator.stats()
    assert result.success
    assert served["requests_total"] == 4  # one request a day, from the run config...
    assert served["peak_in_flight"] <= 2  # ...to the API and the limit of the environment
    assert len(list((tmp_path / "lake" / "bronze").rglob("*.json.gz"))) == 4


def test_the_settle_variables_shape_the_daily_ticks(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.SETTLE_DAYS, "5")
    monkeypatch.setenv(settings.SETTLE_HOURS, "48")
    monkeypatch.setenv(settings.HEAL_DAYS, "9")
    policy = RefreshPolicy()
    assert (policy.window_days, policy.final_after_hours, policy.heal_horizon_days) == (5, 48, 9)
    tick = dt.datetime(2024, 3, 20, 0, 30, tzinfo=dt.UTC)
    context = build_schedule_context(
        scheduled_execution_time=tick,
        resources={
            "refresh_policy": policy,
            "lake": LakeResource(data_dir=str(tmp_path)),
            "carbon_api": CarbonIntensityApi(),
        },
    )
    (request,) = daily_refresh_schedule(context)
    settle = {"carbon/run": "settle"} | MAX_RUN_TAGS
    assert request.tags == range_tags("2024-03-15", "2024-03-19") | settle


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (settings.API_MAX_CONCURRENCY, "0", "CARBON_API_MAX_CONCURRENCY='0' must be at least 1"),
        (settings.API_MAX_CONCURRENCY, "three", "is not a whole number"),
        (settings.SETTLE_HOURS, "-1", "CARBON_SETTLE_HOURS='-1' must be at least 0"),
        (settings.SETTLE_DAYS, "1.5", "CARBON_SETTLE_DAYS='1.5' is not a whole number"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(
    monkeypatch, variable, value, message
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingError, match=re.escape(message)):
        _ = (settings.api_max_concurrency(), settings.settle_hours(), settings.settle_days())


def test_the_lake_is_carbon_lake_url_else_carbon_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(settings.LAKE_URL, raising=False)
    monkeypatch.setenv(settings.DATA_DIR, str(tmp_path / "data"))
    assert LakeResource().storage.local_path == tmp_path / "data"
    monkeypatch.setenv(settings.LAKE_URL, str(tmp_path / "lake"))
    assert LakeResource().bronze.local_path == tmp_path / "lake" / "bronze"
    monkeypatch.setenv(settings.LAKE_URL, f"file://{tmp_path}/my%20lake")
    assert LakeResource().storage.local_path == tmp_path / "my lake"
    assert LakeResource(data_dir=str(tmp_path / "given")).storage.local_path == tmp_path / "given"
    monkeypatch.setenv(settings.LAKE_URL, "s3://bucket/lake/")
    assert LakeResource().url == "s3://bucket/lake"
    assert LakeResource().bronze.url == "s3://bucket/lake/bronze"


@pytest.mark.parametrize(
    "url",
    ["s3://key:hush@bucket/lake", "s3://bucket/lake?secret=hush", "s3://hush@bucket/lake"],
)
def test_a_lake_url_with_credentials_is_refused_without_echoing_it(monkeypatch, url):
    monkeypatch.setenv(settings.LAKE_URL, url)
    with pytest.raises(settings.SettingError, match="CARBON_LAKE_URL is a s3:// URL") as error:
        settings.lake_url()
    assert "hush" not in str(error.value)


@pytest.mark.parametrize("url", ["nosuchscheme://bucket/lake", "s3://", "s3:///"])
def test_a_lake_url_no_filesystem_serves_is_refused_in_one_line(monkeypatch, url):
    monkeypatch.setenv(settings.LAKE_URL, url)
    with pytest.raises(settings.SettingError, match="CARBON_LAKE_URL") as error:
        settings.lake_url()
    assert "\n" not in str(error.value)


def test_the_definitions_load_with_every_variable_set(monkeypatch):
    """The bug this guards against: CARBON_API_MAX_CONCURRENCY=3 broke the definitions."""
    env = os.environ | {
        settings.API_MAX_CONCURRENCY: "3",
        settings.SETTLE_DAYS: "4",
        settings.DATA_DIR: "/tmp/somewhere",
        settings.DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/nowhere",
    }
    shown = resources_seen(env, "r['carbon_api'].concurrency, r['refresh_policy'].window_days")
    assert shown == ["3", "4"]
