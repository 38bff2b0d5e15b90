"""Damaged bronze day files in a range: each is named, kept aside, its day fetched again, and the
range loads whole. Through the real bronze asset against the emulator over loopback."""

from __future__ import annotations

import datetime as dt
import gzip
import logging

from dagster import AssetSelection, DagsterInstance, materialize

from carbon_assets.automation import range_tags
from carbon_assets.bronze.store import DAMAGED_FOLDER, BronzeStore
from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources
from carbon_assets.lake import LakeResource
from carbon_assets_tests.faults.common import check_results, output_metadata
from carbon_assets_tests.helpers import FAST_API
from carbon_assets_tests.postgres_helpers import query

FIRST, LAST = "2024-02-01", "2024-02-06"
BRONZE = "bronze_carbon_intensity"
D = dt.date.fromisoformat


def run_bronze(resources, refetch: bool = False) -> tuple[dict, list[str]]:
    """Bronze (and its checks) over the range; its metadata and every message it logged."""
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources=resources,
        selection=AssetSelection.assets(BRONZE),
        instance=instance,
        tags=range_tags(FIRST, LAST),
        run_config={"ops": {BRONZE: {"config": {"refetch": refetch}}}},
    )
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    return output_metadata(result, BRONZE), messages


def damage(store: BronzeStore) -> dict[dt.date, bytes]:
    """Three days damaged the ways a lake gets damaged; what each file now holds."""
    truncated, garbage, json_cut = D("2024-02-02"), D("2024-02-04"), D("2024-02-05")
    good = store.path(truncated).read_bytes()
    content = gzip.decompress(store.path(json_cut).read_bytes())
    damaged = {
        truncated: good[: len(good) // 2],  # an interrupted copy: a valid gzip start
        garbage: b"this is no gzip file",
        json_cut: gzip.compress(content[: len(content) // 2]),  # a whole gzip, half a document
    }
    for day, payload in damaged.items():
        store.path(day).write_bytes(payload)
    return damaged


def assert_set_aside(store: BronzeStore, damaged: dict[dt.date, bytes], messages: list[str]):
    kept = sorted((store.root / DAMAGED_FOLDER).glob("*/*"))
    assert [path.name[:10] for path in kept] == [day.isoformat() for day in sorted(damaged)]
    for path in kept:
        day = D(path.name[:10])
        assert path.read_bytes() == damaged[day]
        (said,) = [m for m in messages if str(store.path(day)) in m and str(path) in m]
        assert said.startswith("Damaged bronze day file") and "fetches it again" in said
    # The range is whole again, and nothing reads the files set aside.
    assert store.stored_days() == [D(FIRST) + dt.timedelta(days=i) for i in range(6)]
    for day in store.stored_days():
        document = store.read(day)
        assert document["complete"] and document["region_records"] == 48 * 18, day


def test_damaged_days_are_named_set_aside_and_fetched_again(tmp_path, emulator, caplog):
    lake_dir = str(tmp_path / "lake")
    resources = build_resources(lake_dir, emulator.base_url, None, **FAST_API)
    store = BronzeStore(LakeResource(data_dir=lake_dir).bronze)
    first, _ = run_bronze(resources)
    assert first["days_written"] == 6
    damaged = damage(store)

    with caplog.at_level(logging.WARNING):
        metadata, messages = run_bronze(resources)
    # Bronze reports through the run's log, which reaches Python logging here.
    assert_set_aside(store, damaged, messages + caplog.messages)
    assert metadata["days_left_as_they_are"] == 3
    assert metadata["days_fetched_new"] == 3 and metadata["days_written"] == 3

    # Settled and whole now: the next run fetches nothing.
    again, _ = run_bronze(resources)
    assert again["days_left_as_they_are"] == 6 and again["days_written"] == 0


def test_a_refetch_merges_with_nothing_from_a_damaged_file(tmp_path, emulator, caplog):
    lake_dir = str(tmp_path / "lake")
    resources = build_resources(lake_dir, emulator.base_url, None, **FAST_API)
    store = BronzeStore(LakeResource(data_dir=lake_dir).bronze)
    run_bronze(resources)
    damaged = damage(store)

    with caplog.at_level(logging.WARNING):
        metadata, messages = run_bronze(resources, refetch=True)
    assert_set_aside(store, damaged, messages + caplog.messages)
    assert metadata["days_fetched_refetch"] == 6 and metadata["days_written"] == 6
    for day in damaged:  # one fetch behind each: nothing kept from the damaged file
        assert len(store.read(day)["sources"]) == 1


def test_a_range_with_damaged_days_loads_whole_through_every_layer(
    tmp_path, emulator, spark, service_database_url
):
    """The damaged days are fetched again in the same run that silver, gold and both loads
    then take whole: the warehouse holds every day of the range, every check green."""
    lake_dir = str(tmp_path / "lake")
    resources = build_resources(lake_dir, emulator.base_url, service_database_url, **FAST_API)
    store = BronzeStore(LakeResource(data_dir=lake_dir).bronze)
    run_bronze(resources)
    damaged = damage(store)

    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(FIRST, LAST),
    )
    assert result.success
    assert all(check.passed for check in check_results(result).values())
    assert all(store.path(day).read_bytes() != content for day, content in damaged.items())
    for table, per_day in (("carbon_intensity_daily", 18), ("carbon_intensity_halfhourly", 864)):
        counts = query(
            service_database_url,
            f"SELECT date_recorded, count(*) FROM carbon_data.{table}"
            " GROUP BY date_recorded ORDER BY date_recorded",
        )
        days = [D(FIRST) + dt.timedelta(days=i) for i in range(6)]
        assert counts == [(day, per_day) for day in days], table
