"""Validation at the edge: a period record silver could not read, or one with a physically
impossible value, carries problems naming the half-hour, the region and the value."""

import copy
import datetime as dt

import msgspec
import pytest
from aiohttp import web
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, materialize

from carbon_assets.automation import range_tags
from carbon_assets.bronze import records
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.checks import BRONZE_DAYS_COMPLETE, bronze_checks
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.records import Period, PeriodRecord
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.bronze.test_hostile_api import (
    BAD_HALF_HOUR,
    DAY,
    range_body,
    serving,
    with_value,
)
from carbon_assets_tests.helpers import FAST_API, real_periods

# 2019-08-25T12:30Z; region index 2 is region 3, North West England.
RECORD = real_periods()[0]


def _with(change) -> Period:
    record = copy.deepcopy(RECORD)
    change(record)
    return Period.from_record(record)


def _share(record: dict, region: int, fuel: str) -> dict:
    return next(s for s in record["regions"][region]["generationmix"] if s["fuel"] == fuel)


def test_real_records_have_no_problems():
    periods = [Period.from_record(record) for record in real_periods()]
    assert all(period.problems == () and period.full for period in periods)


def test_an_absurd_share_is_named_with_half_hour_region_and_value():
    period = _with(lambda r: _share(r, 2, "gas").update(perc=1e9))
    assert period.problems == (
        "2019-08-25T12:30Z region 3 (North West England): gas share 1e+09 % is outside 0-100",
    )
    assert period.full  # the shape is whole: only the value is wrong


@pytest.mark.parametrize(
    ("forecast", "problem"),
    [
        (2_000_000_000, "intensity forecast 2000000000 gCO2/kWh is outside 0-2000"),
        (2000.0000001, "intensity forecast 2000.0000001 gCO2/kWh is outside 0-2000"),
        (1e15, "intensity forecast 1e+15 gCO2/kWh is outside 0-2000"),
        (-1, "intensity forecast -1 gCO2/kWh is outside 0-2000"),
        (2000.5, "intensity forecast 2000.5 gCO2/kWh is outside 0-2000"),
    ],
)
def test_an_intensity_outside_0_to_2000_is_a_problem(forecast, problem):
    period = _with(lambda r: r["regions"][0]["intensity"].update(forecast=forecast))
    assert period.problems == (f"2019-08-25T12:30Z region 1 (North Scotland): {problem}",)


def test_shares_that_do_not_sum_to_100_are_a_problem():
    period = _with(lambda r: _share(r, 17, "wind").update(perc=_share(r, 17, "wind")["perc"] + 1))
    [problem] = period.problems
    assert problem.startswith("2019-08-25T12:30Z region 18 (GB): fuel shares sum to 10")
    assert problem.endswith("%, not 100 +/- 0.5")


def test_a_fuel_given_twice_counts_its_last_share_as_silver_does():
    def twice(record):
        share = _share(record, 4, "coal")
        record["regions"][4]["generationmix"].append({**share, "perc": share["perc"] + 30})

    [problem] = _with(twice).problems
    assert "region 5 (Yorkshire): fuel shares sum to" in problem


def test_a_region_without_shares_is_short_not_invalid():
    period = _with(lambda r: [s.update(perc=None) for s in r["regions"][6]["generationmix"]])
    assert period.problems == ()


@pytest.mark.parametrize(
    "value",
    [b'"abc"', b"1e309", b'"10^15"', b"true", b"[1]"],
)
def test_a_value_silver_cannot_decode_keeps_the_raw_bytes_and_is_a_problem(value):
    raw = msgspec.json.encode(RECORD)
    forecast = b'"forecast":' + str(RECORD["regions"][2]["intensity"]["forecast"]).encode()
    assert raw.count(forecast) >= 1
    bad = raw.replace(forecast, b'"forecast":' + value, 1)
    period = Period(bad)
    assert period.raw == bad
    [problem] = period.problems
    assert problem.startswith("2019-08-25T12:30Z region ")
    assert "cannot be read as the API's record" in problem
    assert "$.regions[" in problem and "intensity.forecast" in problem
    assert not period.full
    with pytest.raises(msgspec.DecodeError):  # silver could not have read it
        msgspec.json.decode(bad, type=PeriodRecord)


def test_a_region_id_beyond_int32_is_a_problem():
    period = _with(lambda r: r["regions"][0].update(regionid=2**40))
    assert period.problems == (
        f"2019-08-25T12:30Z region {2**40} (North Scotland): regionid {2**40} is not a region id",
    )


def test_only_a_record_without_a_readable_from_raises():
    with pytest.raises(ValueError, match="not a period record"):
        Period(b'{"to": "2019-08-25T13:00Z", "regions": []}')
    with pytest.raises(ValueError, match="not a period record"):
        Period(b'{"from": "yesterday"}')
    with pytest.raises(ValueError, match="not a period record"):
        Period(b"[]")
    period = Period(b'{"from": "2019-08-25T12:30Z", "regions": "none"}')
    assert period.regions == 0 and len(period.problems) == 1


def test_from_record_and_raw_bytes_give_the_same_problems():
    record = copy.deepcopy(RECORD)
    _share(record, 2, "gas")["perc"] = 1e9
    assert Period.from_record(record).problems == Period(msgspec.json.encode(record)).problems


def test_the_checked_schema_names_the_fields_of_silvers_schema():
    """records.py decodes with a bounded copy of PeriodRecord; both must read the same fields."""
    pairs = [
        (records._CheckedRecord, records.PeriodRecord),
        (records._CheckedRegion, records.RegionRecord),
        (records._CheckedIntensity, records.Intensity),
        (records._CheckedShare, records.FuelShare),
    ]
    for checked, silvers in pairs:
        assert [(f.name, f.encode_name) for f in msgspec.structs.fields(checked)] == [
            (f.name, f.encode_name) for f in msgspec.structs.fields(silvers)
        ]


# --- a run that meets an impossible value ------------------------------------------------

FIRST, LAST = "2024-01-01", "2024-01-03"
GAS = (rb'\{"fuel":"gas","perc":[0-9.]+\}', b'{"fuel":"gas","perc":1e9}')


def bronze_run(lake_dir, base_url: str, selection=None):
    lake = LakeResource(data_dir=str(lake_dir))
    return materialize(
        [bronze_carbon_intensity, bronze_checks],
        resources={
            "lake": lake,
            "carbon_api": CarbonIntensityApi(base_url=base_url, invalid_attempts=1, **FAST_API),
            "refresh_policy": RefreshPolicy(),
            "bronze_io_manager": BronzeJsonIOManager(lake=lake),
            # unused by a lake on disk (the API lock of an object-store lake)
            "warehouse": WarehouseDatabase(),
        },
        selection=selection,
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(FIRST, LAST),
        raise_on_error=False,
    )


def test_an_invalid_day_fails_the_run_after_the_others_are_stored_and_is_fetched_again(tmp_path):
    async def hostile(request):
        body = range_body(request.path)
        if BAD_HALF_HOUR.encode() in body:
            body = with_value(body, *GAS)
        return web.Response(body=body, content_type="application/json")

    with serving(hostile) as (base_url, _):
        failed = bronze_run(tmp_path, base_url)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    error = failure.event_specific_data.error.message
    assert "1 day(s) came with values" in error and "fetches them again" in error
    problem = "2024-01-02T10:00Z region 3 (North West England): gas share 1e+09 % is outside 0-100"
    assert f"2024-01-02: {problem}" in error
    store = BronzeStore(tmp_path / "bronze")
    assert store.is_complete(dt.date(2024, 1, 1)) and store.is_complete(dt.date(2024, 1, 3))
    summary = store.summary(DAY)
    assert summary["complete"] is False
    assert summary["invalid_half_hours"] == [{"start": BAD_HALF_HOUR, "problems": [problem]}]

    checked = bronze_run(tmp_path, "http://127.0.0.1:9", AssetSelection.all_asset_checks())
    [complete] = [
        e.event_specific_data
        for e in checked.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.check_name == BRONZE_DAYS_COMPLETE
    ]
    assert not complete.passed and complete.severity == AssetCheckSeverity.ERROR
    assert complete.metadata["invalid_days"].value == 1

    port = int(base_url.rsplit(":", 1)[1])  # the same API, corrected
    with serving(_clean, port=port) as (again_url, hits):
        assert again_url == base_url
        healed = bronze_run(tmp_path, base_url)
    assert healed.success
    assert len(hits) == 1 and "2024-01-02T00:00Z/2024-01-03T00:00Z" in hits[0]
    assert store.is_complete(DAY) and "invalid_half_hours" not in store.summary(DAY)
    bronze = healed.asset_materializations_for_node("bronze_carbon_intensity")[0].metadata
    assert bronze["days_fetched_invalid"].value == 1 and bronze["days_invalid"].value == 0


async def _clean(request):
    return web.Response(body=range_body(request.path), content_type="application/json")


def test_an_integer_beyond_any_float_is_named_not_raised():
    period = _with(lambda r: r["regions"][0]["intensity"].update(forecast=10**400))
    [problem] = period.problems
    assert "intensity forecast 100000000000... (401 digits) gCO2/kWh is outside" in problem
