"""One lake, one source: the lake records the API it was filled from, and a run against another
API over it refuses in one line before it sends a request."""

import datetime as dt
import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from carbon_assets.automation import range_tags
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets.lake_source import (
    SOURCE_FILE,
    LakeSource,
    LakeSourceMismatch,
    check_lake_source,
    read_lake_source,
    record_lake_source,
)
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.helpers import FAST_API, real_periods, source

REAL = "https://api.carbonintensity.org.uk"


def run_bronze(lake_dir: Path, base_url: str, first: str, last: str):
    lake = LakeResource(data_dir=str(lake_dir))
    return materialize(
        [bronze_carbon_intensity],
        resources={
            "lake": lake,
            "carbon_api": CarbonIntensityApi(base_url=base_url, **FAST_API),
            "refresh_policy": RefreshPolicy(),
            "bronze_io_manager": BronzeJsonIOManager(lake=lake),
            # unused by a lake on disk (the API lock of an object-store lake)
            "warehouse": WarehouseDatabase(),
        },
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(first, last),
        raise_on_error=False,
    )


def failure_message(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message.strip()


def lake_files(lake_dir: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(lake_dir)): path.read_bytes()
        for path in sorted(lake_dir.rglob("*"))
        if path.is_file() and path.name != ".api.lock"
    }


def test_a_new_lake_has_no_source_and_accepts_any(tmp_path):
    assert read_lake_source(tmp_path) is None
    check_lake_source(tmp_path, REAL)


def test_the_recorded_source_is_compared_without_its_trailing_slash(tmp_path):
    recorded = record_lake_source(tmp_path, REAL + "/", emulator=False)
    assert recorded.api_base_url == REAL
    assert read_lake_source(tmp_path) == recorded
    assert json.loads((tmp_path / SOURCE_FILE).read_text())["emulator"] is False
    check_lake_source(tmp_path, REAL)
    check_lake_source(tmp_path, REAL + "/")
    check_lake_source(tmp_path, "HTTPS://API.carbonintensity.org.uk/")
    with pytest.raises(LakeSourceMismatch) as refused:
        check_lake_source(tmp_path, "http://127.0.0.1:8080")
    message = str(refused.value)
    assert "\n" not in message
    assert str(tmp_path) in message and REAL in message and "http://127.0.0.1:8080" in message
    assert "CARBON_LAKE_URL" in message and "CARBON_API_BASE_URL back to" in message


def test_a_lake_without_source_json_is_known_by_its_day_files(tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    day = dt.date(2019, 8, 25)
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    url = "http://127.0.0.1:9999/regional/intensity/2019-08-25T00:00Z/2019-08-26T00:00Z"
    store.write(build_document(day, [{**source(records), "url": url, "emulator": True}]))
    assert read_lake_source(tmp_path) == LakeSource(
        "http://127.0.0.1:9999", True, "2024-01-01T00:00:00+00:00"
    )
    check_lake_source(tmp_path, "http://127.0.0.1:9999/")
    with pytest.raises(LakeSourceMismatch, match="holds data from http://127.0.0.1:9999 "):
        check_lake_source(tmp_path, REAL)


def test_an_unreadable_source_file_is_named(tmp_path):
    (tmp_path / SOURCE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=f"{SOURCE_FILE} cannot be read"):
        check_lake_source(tmp_path, REAL)


def test_a_second_emulator_over_the_lake_of_the_first_refuses_before_any_request(tmp_path):
    lake = tmp_path / "lake"
    with start_emulator(EmulatorConfig(seed=3)) as first:
        assert run_bronze(lake, first.base_url, "2024-02-01", "2024-02-02").success
    assert read_lake_source(lake).api_base_url == first.base_url
    assert read_lake_source(lake).emulator is True
    before = lake_files(lake)
    for without_source_file in (False, True):
        if without_source_file:  # a lake filled before source.json: known by its day files
            (lake / SOURCE_FILE).unlink()
            before = lake_files(lake)
        with start_emulator(EmulatorConfig(seed=3)) as second:
            refused = run_bronze(lake, second.base_url, "2024-02-01", "2024-02-03")
            assert second.stats()["requests_total"] == 0
        assert not refused.success
        message = failure_message(refused)
        assert "\n" not in message, message
        assert first.base_url in message and second.base_url in message and str(lake) in message
        assert lake_files(lake) == before
