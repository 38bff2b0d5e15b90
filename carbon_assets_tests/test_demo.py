"""`make demo` as a newcomer runs it: `carbon-assets demo` in a fresh project folder, offline,
and what comes after it: a backfill from another API.

The demo must finish with every layer of its own stack filled for January 2024, print one line
per step, the checks' results and a summary rather than Dagster's event stream, keep the full
log in a file it names, and write the two charts the README shows. Its data never mixes with
real data: a backfill from another API afterwards fills the real lake and warehouse with that
API's values and leaves the demo's untouched, and a run from another API over the demo's lake
refuses in one line naming both sources.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from bench.dagster_dev import free_port
from carbon_assets import settings
from carbon_assets.emulator import (
    EmulatorConfig,
    national_records,
    regional_period_records,
    start_emulator,
)
from carbon_assets.lake_source import read_lake_source
from carbon_assets.postgres.embedded import embedded_database_url
from carbon_assets_tests.postgres_helpers import query
from carbon_assets_tests.project_helpers import CARBON_ASSETS, fresh_project, stop_group
from carbon_assets_tests.project_helpers import clean_env as fresh_env

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS, HALF_HOURS, REGIONS = 31, 48, 18
DEMO_SEED, OTHER_SEED = 42, 7
BACKFILL = ("2024-01-01", "2024-01-03")


@pytest.fixture
def project() -> Path:
    with fresh_project("carbon-demo-") as folder:
        yield folder


def clean_env() -> dict[str, str]:
    return fresh_env() | {settings.SPARK_CONF: "spark.ui.enabled=false"}


def run_cli(args: list[str], project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def backfill(project: Path, env: dict[str, str], first: str, last: str):
    """The CLI's backfill, `carbon-assets backfill` (the environment of `make dev`)."""
    return run_cli([CARBON_ASSETS, "backfill", first, last], project, env)


def dev_header(project: Path, options: list[str]) -> str:
    """What `carbon-assets dev` prints before Dagster starts; then it is stopped."""
    dev = subprocess.Popen(
        [CARBON_ASSETS, "dev", *options, "--port", str(free_port())], cwd=project,
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    lines = []
    try:
        for line in dev.stdout:
            lines.append(line)
            if line.startswith("UI:"):
                break
    finally:
        stop_group(dev)
    return "".join(lines)


def lake_snapshot(lake: Path) -> dict[str, str]:
    """Every file of a lake and a digest of its bytes (lock files aside: runs take them)."""
    return {
        str(path.relative_to(lake)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(lake.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def warehouse_snapshot(url: str) -> list[tuple]:
    """A digest of both fact tables, row times included (a reload changes them)."""
    digest = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM carbon_data.{} t"
    tables = ("carbon_intensity_daily", "carbon_intensity_halfhourly")
    return [query(url, digest.format(table)) for table in tables]


def api_values(seed: int, first: str, last: str) -> dict[tuple[int, dt.datetime], tuple]:
    """{(region, half-hour start): (forecast, gas share, wind share)} as the emulator serves
    them."""
    start = dt.datetime.fromisoformat(first).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(last).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    values = {}
    while start < end:
        for record in regional_period_records(start.replace(tzinfo=None), seed=seed):
            mix = {fuel["fuel"]: Decimal(str(fuel["perc"])) for fuel in record["generationmix"]}
            forecast = record["intensity"]["forecast"]
            values[(record["regionid"], start)] = (forecast, mix["gas"], mix["wind"])
        start += dt.timedelta(minutes=30)
    return values


def warehouse_values(url: str, first: str, last: str) -> dict[tuple[int, dt.datetime], tuple]:
    rows = query(
        url,
        "SELECT regionid, period_start, intensity_forecast, fuel_gas, fuel_wind"
        " FROM carbon_data.carbon_intensity_halfhourly"
        " WHERE date_recorded BETWEEN %s AND %s",
        (first, last),
    )
    return {(region, start.astimezone(dt.UTC)): tuple(rest) for region, start, *rest in rows}


def national_api_values(seed: int) -> dict[dt.datetime, tuple]:
    """The emulator's national records of the demo's month: {start: (forecast, actual, index)}."""
    start = dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.UTC)
    end = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    return {
        dt.datetime.fromisoformat(r["from"]): (
            r["intensity"]["forecast"],
            r["intensity"]["actual"],
            r["intensity"]["index"],
        )
        for r in national_records(EmulatorConfig(seed=seed), start, end)
    }


def national_warehouse_values(url: str) -> dict[dt.datetime, tuple]:
    rows = query(
        url,
        "SELECT period_start, intensity_forecast, intensity_actual, intensity_index"
        " FROM carbon_data.carbon_intensity_national_halfhourly",
    )
    return {start.astimezone(dt.UTC): tuple(rest) for start, *rest in rows}


def test_make_demo_fills_its_own_stack_and_another_api_never_mixes_with_it(project):
    done = run_cli([CARBON_ASSETS, "demo"], project, clean_env())
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    counts = {
        line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1].replace(",", ""))
        for line in done.stdout.splitlines()
        if line.startswith("  ") and line.rsplit(None, 1)[-1].replace(",", "").isdigit()
    }
    assert counts["bronze day files"] == DAYS
    assert counts["silver rows"] == DAYS * HALF_HOURS * REGIONS
    assert counts["warehouse daily rows"] == counts["gold rows"] == DAYS * REGIONS
    assert counts["warehouse half-hour rows"] == DAYS * HALF_HOURS * REGIONS
    assert counts["national half-hour rows"] == counts["national actuals"] == DAYS * HALF_HOURS
    assert counts["national settled days"] == counts["national warehouse days"] == DAYS
    assert "A dbt model, carbon_analytics.national_forecast_accuracy_monthly:" in done.stdout
    # A step per line (started and done), the checks' results, no event stream.
    assert "carbon_intensity_halfhourly done" in done.stdout
    (checks,) = [line for line in done.stdout.splitlines() if line.startswith("Asset checks:")]
    assert checks.endswith(" passed, 0 failed, 0 warnings") and checks != "Asset checks: 0 passed"
    assert "DEBUG" not in done.stdout and len(done.stdout.splitlines()) < 100
    # Its own stack, which it says it empties.
    assert "emptied at each start" in done.stdout
    demo_lake = project / "data" / "demo"
    log = demo_lake / "demo.log"
    assert str(log) in done.stdout and "STEP_SUCCESS" in log.read_text()
    for chart in ("intensity_heatmap.png", "gb_fuel_mix.png", "national_forecast_vs_actual.png"):
        assert (demo_lake / "exports" / chart).read_bytes().startswith(b"\x89PNG")
    assert not (project / "data" / "bronze").exists()
    demo_warehouse = embedded_database_url(project / "data", "carbon_demo", driver=None)
    demo_files, demo_rows = lake_snapshot(demo_lake), warehouse_snapshot(demo_warehouse)
    # The national table is the emulator's records, forecast and actual, half-hour for half-hour.
    assert national_warehouse_values(demo_warehouse) == national_api_values(DEMO_SEED)
    # `dev --demo` opens the demo's stack, and says its schedule cannot fetch into it.
    header = dev_header(project, ["--demo"])
    assert f"Lake:           {demo_lake}" in header and "/carbon_demo?" in header
    assert "/dagster_demo?" in header and str(project / ".dagster_home" / "demo") in header
    assert "its ticks skip (the lake's source check), fetching nothing" in header

    with start_emulator(EmulatorConfig(seed=OTHER_SEED)) as other:
        env = clean_env() | {settings.API_BASE_URL: other.base_url}
        # Another API over the real stack: the warehouse holds that API's values.
        done = backfill(project, env, *BACKFILL)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        real_warehouse = embedded_database_url(project / "data", "carbon", driver=None)
        expected = api_values(OTHER_SEED, *BACKFILL)
        assert len(expected) == 3 * HALF_HOURS * REGIONS
        assert warehouse_values(real_warehouse, *BACKFILL) == expected
        assert expected != api_values(DEMO_SEED, *BACKFILL)  # the demo's were other values
        assert read_lake_source(project / "data").api_base_url == other.base_url
        # Another API over the demo's lake: refused in one line naming both sources.
        demo_env = env | {
            settings.LAKE_URL: str(demo_lake),
            settings.DATABASE_URL: demo_warehouse,
            "DAGSTER_HOME": str(project / ".dagster_home" / "demo"),
            "DAGSTER_POSTGRES_URL": embedded_database_url(
                project / "data", "dagster_demo", driver=None
            ),
        }
        done = backfill(project, demo_env, *BACKFILL)
        served = other.stats()["requests_total"]
    assert done.returncode != 0
    assert served == 2  # the backfill's two requests (regional, national); none by the refused run
    assert lake_snapshot(demo_lake) == demo_files
    assert warehouse_snapshot(demo_warehouse) == demo_rows
    refusal = f"The lake {demo_lake} holds data from "
    fetches = f"but this run fetches from {other.base_url}"
    lines = (done.stdout + done.stderr).splitlines()
    refusals = [line for line in lines if refusal in line and fetches in line]
    assert refusals, (done.stdout + done.stderr)[-4000:]
