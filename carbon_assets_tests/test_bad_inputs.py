"""Bad inputs: each gets a clear error or a failing check naming the problem, and nothing already
stored is lost.

Every scenario starts from the same stored state, a clean run of BASE_FIRST..BASE_LAST (the
lake copied and re-pointed at the scenario's API, the warehouse cloned with CREATE DATABASE
... TEMPLATE), then feeds one bad input:
what the API sends (malformed JSON, a missing region, a duplicated half-hour: the emulator), what
is in a bronze file (a wrong type, a negative intensity, an unknown fuel: the file edited), or
what the operator asks for (a partition outside the definition, an invalid key, a 14-day request).

Each scenario adds a row to BAD_INPUT_MATRIX (fault / how injected / outcome / rows lost),
printed at the end of the module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pydantic
import pytest

from carbon_assets.bronze.checks import BRONZE_DAYS_COMPLETE, BRONZE_RECORDS_ON_GRID
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.day_assembly import whole_days
from carbon_assets.bronze.request_plan import RANGE_TOO_LONG_MESSAGE, plan_requests
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.definitions import build_resources
from carbon_assets.emulator import EmulatorConfig, regional_period_records, start_emulator
from carbon_assets.gold.checks import GOLD_REGIONS_PER_DATE
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.lake import read_parquet_table
from carbon_assets.lake_source import record_lake_source
from carbon_assets.partitions import DayRange
from carbon_assets.silver.checks import (
    SILVER_INTENSITY_IN_RANGE,
    SILVER_KNOWN_REGIONS,
    SILVER_NO_CONFLICTING_DUPLICATES,
    SILVER_NO_UNKNOWN_FUELS,
)
from carbon_assets.warehouse.resource import dispose_engines
from carbon_assets_tests.faults.common import (
    NATIONAL_CHAIN,
    REPO,
    FaultRecord,
    assert_lake_whole,
    assert_same_dump,
    check_results,
    closed_port_url,
    edit_bronze_day,
    failing_dates,
    file_bytes,
    first_region,
    leftovers,
    materialized_assets,
    output_metadata,
    report_matrix,
    rows_lost,
    step_failures,
    warehouse_dump,
)
from carbon_assets_tests.helpers import FAST_API, materialize_range, pages, small_filesystem
from carbon_assets_tests.postgres_helpers import admin_sql, create_database, drop_database

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SEED = 7
BASE_FIRST, BASE_LAST = "2024-03-01", "2024-03-03"  # stored before every scenario
BAD_DAY = "2024-03-02"  # the stored day whose bronze file a scenario edits
NEW_DAY, NEW_DAY_2 = "2024-03-04", "2024-03-05"  # days a scenario fetches from a faulty API
ROWS_PER_DAY = 18

BAD_INPUT_MATRIX: list[FaultRecord] = []


@pytest.fixture(scope="module", autouse=True)
def _print_matrix(request):
    yield
    report_matrix(request, "Bad input matrix (test_bad_inputs.py)", BAD_INPUT_MATRIX)


# --- the stored state every scenario starts from --------------------------------------------


@dataclass
class Baseline:
    data_dir: Path
    database: str  # name of the template database on the 5432 service
    dump: dict[str, list[tuple]]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, spark):
    data_dir = tmp_path_factory.mktemp("baseline") / "data"
    name, url = create_database("service", None)
    try:
        with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
            result = materialize_range(
                build_resources(str(data_dir), emulator.base_url, url), BASE_FIRST, BASE_LAST
            )
        assert result.success, step_failures(result)
        dump = warehouse_dump(url)
        assert len(dump["carbon_intensity_daily"]) == 3 * ROWS_PER_DAY
        dispose_engines()  # no connection may stay open on a template database
        yield Baseline(data_dir, name, dump)
    finally:
        drop_database("service", None, name)


@dataclass
class Stored:
    """A scenario's own copy of the baseline: lake folder and warehouse URL."""

    data_dir: Path
    url: str
    baseline: Baseline

    def resources(
        self, api_base_url: str | None = None, database_url: str | None = None, **api_options
    ):
        """A run's resources over this lake, against `api_base_url` (else a closed port: the
        scenario needs no API). The copied lake is re-pointed at that API first, as an
        operator moving a lake to another API would: the baseline's emulator has stopped, and a
        lake refuses an API it was not filled from."""
        api_base_url = api_base_url or closed_port_url()
        record_lake_source(self.data_dir, api_base_url, emulator=True)
        return build_resources(
            str(self.data_dir), api_base_url, database_url or self.url, **(FAST_API | api_options)
        )

    def bronze_unchanged(self) -> bool:
        return file_bytes(self.data_dir / "bronze") == file_bytes(self.baseline.data_dir / "bronze")

    def layer_unchanged(self, layer: str) -> bool:
        return file_bytes(self.data_dir / layer) == file_bytes(self.baseline.data_dir / layer)

    def warehouse_lost(self) -> int:
        """Baseline rows no longer in the warehouse (unchanged rows count as kept)."""
        return rows_lost(warehouse_dump(self.url), self.baseline.dump)


@pytest.fixture
def stored(tmp_path, baseline):
    data_dir = tmp_path / "data"
    shutil.copytree(baseline.data_dir, data_dir)
    name = f"carbon_test_{uuid.uuid4().hex[:12]}"
    admin_sql("service", None, f"CREATE DATABASE {name} TEMPLATE {baseline.database}")
    yield Stored(data_dir, f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}", baseline)
    drop_database("service", None, name)


def silver_rows(data_dir: Path, day: str):
    d = dt.date.fromisoformat(day)
    return read_parquet_table(data_dir / "silver", DayRange(d, d))


# --- what the API sends ------------------------------------------------------------------


def test_malformed_json_loses_the_days_naming_the_cause_and_keeps_what_is_stored(stored):
    # Every answer is cut in half; refetch=True asks again for the stored days too.
    with start_emulator(EmulatorConfig(seed=SEED, rate_truncated=1.0)) as emulator:
        result = materialize_range(
            stored.resources(emulator.base_url, max_attempts=2),
            BASE_FIRST,
            NEW_DAY_2,
            run_config={"ops": {"bronze_carbon_intensity": {"config": {"refetch": True}}}},
        )
    assert not result.success
    failures = step_failures(result)
    # The national answers are cut too: both bronze assets fail, each naming the days it asked
    # for (the national one only the new days: refetch was asked of the regional one).
    assert set(failures) == {"bronze_carbon_intensity", "bronze_national_intensity"}
    for asset, first, count in (
        ("bronze_carbon_intensity", BASE_FIRST, 5),
        ("bronze_national_intensity", NEW_DAY, 2),
    ):
        message = failures[asset]
        assert f"{count} day(s) could not be fetched; no day was stored" in message
        for day in DayRange.from_keys(first, NEW_DAY_2).days():
            assert f"{day.isoformat()}: malformed" in message, message
    assert stored.bronze_unchanged(), "a failed re-fetch must leave the stored files as they were"
    assert stored.layer_unchanged("silver") and stored.layer_unchanged("gold")
    assert materialized_assets(result) == set()
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    assert not leftovers(stored.data_dir)
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "malformed JSON from the API",
            "emulator rate_truncated=1.0 (every body cut in half), "
            "refetch of 3 stored days + 2 new, max_attempts=2",
            "bronze fails listing the 5 days, each "
            '"malformed: malformed (gave up after 2 attempts to <url>)"; '
            "stored files byte-identical, nothing downstream runs",
            "0",
        )
    )


MISSING_HALF_HOUR = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)


def test_a_missing_region_fails_the_bronze_check_and_a_missing_region_day_fails_the_gold_check(
    stored,
):
    region_gone_all_day = {
        (dt.datetime(2024, 3, 5, tzinfo=dt.UTC) + dt.timedelta(minutes=30 * i), 5)
        for i in range(48)
    }
    config = EmulatorConfig(
        seed=SEED, missing_region_periods={(MISSING_HALF_HOUR, 5), *region_gone_all_day}
    )
    with start_emulator(config) as emulator:
        result = materialize_range(
            stored.resources(emulator.base_url, empty_attempts=1), BASE_FIRST, NEW_DAY_2
        )
    assert result.success, step_failures(result)  # neither check blocks: the run carries on
    found = check_results(result)
    bronze = found[BRONZE_DAYS_COMPLETE]
    assert not bronze.passed
    assert bronze.metadata["incomplete_half_hours_by_date"].value == {NEW_DAY: 47, NEW_DAY_2: 0}
    assert failing_dates(found[GOLD_REGIONS_PER_DATE]) == [NEW_DAY_2]
    assert not found[GOLD_REGIONS_PER_DATE].passed
    passed = {name for name, check in found.items() if check.passed}
    assert passed == set(found) - {BRONZE_DAYS_COMPLETE, GOLD_REGIONS_PER_DATE}
    store = BronzeStore(stored.data_dir / "bronze")
    assert store.read(dt.date(2024, 3, 4))["missing_half_hours"] == ["2024-03-04T10:00Z"]

    dump = warehouse_dump(stored.url)
    by_day = {}
    for row in dump["carbon_intensity_daily"]:
        by_day.setdefault(str(row[1]), {})[row[0]] = row
    half_hours = GOLD_COLUMNS.index("half_hours")
    assert len(by_day[NEW_DAY]) == 18 and by_day[NEW_DAY][5][half_hours] == 47
    assert len(by_day[NEW_DAY_2]) == 17 and 5 not in by_day[NEW_DAY_2]
    assert stored.warehouse_lost() == 0
    assert_lake_whole(stored.data_dir)
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a region missing from the API's answer",
            "emulator missing_region_periods: region 5 at 2024-03-04T10:00Z, and region 5 all day "
            "2024-03-05; empty_attempts=1",
            "days stored incomplete; bronze_days_complete fails with "
            "{2024-03-04: 47, 2024-03-05: 0} half-hours; "
            "gold_18_regions_per_date fails naming 2024-03-05 (17 regions); "
            "run succeeds (warnings), "
            "warehouse gets region 5 with half_hours=47 and a 17-row day",
            "0",
        )
    )


DUPLICATED = dt.datetime(2024, 3, 4, 10, 0, tzinfo=dt.UTC)


def test_a_duplicated_half_hour_keeps_the_later_copy_and_the_conflict_is_flagged(stored):
    with start_emulator(EmulatorConfig(seed=SEED, duplicate_periods={DUPLICATED})) as emulator:
        result = materialize_range(stored.resources(emulator.base_url), BASE_FIRST, NEW_DAY)
    assert result.success, step_failures(result)  # a warning: the run carries on
    found = check_results(result)
    assert {name for name, check in found.items() if not check.passed} == {
        SILVER_NO_CONFLICTING_DUPLICATES
    }
    conflict = found[SILVER_NO_CONFLICTING_DUPLICATES]
    assert failing_dates(conflict) == [NEW_DAY]
    assert conflict.metadata["conflicting_half_hours"].value == {"2024-03-04T10:00Z": 18}
    assert conflict.description == (
        "The API sent conflicting versions of: 2024-03-04T10:00Z (18 regions)"
    )
    assert output_metadata(result, "silver_carbon_intensity")["conflicting_duplicates"] == 18
    document = BronzeStore(stored.data_dir / "bronze").read(dt.date(2024, 3, 4))
    froms = [r["from"] for s in document["sources"] for r in s["data"]]
    assert froms.count("2024-03-04T10:00Z") == 2  # bronze keeps what the API sent

    silver = silver_rows(stored.data_dir, NEW_DAY)
    assert len(silver) == 48 * 18
    at_ten = silver[pd.to_datetime(silver["timestamp"], utc=True) == pd.Timestamp(DUPLICATED)]
    first_copy = {
        r["regionid"]: r["intensity"]["forecast"] for r in regional_period_records(DUPLICATED, SEED)
    }
    assert dict(zip(at_ten["regionid"], at_ten["intensity_forecast"])) == {
        regionid: forecast + 7
        for regionid, forecast in first_copy.items()  # the later copy won
    }
    assert set(at_ten["conflicting_versions"]) == {2}
    assert silver["conflicting_versions"].notna().sum() == 18
    gold = read_parquet_table(
        stored.data_dir / "gold", DayRange(dt.date(2024, 3, 4), dt.date(2024, 3, 4))
    )
    assert set(gold["half_hours"]) == {48}
    assert stored.warehouse_lost() == 0
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a duplicated half-hour",
            "emulator duplicate_periods={2024-03-04T10:00Z} "
            "(second copy: forecast +7, 2 points of mix moved)",
            "bronze keeps both copies (49 periods); silver keeps the later one, 48 x 18 rows, "
            "conflicting_versions = 2 on the 18 rows of 10:00; silver's metadata "
            "conflicting_duplicates = 18; silver_no_conflicting_duplicates fails (warning) naming "
            "2024-03-04T10:00Z (18 regions); every other check passes; gold half_hours = 48; "
            "run succeeds",
            "0",
        )
    )


def test_an_unknown_region_is_refused_by_a_blocking_check_and_never_reaches_the_warehouse(
    stored,
):
    """Region 19 'Atlantis' in every half-hour of NEW_DAY (the other days are clean)."""
    config = EmulatorConfig(seed=SEED, unknown_region_dates={dt.date(2024, 3, 4)})
    with start_emulator(config) as emulator:
        result = materialize_range(stored.resources(emulator.base_url), BASE_FIRST, NEW_DAY_2)
    found = check_results(result)
    check = found[SILVER_KNOWN_REGIONS]
    assert not check.passed and failing_dates(check) == [NEW_DAY]
    assert check.metadata["unknown_regions_by_date"].value == {NEW_DAY: ["19 (Atlantis)"]}
    assert check.metadata["failing_rows"].value == 48
    assert check.description == f"Regions the API does not have: {NEW_DAY}: 19 (Atlantis)"
    # Blocking: the run stops before gold, for every day of the range.
    assert not result.success
    assert materialized_assets(result) == {
        "bronze_carbon_intensity",
        "silver_carbon_intensity",
        *NATIONAL_CHAIN,
    }
    assert stored.layer_unchanged("gold")
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    assert set(silver_rows(stored.data_dir, NEW_DAY)["regionid"]) == set(range(1, 20))  # kept

    # The operator decides to load the range anyway: gold keeps the 18 regions only.
    again = materialize_range(
        stored.resources(),
        BASE_FIRST,
        NEW_DAY_2,
        selection=["gold_carbon_intensity_daily", "carbon_intensity_daily"],
    )
    assert again.success, step_failures(again)
    assert all(check.passed for check in check_results(again).values())
    dump = warehouse_dump(stored.url)
    regions = {row[0] for row in dump["carbon_intensity_daily"]}
    assert regions == set(range(1, 19)) and len(dump["carbon_intensity_daily"]) == 5 * 18
    assert [row[0] for row in dump["dim_region"]] == list(range(1, 19))
    assert stored.warehouse_lost() == 0
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a region the API does not have",
            "emulator unknown_region_dates={2024-03-04}: region 19 'Atlantis' in every "
            "half-hour of the day",
            "bronze and silver keep it; blocking silver_known_regions fails naming "
            '{"2024-03-04": ["19 (Atlantis)"]} (48 rows); gold and the warehouse are not '
            "materialized for any day of the range; run fails. Gold and the warehouse "
            "materialized afterwards on their own load the 5 days with the 18 regions only: "
            "no region 19 in carbon_intensity_daily or dim_region",
            "0",
        )
    )


OFF_GRID = dt.datetime(2024, 3, 4, 9, 15, tzinfo=dt.UTC)


def test_a_record_off_the_half_hour_grid_is_kept_in_bronze_and_flagged(stored):
    with start_emulator(EmulatorConfig(seed=SEED, off_grid_periods={OFF_GRID})) as emulator:
        result = materialize_range(stored.resources(emulator.base_url), BASE_FIRST, NEW_DAY)
    assert result.success, step_failures(result)  # a warning: the run carries on
    found = check_results(result)
    check = found[BRONZE_RECORDS_ON_GRID]
    assert not check.passed and failing_dates(check) == [NEW_DAY]
    assert check.metadata["off_grid_starts_by_date"].value == {NEW_DAY: ["2024-03-04T09:15Z"]}
    assert check.description == f"Records off the half-hour grid: {NEW_DAY}: 2024-03-04T09:15Z"
    assert {name for name, c in found.items() if not c.passed} == {BRONZE_RECORDS_ON_GRID}

    document = BronzeStore(stored.data_dir / "bronze").read(dt.date(2024, 3, 4))
    records = [r for s in document["sources"] for r in s["data"]]
    (kept,) = [r for r in records if r["from"] == "2024-03-04T09:15Z"]  # as the API sent it
    assert kept["to"] == "2024-03-04T09:45Z"
    assert kept["regions"] == regional_period_records(OFF_GRID.replace(minute=0), SEED)
    assert len(records) == 49 and document["complete"]

    silver = silver_rows(stored.data_dir, NEW_DAY)
    assert len(silver) == 48 * 18
    assert not (pd.to_datetime(silver["timestamp"], utc=True).dt.minute % 30).any()
    gold = read_parquet_table(
        stored.data_dir / "gold", DayRange(dt.date(2024, 3, 4), dt.date(2024, 3, 4))
    )
    assert set(gold["half_hours"]) == {48} and len(gold) == 18
    assert stored.warehouse_lost() == 0
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a record off the half-hour grid",
            "emulator off_grid_periods={2024-03-04T09:15Z} (an extra record 09:15-09:45)",
            "bronze keeps it as sent (49 records, off_grid_starts in the file); "
            "bronze_records_on_half_hour_grid fails (warning) naming 2024-03-04: "
            "2024-03-04T09:15Z; silver leaves it out (48 x 18 rows), gold half_hours = 48; "
            "run succeeds",
            "0",
        )
    )


def test_no_data_with_max_attempts_below_empty_attempts_is_stored_incomplete_not_a_crash():
    """The API has no data for a day (as before 2018-05-10); max_attempts=2 < empty_attempts=3."""
    handed_over = {}
    with start_emulator(EmulatorConfig(seed=SEED, empty_dates={dt.date(2024, 3, 6)})) as emulator:
        api = CarbonIntensityApi(base_url=emulator.base_url, max_attempts=2, **FAST_API)
        try:
            plan = api.plan([dt.date(2024, 3, 6)])
            handed_over.update(whole_days(plan, api.fetch(plan)))
            observed = "the day is handed over to be stored incomplete"
        except Exception as error:  # noqa: BLE001 - recorded, then judged below
            observed = f"{type(error).__name__}: {error}"
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "no data for a day, with max_attempts < empty_attempts",
            "emulator empty_dates={2024-03-06}; CarbonIntensityApi(max_attempts=2), "
            "empty_attempts=3 (default)",
            observed,
            "0",
        )
    )
    assert list(handed_over) == [dt.date(2024, 3, 6)], observed


# --- what is in a bronze file ------------------------------------------------------------


def perc_abc(document: dict) -> None:
    first_region(document)["generationmix"][0]["perc"] = "abc"


def test_a_wrong_type_in_bronze_fails_silver_naming_the_file_and_keeps_everything_stored(stored):
    edit_bronze_day(stored.data_dir, BAD_DAY, perc_abc)
    result = materialize_range(stored.resources(), BASE_FIRST, BASE_LAST)
    assert not result.success
    failures = step_failures(result)
    assert list(failures) == ["silver_carbon_intensity"], failures
    message = failures["silver_carbon_intensity"]
    # The Python worker names the file and the place in it; Spark passes that on.
    assert (
        f"{stored.data_dir.resolve()}/bronze/2024/{BAD_DAY}.json.gz is not a bronze day document"
        in message
    )
    assert (
        "Expected `float | null`, got `str` - at "
        "`$.sources[0].data[0].regions[0].generationmix[0].perc`" in message
    )
    assert stored.layer_unchanged("silver") and stored.layer_unchanged("gold")
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    assert materialized_assets(result) == {"bronze_carbon_intensity", *NATIONAL_CHAIN}
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a wrong type in a bronze file",
            f'bronze/{BAD_DAY}.json.gz edited: region 1, 00:00, "perc": "abc"',
            f'silver fails: ".../{BAD_DAY}.json.gz is not a bronze day document: '
            "Expected `float | null`, "
            'got `str` - at `$.sources[0].data[0].regions[0].generationmix[0].perc`" '
            f"(the step error is {len(message):,} characters); "
            "silver, gold and warehouse unchanged",
            "0",
        )
    )


@pytest.mark.parametrize("how_much", ["one half-hour", "a whole day"])
def test_a_negative_intensity_fails_the_silver_check_naming_the_date(how_much, stored):
    def negative(document: dict) -> None:
        for period in range(1 if how_much == "one half-hour" else 48):
            first_region(document, regionid=1, period=period)["intensity"]["forecast"] = -5

    edit_bronze_day(stored.data_dir, BAD_DAY, negative)
    result = materialize_range(stored.resources(), BASE_FIRST, BASE_LAST)
    found = check_results(result)
    check = found[SILVER_INTENSITY_IN_RANGE]
    assert not check.passed
    assert failing_dates(check) == [BAD_DAY]
    assert check.metadata["failing_rows"].value == (1 if how_much == "one half-hour" else 48)
    # The check blocks: bad silver never reaches gold or the warehouse.
    assert not result.success
    assert materialized_assets(result) == {
        "bronze_carbon_intensity",
        "silver_carbon_intensity",
        *NATIONAL_CHAIN,
    }
    assert stored.layer_unchanged("gold")
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    outcome = (
        f"blocking silver_intensity_in_range fails naming 2024-03-02 "
        f"({1 if how_much == 'one half-hour' else 48} rows); gold and the warehouse are not "
        "materialized in that run; run fails"
    )
    lost = stored.warehouse_lost()
    assert lost == 0
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            f"negative intensity ({how_much})",
            f"bronze/{BAD_DAY}.json.gz edited: region 1 forecast -5 in {how_much}",
            outcome,
            str(lost),
        )
    )


def test_an_unknown_fuel_blocks_gold_and_the_warehouse(stored):
    def storage(document: dict) -> None:
        first_region(document)["generationmix"].append({"fuel": "storage", "perc": 1})

    edit_bronze_day(stored.data_dir, BAD_DAY, storage)
    result = materialize_range(stored.resources(), BASE_FIRST, BASE_LAST)
    found = check_results(result)
    check = found[SILVER_NO_UNKNOWN_FUELS]
    assert not check.passed and failing_dates(check) == [BAD_DAY]
    assert not result.success
    assert materialized_assets(result) == {
        "bronze_carbon_intensity",
        "silver_carbon_intensity",
        *NATIONAL_CHAIN,
    }
    assert stored.layer_unchanged("gold")
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    silver = silver_rows(stored.data_dir, BAD_DAY)
    kept = [dict(v) for v in silver["extra_fuels"] if v is not None and len(v)]
    assert kept == [{"storage": 1.0}]  # kept, not dropped
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "an unknown fuel",
            f'bronze/{BAD_DAY}.json.gz edited: {{"fuel":"storage","perc":1}} added to region 1, '
            "00:00",
            "blocking silver_no_unknown_fuels fails naming 2024-03-02 "
            "(silver keeps it in extra_fuels); "
            "gold and the warehouse are not materialized in that run; run fails",
            "0",
        )
    )


# --- the machine -------------------------------------------------------------------------


def test_a_full_disk_under_silver_fails_naming_the_file_and_keeps_every_stored_day(
    stored, monkeypatch
):
    # New code, so every day is written again (unchanged days would be left alone).
    monkeypatch.setattr("carbon_assets.spark.code_version", lambda *_: "new code")
    silver = stored.data_dir / "silver"
    kept = {path.relative_to(silver): path.read_bytes() for path in silver.rglob("*.parquet")}
    room = sum(pages(len(content)) for content in kept.values()) + 8 * 1024  # < one day file
    with small_filesystem(silver, room):
        for relative, content in kept.items():
            (silver / relative).parent.mkdir(parents=True, exist_ok=True)
            (silver / relative).write_bytes(content)
        result = materialize_range(stored.resources(), BASE_FIRST, BASE_LAST)
        after = {path.relative_to(silver): path.read_bytes() for path in silver.rglob("*.parquet")}
        temporary = [path.name for path in silver.rglob(".tmp-*")]
    assert not result.success
    failures = step_failures(result)
    assert list(failures) == ["silver_carbon_intensity"], failures
    message = failures["silver_carbon_intensity"]
    # Dagster's "Error occurred while handling output", caused by ours:
    first_line = next(line for line in message.splitlines() if "LakeWriteError: " in line)
    first_line = first_line.split("LakeWriteError: ", 1)[1]
    assert first_line.startswith(
        f"No space left on the device of {silver.resolve()}/date_recorded=2024-03-"
    ), first_line
    assert "while writing part-0.parquet" in first_line and "free space there" in first_line
    assert after == kept and not temporary  # every day whole, as it was
    assert stored.layer_unchanged("gold")
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "disk full under the lake",
            f"a {room // 1024} KiB tmpfs mounted on data/silver holding its 3 day files, "
            "with less room than one more; the 3 days materialized again",
            f'silver fails: "{first_line.replace(str(silver.resolve()), "data/silver")}"; '
            "every day file whole and unchanged, no temporary file; gold and the warehouse "
            "not materialized",
            "0",
        )
    )


def test_a_database_url_with_an_unescaped_at_fails_the_load_without_showing_the_password(stored):
    name = stored.url.rsplit("/", 1)[1]
    url = f"postgresql://postgres:Real7x@Pw0rdX9@127.0.0.1:5432/{name}"
    resources = stored.resources(database_url=url)
    result = materialize_range(
        resources, BASE_FIRST, BASE_LAST, selection=["carbon_intensity_daily"]
    )
    assert not result.success
    failures = step_failures(result)
    assert list(failures) == ["carbon_intensity_daily"], failures
    cause = next(line for line in failures["carbon_intensity_daily"].splitlines() if "@" in line)
    assert "CARBON_DATABASE_URL has more than one '@' before the host" in cause
    assert "percent-encode special characters" in cause
    everything = "\n".join(
        f"{event.message} {getattr(event.event_specific_data, 'error', '') or ''}"
        for event in result.all_events
    )
    for secret in ("Real7x", "Pw0rdX9"):
        assert secret not in everything + failures["carbon_intensity_daily"]
    assert_same_dump(warehouse_dump(stored.url), stored.baseline.dump)
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a password with an unescaped @ in the database URL",
            "CARBON_DATABASE_URL postgresql://postgres:Real7x@Pw0rdX9@127.0.0.1:5432/<db>, "
            "warehouse asset run",
            "the load fails before connecting: \"... CARBON_DATABASE_URL has more than one '@' "
            "before the host, so the host cannot be told apart from the password: percent-encode "
            'special characters ..."; no part of the password in any event; table unchanged',
            "0",
        )
    )


# --- what the operator asks for -----------------------------------------------------------


def dagster_cli(tmp_path: Path, partition_option: str, value: str) -> subprocess.Popen:
    env = os.environ | {
        "DAGSTER_HOME": str(tmp_path / f"dagster-home-{uuid.uuid4().hex[:6]}"),
        "CARBON_DATA_DIR": str(tmp_path / "cli-data"),
        "CARBON_API_BASE_URL": closed_port_url(),
        "CARBON_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
        "PYTHONPATH": str(REPO),
    }
    Path(env["DAGSTER_HOME"]).mkdir()
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "carbon_assets.definitions",
            "--select",
            "bronze_carbon_intensity",
            partition_option,
            value,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


CLI_CASES = {
    "before the first partition": ("--partition-range", "2017-01-01...2017-01-02", "2017-01-01"),
    "in the future": ("--partition-range", "2099-01-01...2099-01-02", "2099-01-01"),
    "invalid key (range)": ("--partition-range", "2024-13-45...2024-13-45", "2024-13-45"),
    "invalid key (single)": ("--partition", "2024-13-45", "2024-13-45"),
}


def test_the_cli_refuses_partitions_outside_the_definition_naming_the_key(tmp_path):
    processes = {
        name: dagster_cli(tmp_path, option, value) for name, (option, value, _) in CLI_CASES.items()
    }
    outputs = {name: process.communicate(timeout=300)[0] for name, process in processes.items()}
    for name, (_, value, key) in CLI_CASES.items():
        assert processes[name].returncode != 0, outputs[name][-2000:]
        expected = (
            "All selected assets must have a PartitionsDefinition containing the passed "
            f"partition key `{key}`"
        )
        assert expected in outputs[name], outputs[name][-2000:]
    assert not (tmp_path / "cli-data").exists()
    for name, (option, value, key) in CLI_CASES.items():
        BAD_INPUT_MATRIX.append(
            FaultRecord(
                f"partition key {name}",
                f"`dagster asset materialize --select bronze_carbon_intensity {option} {value}`",
                "refused before any run: DagsterInvalidSubsetError "
                f'"... containing the passed partition key `{key}`"',
                "0",
            )
        )


def test_the_python_api_refuses_an_invalid_partition_key_naming_it(tmp_path):
    data_dir = tmp_path / "data"
    with pytest.raises(ValueError, match="2024-13-45") as raised:
        materialize_range(
            build_resources(
                str(data_dir), closed_port_url(), "postgresql://postgres@127.0.0.1:5432/postgres"
            ),
            "2024-13-45",
            "2024-13-45",
            selection=["bronze_carbon_intensity"],
        )
    assert not data_dir.exists()
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "invalid partition key (Python API)",
            'materialize(..., tags={range start/end: "2024-13-45"})',
            f'raises before any step: {type(raised.value).__name__} "{raised.value}"',
            "0",
        )
    )


@pytest.mark.parametrize("first,last", [("2017-01-01", "2017-01-02"), ("2099-01-01", "2099-01-02")])
def test_the_python_api_refuses_a_range_outside_the_partitions(first, last, tmp_path):
    data_dir = tmp_path / "data"
    with start_emulator(EmulatorConfig(seed=SEED)) as emulator:
        try:
            result = materialize_range(
                build_resources(
                    str(data_dir),
                    emulator.base_url,
                    "postgresql://postgres@127.0.0.1:5432/postgres",
                    **FAST_API,
                ),
                first,
                last,
                selection=["bronze_carbon_intensity"],
            )
            error = "\n".join(step_failures(result).values())
            observed = (
                "run succeeded" if result.success else f"run failed: {error.splitlines()[-1][:300]}"
            )
        except Exception as raised:  # noqa: BLE001 - recorded, then judged below
            result, error = None, f"{type(raised).__name__}: {raised}"
            observed = f"raised {error[:300]}"
        requests = emulator.stats()["requests_total"]
    files = sorted(p.name for p in data_dir.rglob("*.json.gz"))
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            f"partition range {first}...{last} (Python API)",
            "materialize(..., tags={dagster/asset_partition_range_start/end})",
            f"{observed}; {requests} API request(s); bronze files written: {files or 'none'}",
            "0",
        )
    )
    assert requests == 0 and not files, f"{observed}; {requests} requests; files {files}"
    assert result is None or not result.success
    assert first in error


def test_a_14_day_request_is_refused_with_a_clear_message():
    with pytest.raises(pydantic.ValidationError) as raised:
        CarbonIntensityApi(days_per_request=14)
    assert "days_per_request" in str(raised.value)
    assert "less than or equal to 13" in str(raised.value)
    with pytest.raises(ValueError, match="the API rejects regional ranges of 14 days or more"):
        plan_requests([dt.date(2024, 1, 1)], 14)
    with (
        start_emulator(EmulatorConfig(seed=SEED)) as emulator,
        pytest.raises(urllib.error.HTTPError) as answer,
    ):
        urllib.request.urlopen(
            f"{emulator.base_url}/regional/intensity/2024-01-01T00:00Z/2024-01-15T00:00Z"
        )
    assert answer.value.code == 400
    assert json.loads(answer.value.read()) == {
        "error": {"code": "400 Bad Request", "message": RANGE_TOO_LONG_MESSAGE}
    }
    BAD_INPUT_MATRIX.append(
        FaultRecord(
            "a 14-day request",
            "CarbonIntensityApi(days_per_request=14); plan_requests(days, 14); "
            "GET of a 14-day path on the emulator",
            "refused at configuration: pydantic "
            '"days_per_request: Input should be less than or equal to 13"; '
            'plan_requests: "... the API rejects regional ranges of 14 days or more"; '
            "the emulator answers the real 400 "
            '"The date range you have specified is greater than 14 days."',
            "0",
        )
    )
