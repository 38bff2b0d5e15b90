"""The dbt models built for real: a scratch database on the PostgreSQL service, the warehouse
schema applied, rows inserted with SQL, then the dbt assets materialized through Dagster."""

from __future__ import annotations

import os

import pytest
import sqlalchemy
from dagster import AssetKey, DagsterInstance, materialize
from sqlalchemy.pool import NullPool

from carbon_assets.analytics import analytics_assets, build_analytics, dbt_resource
from carbon_assets.analytics.assets import MODELS_CURRENT, TARGET_DIR
from carbon_assets.analytics.project import (
    BUILDS_KEPT,
    PARTIAL_PARSE_FILE,
    keep_partial_parse,
    prune_builds,
)
from carbon_assets.warehouse.migrations import apply_schema
from carbon_assets.warehouse.resource import WarehouseDatabase, sqlalchemy_url
from carbon_assets_tests.postgres_helpers import query

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Around both 2024 clock changes (31 March forward, 27 October back), UTC.
RANGES = [("2024-03-29", "2024-04-02"), ("2024-10-25", "2024-10-29")]
REGIONS = list(range(1, 19))


def seed(url: str, forecast_sql: str = "100 + regionid + extract(hour from t)::int") -> None:
    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    apply_schema(engine)
    with engine.begin() as connection:
        run = connection.exec_driver_sql
        run(
            "INSERT INTO carbon_data.dim_region (regionid, shortname, dno) "
            "SELECT r, 'Region ' || r, 'DNO ' || r FROM generate_series(1, 18) AS r"
        )
        for first, last in RANGES:
            series = (
                f"generate_series(timestamptz '{first} 00:00+00', "
                f"timestamptz '{last} 00:00+00' - interval '30 minutes', interval '30 minutes')"
            )
            run(
                "INSERT INTO carbon_data.carbon_intensity_halfhourly "
                "(regionid, period_start, date_recorded, intensity_forecast) "
                f"SELECT regionid, t, (t AT TIME ZONE 'UTC')::date, {forecast_sql} "
                f"FROM generate_series(1, 18) AS regionid, {series} AS t"
            )
            run(
                "INSERT INTO carbon_data.carbon_intensity_national_halfhourly "
                "(period_start, date_recorded, intensity_forecast, intensity_actual) "
                "SELECT t, (t AT TIME ZONE 'UTC')::date, 200, "
                "CASE WHEN t < timestamptz '2024-10-28 00:00+00' THEN 190 END "
                f"FROM {series} AS t"
            )
    engine.dispose()


def check_results(result) -> dict[tuple[str, str], object]:
    return {
        (evaluation.asset_key.path[-1], evaluation.check_name): evaluation
        for evaluation in result.get_asset_check_evaluations()
    }


def test_models_build_and_every_test_passes_as_an_asset_check(service_database_url):
    seed(service_database_url)
    result = build_analytics(
        WarehouseDatabase(database_url=service_database_url), DagsterInstance.ephemeral()
    )
    assert result.success
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    assert materialized == set(analytics_assets[0].keys)
    checks = check_results(result)
    assert len(checks) == len(analytics_assets[0].check_specs_by_output_name)
    failed = [key for key, evaluation in checks.items() if not evaluation.passed]
    assert failed == []

    def rows(sql):
        return query(service_database_url, sql)

    # The local days of the clock changes, for one region: 46 and 50 half-hours.
    assert rows(
        "SELECT local_date::text, half_hours FROM carbon_analytics.regional_local_daily "
        "WHERE regionid = 1 AND local_date IN ('2024-03-30', '2024-03-31', '2024-10-27') "
        "ORDER BY local_date"
    ) == [("2024-03-30", 48), ("2024-03-31", 46), ("2024-10-27", 50)]
    # Only the 14 DNO regions in the regional aggregates.
    assert rows("SELECT min(regionid), max(regionid) FROM carbon_analytics.regional_monthly") == [
        (1, 14)
    ]
    # The forecast grows with the UTC hour: the greenest local hour is 00:00 UTC.
    assert rows(
        "SELECT local_hour FROM carbon_analytics.greenest_hours "
        "WHERE regionid = 1 AND local_month = '2024-03-01' AND greenness_rank = 1"
    ) == [(0,)]
    accuracy = rows(
        "SELECT month::text, half_hours, actual_half_hours, mean_absolute_error::float, "
        "bias::float FROM carbon_analytics.national_forecast_accuracy_monthly ORDER BY month"
    )
    assert accuracy[0] == ("2024-03-01", 144, 144, 10.0, 10.0)
    assert accuracy[-1][1:3] == (192, 144)  # actuals pending on the last day
    assert rows(
        "SELECT count(*), min(common_share)::float FROM carbon_analytics.regional_vs_national_daily"
    ) == [(8, 1.0)]


def test_a_failing_test_is_a_failed_asset_check_not_a_crashed_run(service_database_url):
    seed(service_database_url)
    # A row loaded before 003's bound existed (the bound is kept NOT VALID for such rows).
    engine = sqlalchemy.create_engine(sqlalchemy_url(service_database_url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE carbon_data.carbon_intensity_halfhourly "
            "DROP CONSTRAINT carbon_intensity_halfhourly_intensity_forecast_range_check"
        )
        connection.exec_driver_sql(
            "UPDATE carbon_data.carbon_intensity_halfhourly SET intensity_forecast = 5000 "
            "WHERE regionid = 3 AND date_recorded = '2024-03-30'"
        )
    engine.dispose()
    result = build_analytics(
        WarehouseDatabase(database_url=service_database_url), DagsterInstance.ephemeral()
    )
    assert result.success
    checks = check_results(result)
    failed = sorted(key for key, evaluation in checks.items() if not evaluation.passed)
    assert (
        "regional_local_daily",
        "value_between_regional_local_daily_intensity_mean__2000__0",
    ) in failed, failed
    assert all(checks[key].severity.value == "WARN" for key in failed)
    assert AssetKey(["carbon_analytics", "regional_local_daily"]) in {
        event.asset_key for event in result.get_asset_materialization_events()
    }


def test_current_models_are_not_built_again_unless_asked(service_database_url):
    """Built whole after the last load that changed a table, the models are left alone: no
    materialization, their tables the same relations, the reason in the run's log. A day
    loaded since, or `rebuild`, builds them again."""
    seed(service_database_url)
    engine = sqlalchemy.create_engine(sqlalchemy_url(service_database_url), poolclass=NullPool)

    def load_a_day():
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO carbon_data.loaded_days (table_name, date_recorded, input_sha256,"
                " row_count) VALUES ('carbon_intensity_halfhourly', '2024-03-29', 'sha', 864)"
                " ON CONFLICT (table_name, date_recorded) DO UPDATE SET loaded_at = now()"
            )

    def relations():  # a rebuilt table is a new relation (dbt's table swaps it in)
        with engine.connect() as connection:
            return dict(
                connection.exec_driver_sql(
                    "SELECT relname, oid FROM pg_class WHERE relkind = 'r'"
                    " AND relnamespace = 'carbon_analytics'::regnamespace"
                ).all()
            )

    def materialized(result):
        return {event.asset_key for event in result.get_asset_materialization_events()}

    warehouse = WarehouseDatabase(database_url=service_database_url)
    instance = DagsterInstance.ephemeral()
    load_a_day()
    assert materialized(build_analytics(warehouse, instance)) == set(analytics_assets[0].keys)
    built = relations()

    again = build_analytics(warehouse, instance)
    assert again.success and materialized(again) == set()
    assert again.get_asset_check_evaluations() == []
    messages = [entry.user_message for entry in instance.all_logs(again.run_id)]
    assert f"Not built: {MODELS_CURRENT}" in messages
    assert relations() == built

    rebuild = {"ops": {"analytics_models": {"config": {"rebuild": True}}}}
    resources = {"dbt": dbt_resource(), "warehouse": warehouse}
    forced = materialize(analytics_assets, resources=resources, run_config=rebuild)
    assert materialized(forced) == set(analytics_assets[0].keys)
    rebuilt = relations()
    assert rebuilt.keys() == built.keys() and not set(rebuilt.values()) & set(built.values())

    load_a_day()
    assert materialized(build_analytics(warehouse, instance)) == set(analytics_assets[0].keys)
    engine.dispose()


def test_models_build_on_the_embedded_server_over_its_socket(embedded_database_url):
    seed(embedded_database_url)
    assert "?host=/" in embedded_database_url  # a socket folder, no TCP, no password
    result = build_analytics(
        WarehouseDatabase(database_url=embedded_database_url), DagsterInstance.ephemeral()
    )
    assert result.success
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())
    # Each build leaves its own folder of artifacts in the cache; only the newest few stay.
    builds = [path for path in TARGET_DIR.iterdir() if path.is_dir()]
    assert 1 <= len(builds) <= BUILDS_KEPT, builds
    # The next build against this warehouse starts from this one's parse.
    newest = max(builds, key=lambda path: path.stat().st_mtime)
    kept = (TARGET_DIR / PARTIAL_PARSE_FILE).read_bytes()
    assert kept == (newest / PARTIAL_PARSE_FILE).read_bytes()


def test_only_the_newest_build_folders_are_kept(tmp_path):
    for age, name in enumerate(["newest", "newer", "older", "oldest"]):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))
    (tmp_path / "manifest.json").write_text("{}")  # the parse's files are not builds
    prune_builds(tmp_path, keep=2)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifest.json", "newer", "newest"]


def test_a_builds_partial_parse_replaces_the_one_builds_start_from(tmp_path):
    build = tmp_path / "analytics_models-1234567-abcdefg"
    build.mkdir()
    (tmp_path / PARTIAL_PARSE_FILE).write_bytes(b"offline parse")
    keep_partial_parse(build, tmp_path)  # a build that wrote none leaves it
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"offline parse"
    (build / PARTIAL_PARSE_FILE).write_bytes(b"parse naming the warehouse")
    keep_partial_parse(build, tmp_path)
    assert (tmp_path / PARTIAL_PARSE_FILE).read_bytes() == b"parse naming the warehouse"
    assert sorted(path.name for path in tmp_path.iterdir()) == [build.name, PARTIAL_PARSE_FILE]


def test_the_models_follow_the_warehouse_automatically():
    """eager() asks for the models once a warehouse partition is materialized, though most
    days of the warehouse were never loaded."""
    from dagster import AssetMaterialization, Definitions, evaluate_automation_conditions

    from carbon_assets.analytics import analytics_automation_sensor, dbt_resource

    defs = Definitions(
        assets=analytics_assets,
        sensors=[analytics_automation_sensor],
        resources={"dbt": dbt_resource(), "warehouse": WarehouseDatabase()},
    )
    instance = DagsterInstance.ephemeral()
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    instance.report_runless_asset_event(
        AssetMaterialization("carbon_intensity_halfhourly", partition="2024-03-31")
    )
    second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert first.total_requested == 0  # nothing upstream has changed yet
    requested = {key.path[-1] for key in analytics_assets[0].keys if second.get_num_requested(key)}
    # All but the one model that reads only the national table.
    names = {key.path[-1] for key in analytics_assets[0].keys}
    assert requested == names - {"national_forecast_accuracy_monthly"}


def test_the_password_reaches_dbt_through_the_environment_only(service_database_url):
    """A URL with a password: dbt connects with it, and no file of the project holds it."""
    import os

    from carbon_assets.analytics.assets import dbt_connection_env, warehouse_environment
    from carbon_assets.analytics.project import PROJECT_DIR
    from carbon_assets_tests.postgres_helpers import role_with_password

    with role_with_password() as (url, password):
        seed(url)
        assert dbt_connection_env(url)["CARBON_DBT_PASSWORD"] == password
        with warehouse_environment(url):
            assert os.environ["CARBON_DBT_PASSWORD"] == password
        assert "CARBON_DBT_PASSWORD" not in os.environ
        result = build_analytics(WarehouseDatabase(database_url=url), DagsterInstance.ephemeral())
        assert result.success
    for path in PROJECT_DIR.rglob("*"):
        assert not path.is_file() or password not in path.read_text(errors="replace"), path
    embedded = "postgresql+psycopg2://postgres@/carbon?host=/data/postgres"
    assert dbt_connection_env(embedded)["CARBON_DBT_HOST"] == "/data/postgres"


def test_descriptions_columns_checks_and_lineage_reach_dagster():
    """schema.yml's descriptions are the assets' descriptions and dagster/column_schema; the
    dbt tests are asset checks; the sources are the warehouse's own assets (dim_region on
    carbon_intensity_daily's key, beside that table), and the whole loads with them."""
    from dagster import Definitions

    from carbon_assets.analytics import analytics_selection, dbt_resource
    from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources

    models = analytics_assets[0]
    for key in models.keys:
        spec = models.specs_by_key[key]
        assert spec.description and spec.group_name == "analytics", key
        columns = spec.metadata["dagster/column_schema"].columns
        assert columns and all(column.description for column in columns), key
    deps = {dep.path[-1] for spec in models.specs for dep in (d.asset_key for d in spec.deps)}
    assert deps >= {
        "carbon_intensity_daily",
        "carbon_intensity_halfhourly",
        "carbon_intensity_national_halfhourly",
    }
    assert len(models.check_specs_by_output_name) >= len(models.keys)
    defs = Definitions(
        assets=[*ALL_ASSETS, *analytics_assets],
        asset_checks=ALL_CHECKS,
        resources={**build_resources(), "dbt": dbt_resource()},
    )
    graph = defs.resolve_asset_graph()
    selected = analytics_selection.resolve(graph)
    assert selected == set(models.keys)
