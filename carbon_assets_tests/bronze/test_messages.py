"""Bronze's messages count what happened: days stored, not days planned."""

from dagster import DagsterInstance, materialize

from carbon_assets.automation import range_tags
from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.lake import LakeResource
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.helpers import FAST_API


def test_a_run_that_stored_nothing_says_so(tmp_path):
    lake = LakeResource(data_dir=str(tmp_path))
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [bronze_carbon_intensity],
        resources={
            "lake": lake,
            # Port 9 (discard) refuses connections on loopback.
            "carbon_api": CarbonIntensityApi(
                base_url="http://127.0.0.1:9", max_attempts=1, **FAST_API
            ),
            "refresh_policy": RefreshPolicy(),
            "bronze_io_manager": BronzeJsonIOManager(lake=lake),
            # unused by a lake on disk (the API lock of an object-store lake)
            "warehouse": WarehouseDatabase(),
        },
        instance=instance,
        tags=range_tags("2024-01-01", "2024-01-03"),
        raise_on_error=False,
    )
    assert not result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("No day was stored (of 3 to fetch); 1 requests") for m in messages)
    assert not any("Fetched 3 days" in m or "every other day" in m for m in messages)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "3 day(s) could not be fetched; no day was stored" in (
        failure.event_specific_data.error.message
    )
    assert not (tmp_path / "source.json").exists()  # nothing stored: nothing recorded
