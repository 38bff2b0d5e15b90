"""The analyst layer: the dbt models of dbt_project/ as Dagster assets, downstream of the warehouse.

The dbt tests of each model are its asset checks (dagster-dbt's default); the descriptions in
models/schema.yml are the assets' descriptions and dagster/column_schema.
"""

import contextlib
import getpass
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    BackfillPolicy,
    Config,
    DefaultSensorStatus,
    materialize,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from pydantic import Field

from carbon_assets.analytics.builds import database_now, models_current, record_build
from carbon_assets.analytics.project import (
    BUILDS_KEPT,
    PROJECT_DIR,
    dbt_executable,
    keep_partial_parse,
    prepare_manifest,
    project_hash,
    prune_builds,
)
from carbon_assets.locks import models_build_lock
from carbon_assets.postgres.secrets import parse_database_url
from carbon_assets.warehouse.resource import WarehouseDatabase

GROUP = "analytics"
# How long a build waits for another's to end (builds take seconds to minutes) before failing.
BUILD_LOCK_TIMEOUT_SECONDS = 3600.0
# eager() without its "no dependency missing" clause: the warehouse assets are daily
# partitioned, and an unpartitioned model depends on all their partitions, so one day never
# loaded would block the models for ever. The source tables exist (empty) once migrated.
# Building it touches Dagster's beta condition API, whose notice would print in every command.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    AUTOMATION = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


class AnalyticsTranslator(DagsterDbtTranslator):
    """The models in their own group, materialized when the warehouse tables they read change."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        if manifest.get("nodes", {}).get(unique_id, {}).get("resource_type") != "model":
            return spec  # a source: the warehouse's own asset, left as it is defined there
        return spec.replace_attributes(group_name=GROUP, automation_condition=AUTOMATION)


TARGET_DIR = prepare_manifest()
dbt_project = DbtProject(project_dir=PROJECT_DIR, target_path=TARGET_DIR)


def dbt_connection_env(database_url: str) -> dict[str, str]:
    """profiles.yml's variables for a warehouse URL (a socket folder in ?host= included)."""
    url = parse_database_url(database_url)
    host = url.host or url.query.get("host") or "localhost"
    sslmode = url.query.get("sslmode") or ""
    return {
        "CARBON_DBT_HOST": host if isinstance(host, str) else host[0],
        "CARBON_DBT_PORT": str(url.port or 5432),
        "CARBON_DBT_USER": url.username or getpass.getuser(),
        "CARBON_DBT_PASSWORD": url.password or "",
        "CARBON_DBT_DBNAME": url.database or "",
        "CARBON_DBT_SSLMODE": sslmode if isinstance(sslmode, str) else sslmode[0],
    }


@contextlib.contextmanager
def warehouse_environment(database_url: str) -> Iterator[None]:
    """The connection variables in os.environ while dbt starts, then removed again.

    DbtCliResource.cli() takes no environment: it copies os.environ into the dbt subprocess
    (and reads the profile in this process), so this is how the password reaches dbt without
    being written anywhere. Safe here: the run worker executes one step at a time.
    """
    values = {**dbt_connection_env(database_url), "DBT_TARGET_PATH": str(TARGET_DIR)}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Why the models' step builds nothing; logged after "Not built: ", a line the CLI shows.
MODELS_CURRENT = (
    "the models are current (no warehouse day loaded and no model changed since their last build)"
)


class ModelsBuildConfig(Config):
    """How a run treats models that are already current."""

    rebuild: bool = Field(
        default=False,
        description="Build the models even when they are current (no warehouse day loaded and"
        " no model changed since their last whole build), e.g. after editing a table by hand.",
    )


@dbt_assets(
    manifest=TARGET_DIR / "manifest.json",
    project=dbt_project,
    dagster_dbt_translator=AnalyticsTranslator(),
    # Unpartitioned, yet in the same single run as a range of the daily assets
    # (`carbon-assets backfill` of up to a month): dg launch asks every selected asset for it.
    backfill_policy=BackfillPolicy.single_run(),
)
def analytics_models(
    context: AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseDatabase,
    config: ModelsBuildConfig,
):
    """The researchers' tables in schema carbon_analytics, built by `dbt build` from the
    warehouse tables, with each model's dbt tests as its asset checks. Not built again while
    they are current: no warehouse day loaded and no model changed since their last build."""
    engine = warehouse.engine()  # starts the embedded server if need be, applies the schema
    # Runs on other machines build the same tables: one build at a time, the next after it.
    with models_build_lock(
        warehouse.url(),
        holder=f"dbt build of run {context.run_id}",
        timeout_seconds=BUILD_LOCK_TIMEOUT_SECONDS,
        on_wait=context.log.info,
    ):
        # Asked under the lock: a build that just ended elsewhere may have made them current.
        if not config.rebuild and models_current(engine, project_hash()):
            context.log.info(f"Not built: {MODELS_CURRENT}")
            return
        started_at = database_now(engine)
        prune_builds(TARGET_DIR, keep=BUILDS_KEPT - 1)  # room for this one
        with warehouse_environment(warehouse.url()):
            invocation = dbt.cli(["build"], context=context)
        yield from invocation.stream()
        keep_partial_parse(invocation.target_path, TARGET_DIR)
        if not context.is_subset:  # a failed build raised above: recorded only when whole
            record_build(engine, started_at, project_hash())


analytics_assets = [analytics_models]
analytics_selection = AssetSelection.groups(GROUP)


def dbt_resource() -> DbtCliResource:
    """The `dbt` resource the analytics assets use."""
    return DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable())


# The warehouse's sensor targets its own group; this one drives the models' conditions.
analytics_automation_sensor = AutomationConditionSensorDefinition(
    "carbon_analytics_automation",
    target=analytics_selection,
    default_status=DefaultSensorStatus.RUNNING,
    description="Rebuilds the dbt models when the warehouse tables they read change.",
)


def build_analytics(warehouse: WarehouseDatabase, instance=None):
    """Materialize every model now (after a backfill, say); the run's result."""
    return materialize(
        analytics_assets,
        resources={"dbt": dbt_resource(), "warehouse": warehouse},
        instance=instance,
    )
