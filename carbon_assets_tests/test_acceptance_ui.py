"""Issue 21's first acceptance item, the UI path: after the demo, a backfill of three January
2024 days from another API, launched as the UI's backfill dialog launches it, leaves the real
warehouse equal to that API's values and the demo's stack untouched.

The demo runs for the three days only (`carbon-assets demo --first ... --last ...`) in a fresh
project folder; then `dg dev` runs on the real stack of that folder (the environment
`carbon-assets dev` gives it, local_stack.prepare_environment) with CARBON_API_BASE_URL an
emulator of another seed, and the backfill goes through GraphQL's launchPartitionBackfill with
the partition range of every asset.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbon_assets import settings
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake_source import read_lake_source
from carbon_assets.postgres.embedded import embedded_database_url
from carbon_assets_tests.project_helpers import CARBON_ASSETS, fresh_project
from carbon_assets_tests.test_demo import (
    DEMO_SEED,
    HALF_HOURS,
    OTHER_SEED,
    REGIONS,
    api_values,
    clean_env,
    lake_snapshot,
    run_cli,
    warehouse_snapshot,
    warehouse_values,
)
from carbon_assets_tests.ui.dagster_dev import DagsterDev, GraphQLError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FIRST, LAST = "2024-01-01", "2024-01-03"
ASSET_KEYS = [
    "bronze_carbon_intensity",
    "silver_carbon_intensity",
    "gold_carbon_intensity_daily",
    "carbon_intensity_daily",
    "carbon_intensity_halfhourly",
]
# The dialog's "Launch backfill" with a partition range, for every selected asset.
LAUNCH_RANGE = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on PythonError { message stack }
  }
}"""


@pytest.fixture
def project() -> Path:
    with fresh_project("carbon-accept-ui-") as folder:
        yield folder


def real_stack_environment(project: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment `carbon-assets dev` gives Dagster for the project's real stack, computed
    in a child process (it sets os.environ and starts the embedded server)."""
    code = (
        "import json; from carbon_assets.cli import local_stack; "
        "print(json.dumps(local_stack.prepare_environment()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def launch_range_backfill(dev: DagsterDev, first: str, last: str) -> str:
    params = {
        "partitionsByAssets": [
            {"assetKey": {"path": [key]}, "partitions": {"range": {"start": first, "end": last}}}
            for key in ASSET_KEYS
        ],
        "title": f"acceptance {first}...{last}",
    }
    result = dev.graphql(LAUNCH_RANGE, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise GraphQLError(f"launchPartitionBackfill failed: {json.dumps(result, indent=2)}")
    return result["backfillId"]


def test_after_the_demo_a_ui_backfill_from_another_api_fills_the_real_warehouse(project):
    done = run_cli([CARBON_ASSETS, "demo", "--first", FIRST, "--last", LAST], project, clean_env())
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    demo_lake = project / "data" / "demo"
    demo_warehouse = embedded_database_url(project / "data", "carbon_demo", driver=None)
    demo_files, demo_rows = lake_snapshot(demo_lake), warehouse_snapshot(demo_warehouse)
    assert demo_rows[1][0][0] == 3 * HALF_HOURS * REGIONS  # the demo filled its warehouse

    with start_emulator(EmulatorConfig(seed=OTHER_SEED)) as other:
        env = real_stack_environment(project, clean_env() | {settings.API_BASE_URL: other.base_url})
        dev = DagsterDev(env, log_path=project / "dg-dev.log")
        started = time.monotonic()
        with dev:
            dev.wait_until_ready(ASSET_KEYS, timeout=180)
            dev.wait_for_daemon(timeout=90)
            backfill_id = launch_range_backfill(dev, FIRST, LAST)
            backfill = dev.wait_for_backfill(backfill_id, timeout=600, runs_only=True)
            problems = "\n".join(dev.run_problems(run["runId"]) for run in backfill["runs"])
            statuses = [run["status"] for run in backfill["runs"]]
            assert statuses and set(statuses) == {"SUCCESS"}, (
                f"backfill {backfill_id} ({backfill['status']}): {backfill['runs']} "
                f"{backfill.get('error') or ''}\n{problems}\n{dev.log_tail()}"
            )
            elapsed = time.monotonic() - started
        served = other.stats()["requests_total"]
    print(f"dg dev up, backfill of {FIRST}...{LAST} done after {elapsed:.0f} s")

    real_warehouse = embedded_database_url(project / "data", "carbon", driver=None)
    expected = api_values(OTHER_SEED, FIRST, LAST)
    assert len(expected) == 3 * HALF_HOURS * REGIONS
    assert expected != api_values(DEMO_SEED, FIRST, LAST)  # the demo's were other values
    assert warehouse_values(real_warehouse, FIRST, LAST) == expected
    assert served >= 1  # fetched from the other API, not kept from the demo
    assert read_lake_source(project / "data").api_base_url == other.base_url
    # The demo's lake and warehouse are as the demo left them.
    assert lake_snapshot(demo_lake) == demo_files
    assert warehouse_snapshot(demo_warehouse) == demo_rows
