"""The Definitions load, with every asset, check, resource, job and schedule, and touch nothing."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from dagster import AssetKey, BackfillPolicy, DefaultScheduleStatus, DefaultSensorStatus

from carbon_assets.bronze import checks as bronze_checks
from carbon_assets.columns import sql_descriptions
from carbon_assets.definitions import ALL_CHECKS, defs
from carbon_assets.gold import checks as gold_checks
from carbon_assets.silver import checks as silver_checks
from carbon_assets.silver.checks import BLOCKING_SILVER_CHECKS
from carbon_assets.warehouse import checks as warehouse_checks

ROOT = Path(__file__).parent.parent
ASSETS = [
    "bronze_carbon_intensity",
    "silver_carbon_intensity",
    "gold_carbon_intensity_daily",
    "carbon_intensity_daily",
    "carbon_intensity_halfhourly",
    "bronze_national_intensity",
    "silver_national_intensity",
    "gold_national_daily",
    "carbon_intensity_national_halfhourly",
    "carbon_intensity_national_daily",
]
BRONZE_ASSETS = ("bronze_carbon_intensity", "bronze_national_intensity")


def test_every_tabular_asset_explains_its_columns_as_the_sql_comments_do():
    for name in (name for name in ASSETS if name not in BRONZE_ASSETS):
        (spec,) = defs.resolve_assets_def(name).specs
        columns = spec.metadata["dagster/column_schema"].columns
        assert columns and all(column.description for column in columns), name
    daily = defs.resolve_assets_def("carbon_intensity_daily")
    (spec,) = daily.specs
    described = {c.name: c.description for c in spec.metadata["dagster/column_schema"].columns}
    assert described["half_hours"] == sql_descriptions()["carbon_intensity_daily"]["half_hours"]


def test_every_asset_is_daily_partitioned_single_run_and_described():
    graph = defs.resolve_asset_graph()
    daily = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if key.path[0] != "carbon_analytics"
    }
    assert daily == set(ASSETS)
    for name in ASSETS:
        asset = defs.resolve_assets_def(name)
        assert asset.partitions_def.get_first_partition_key() == "2018-05-11"
        assert asset.backfill_policy == BackfillPolicy.single_run()
        assert asset.descriptions_by_key[AssetKey(name)], f"{name} has no description"
    for name in BRONZE_ASSETS:
        assert defs.resolve_assets_def(name).op.pool == "carbon_api"
    for name in (name for name in ASSETS if name not in BRONZE_ASSETS):  # they follow bronze
        assert (
            defs.resolve_assets_def(name).automation_conditions_by_key[AssetKey(name)] is not None
        )


def resolved_dbt_checks():
    return [
        key
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.path[0] == "carbon_analytics"
    ]


def test_every_check_is_registered_with_a_description():
    specs = [spec for check in ALL_CHECKS for spec in check.check_specs]
    names = {spec.name for spec in specs}
    constants = {
        value
        for module in (bronze_checks, silver_checks, gold_checks, warehouse_checks)
        for key, value in vars(module).items()
        if key.startswith(
            ("BRONZE_", "SILVER_", "GOLD_", "WAREHOUSE_", "HALF_HOURLY_", "NATIONAL_")
        )
        and key != "WAREHOUSE_TABLE"
        and isinstance(value, str)
    }
    assert names == constants
    assert all(spec.description for spec in specs)
    # Only silver's checks stop a run: a blocking failure there keeps bad rows out of gold.
    assert {s.name for s in specs if s.blocking} == BLOCKING_SILVER_CHECKS
    resolved = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    # The dbt models' tests are their checks too (analytics/test_dbt_models.py runs them).
    dbt_tests = {key.name for key in resolved_dbt_checks()}
    assert resolved == names | dbt_tests and dbt_tests


def test_resources_job_schedule_and_sensor_run_by_default():
    resources = defs.resources
    assert {
        "lake",
        "pyspark",
        "carbon_api",
        "refresh_policy",
        "warehouse",
        "bronze_io_manager",
        "spark_parquet_io_manager",
        "warehouse_io_manager",
    } <= set(resources)
    job = defs.resolve_job_def("daily_refresh")
    assert job.op_retry_policy.max_retries == 3  # an outage passes without a person
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.cron_schedule == "30 0 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    sensor = defs.resolve_sensor_def("carbon_automation")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    warehouse = defs.resolve_assets_def("carbon_intensity_daily")
    (spec,) = warehouse.specs
    assert spec.freshness_policy is not None  # a missed day shows in the UI


def test_importing_definitions_starts_no_spark_and_no_database():
    code = (
        "import carbon_assets.definitions, sys;"
        "assert 'pyspark.sql.session' not in sys.modules or "
        "__import__('pyspark.sql').sql.SparkSession.getActiveSession() is None;"
        "from carbon_assets.postgres import embedded; assert not embedded._known_databases;"
        " print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_carbon_assets_check_loads_the_project_with_nothing_configured():
    """`carbon-assets check` (`dg check defs` on a throwaway instance) as a fresh clone runs it
    in the repository: no DAGSTER_HOME, no DAGSTER_POSTGRES_URL, no CARBON_*, no VIRTUAL_ENV."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARBON_", "DAGSTER_")) and k != "VIRTUAL_ENV"
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "carbon-assets"), "check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All definitions loaded successfully." in output
    for noise in ("SupersessionWarning", "BetaWarning", "PreviewWarning", "virtual environment"):
        assert noise not in output, output


def test_workspace_yaml_and_tool_dg_name_the_same_definitions():
    """`dg dev -w workspace.yaml` (carbon-assets dev) and `dg launch`/`dg check defs`
    ([tool.dg]) load one module."""
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert entry["python_module"]["module_name"] == project["code_location_target_module"]
    assert entry["python_module"]["working_directory"] == "."
