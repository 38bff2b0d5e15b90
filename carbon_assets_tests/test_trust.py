"""A day with one impossible value reaches no table and no export, and the run names the day and
the value (emulator over loopback, Spark, the PostgreSQL service).

Bronze refuses such answers itself (bronze's tests); these tests put the value into a stored
bronze file directly, as a bronze file written before bronze validated answers would hold it,
and check silver's two lines of defence: it refuses a day bronze marked invalid, and its
blocking range checks stop gold, the CSV export and both warehouse loads for a day bronze did
not mark.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from carbon_assets.definitions import build_resources
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.silver.checks import SILVER_FUEL_SHARES_IN_RANGE, SILVER_INTENSITY_IN_RANGE
from carbon_assets.warehouse.resource import dispose_engines
from carbon_assets_tests.faults.common import (
    check_results,
    closed_port_url,
    edit_bronze_day,
    failing_dates,
    file_bytes,
    first_region,
    materialized_assets,
    step_failures,
)
from carbon_assets_tests.helpers import materialize_range
from carbon_assets_tests.postgres_helpers import admin_sql, create_database, drop_database, query

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SEED = 11
FIRST, BAD_DAY, LAST = "2024-03-01", "2024-03-02", "2024-03-03"
# Everything but bronze: the bronze files are the test's.
DOWNSTREAM = [
    "silver_carbon_intensity",
    "gold_carbon_intensity_daily",
    "carbon_intensity_daily",
    "carbon_intensity_halfhourly",
]
TABLES_DIGEST = """
    SELECT (SELECT count(*) FROM carbon_data.carbon_intensity_daily),
           (SELECT max(intensity_avg) FROM carbon_data.carbon_intensity_daily),
           (SELECT max(fuel_gas) FROM carbon_data.carbon_intensity_daily),
           (SELECT count(*) FROM carbon_data.carbon_intensity_halfhourly),
           (SELECT max(intensity_forecast) FROM carbon_data.carbon_intensity_halfhourly),
           (SELECT max(fuel_gas) FROM carbon_data.carbon_intensity_halfhourly),
           (SELECT max(updated_at) FROM carbon_data.carbon_intensity_halfhourly)"""


@dataclass
class Lake:
    data_dir: Path
    url: str
    baseline_dir: Path

    def unchanged(self, folder: str) -> bool:
        return file_bytes(self.data_dir / folder) == file_bytes(self.baseline_dir / folder)

    def run(self, selection: list[str] = DOWNSTREAM):
        resources = build_resources(str(self.data_dir), closed_port_url(), self.url)
        return materialize_range(resources, FIRST, LAST, selection=selection)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, spark):
    data_dir = tmp_path_factory.mktemp("trust") / "data"
    name, url = create_database("service", None)
    try:
        with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
            result = materialize_range(
                build_resources(str(data_dir), emulator.base_url, url), FIRST, LAST
            )
        assert result.success, step_failures(result)
        digest = query(url, TABLES_DIGEST)
        dispose_engines()  # no connection may stay open on a template database
        yield data_dir, name, digest
    finally:
        drop_database("service", None, name)


@pytest.fixture
def lake(tmp_path, baseline):
    baseline_dir, template, digest = baseline
    data_dir = tmp_path / "data"
    shutil.copytree(baseline_dir, data_dir)
    name = f"carbon_test_{uuid.uuid4().hex[:12]}"
    admin_sql("service", None, f"CREATE DATABASE {name} TEMPLATE {template}")
    stored = Lake(data_dir, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}", baseline_dir)
    yield stored
    assert query(stored.url, TABLES_DIGEST) == digest, "a warehouse table changed"
    drop_database("service", None, name)


def absurd_gas_share(document: dict) -> None:
    mix = first_region(document, regionid=3, period=20)["generationmix"]
    next(share for share in mix if share["fuel"] == "gas")["perc"] = 1e9


def absurd_intensity(document: dict) -> None:
    first_region(document, regionid=5, period=24)["intensity"]["forecast"] = 2_000_000_000


@pytest.mark.parametrize(
    ("edit", "check", "named"),
    [
        (
            absurd_gas_share,
            SILVER_FUEL_SHARES_IN_RANGE,
            "2024-03-02T10:00Z region 3: fuel_gas 1e+09 is outside 0-100 %",
        ),
        (
            absurd_intensity,
            SILVER_INTENSITY_IN_RANGE,
            "2024-03-02T12:00Z region 5: intensity_forecast 2e+09 is outside 0-2000 gCO2/kWh",
        ),
    ],
    ids=["share 1e9 %", "intensity 2e9"],
)
def test_an_impossible_value_blocks_gold_the_export_and_both_loads_naming_day_and_value(
    lake, edit, check, named
):
    edit_bronze_day(lake.data_dir, BAD_DAY, edit)
    result = lake.run()
    assert not result.success
    evaluation = check_results(result)[check]
    assert not evaluation.passed and failing_dates(evaluation) == [BAD_DAY]
    assert evaluation.metadata["values_out_of_range"].value == [named]
    assert named in evaluation.description
    # Silver keeps what bronze holds; nothing past it is built, for any day of the range.
    assert materialized_assets(result) == {"silver_carbon_intensity"}
    assert lake.unchanged("gold") and lake.unchanged("exports")

    # Built on their own afterwards (by hand, or by automation following silver), gold refuses
    # the day and the half-hourly table's CHECK refuses its rows: still no table, no export.
    alone = lake.run(DOWNSTREAM[1:])
    assert not alone.success
    failures = step_failures(alone)
    assert set(failures) == {"gold_carbon_intensity_daily", "carbon_intensity_halfhourly"}
    assert f"silver of {BAD_DAY} holds" in failures["gold_carbon_intensity_daily"]
    assert "violates check constraint" in failures["carbon_intensity_halfhourly"]
    assert materialized_assets(alone) == set()
    assert lake.unchanged("gold") and lake.unchanged("exports")
    # The warehouse tables are compared with the baseline's when the fixture ends.


def test_a_day_bronze_marked_invalid_is_refused_by_silver_naming_file_problem_and_command(lake):
    problem = "2024-03-02T10:00Z region 3 (North West England): gas share 1e+09 % is outside 0-100"

    def marked_invalid(document: dict) -> None:
        absurd_gas_share(document)
        sources = document.pop("sources")
        document["complete"] = False
        document["invalid_half_hours"] = [{"start": "2024-03-02T10:00Z", "problems": [problem]}]
        document["sources"] = sources  # the summary comes before the records

    edit_bronze_day(lake.data_dir, BAD_DAY, marked_invalid)
    result = lake.run()
    assert not result.success
    failures = step_failures(result)
    assert list(failures) == ["silver_carbon_intensity"], failures
    message = failures["silver_carbon_intensity"]
    assert f"{lake.data_dir.resolve()}/bronze/2024/{BAD_DAY}.json.gz" in message
    assert problem in message
    assert f"carbon-assets backfill {BAD_DAY} {BAD_DAY}" in message
    assert materialized_assets(result) == set()
    assert lake.unchanged("silver") and lake.unchanged("gold") and lake.unchanged("exports")
