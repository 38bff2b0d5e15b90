"""Silver and gold partitions through Dagster: exact-day replacement and range = day by day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from carbon_assets.definitions import ALL_ASSETS, build_resources
from carbon_assets.lake import read_parquet_table
from carbon_assets.partitions import DayRange
from carbon_assets_tests.helpers import FAST_API, range_tags

pytestmark = [pytest.mark.spark, pytest.mark.slow]

LAKE_ONLY = AssetSelection.assets(
    "bronze_carbon_intensity", "silver_carbon_intensity", "gold_carbon_intensity_daily"
)


def run_lake(data_dir: Path, base_url: str, first: str, last: str) -> None:
    result = materialize(
        ALL_ASSETS,
        selection=LAKE_ONLY,
        resources=build_resources(data_dir=str(data_dir), api_base_url=base_url),
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(first, last),
    )
    assert result.success


def day_files(folder: Path) -> dict[str, tuple[str, int]]:
    """Each Parquet file of a layer -> (name, modification time in ns)."""
    return {
        str(path.relative_to(folder)): (path.name, path.stat().st_mtime_ns)
        for path in folder.glob("date_recorded=*/*.parquet")
    }


def sorted_table(folder: Path, keys: list[str]) -> pd.DataFrame:
    frame = read_parquet_table(folder)
    for column in frame.columns:  # nested columns (maps, lists) compare as text
        if frame[column].map(lambda v: isinstance(v, (list, dict, tuple))).any():
            frame[column] = frame[column].map(str)
    return frame.drop(columns=["fetched_at"], errors="ignore").sort_values(keys, ignore_index=True)


def test_rerunning_one_day_replaces_only_that_day(tmp_path, emulator, spark, monkeypatch):
    data = tmp_path / "data"
    run_lake(data, emulator.base_url, "2024-05-01", "2024-05-03")
    before = {layer: day_files(data / layer) for layer in ("silver", "gold")}
    # New code, so the day is built again (with the same input and code it is left alone:
    # test_unchanged_days.py).
    monkeypatch.setattr("carbon_assets.spark.code_version", lambda *_: "new code")
    run_lake(data, emulator.base_url, "2024-05-02", "2024-05-02")
    for layer in ("silver", "gold"):
        after = day_files(data / layer)
        untouched = {k: v for k, v in before[layer].items() if "2024-05-02" not in k}
        assert {k: after[k] for k in untouched} == untouched, f"{layer}: other days were rewritten"
        replaced = [k for k in after if "2024-05-02" in k]
        assert replaced and all(after[k] != before[layer].get(k) for k in replaced)
    assert len(read_parquet_table(data / "silver")) == 3 * 864


def test_a_range_run_equals_day_by_day_runs(tmp_path, emulator, spark):
    ranged, daily = tmp_path / "ranged", tmp_path / "daily"
    run_lake(ranged, emulator.base_url, "2024-07-30", "2024-08-01")
    for day in ("2024-07-30", "2024-07-31", "2024-08-01"):
        run_lake(daily, emulator.base_url, day, day)
    pd.testing.assert_frame_equal(
        sorted_table(ranged / "silver", ["timestamp", "regionid"]),
        sorted_table(daily / "silver", ["timestamp", "regionid"]),
    )
    pd.testing.assert_frame_equal(
        sorted_table(ranged / "gold", ["date_recorded", "regionid"]),
        sorted_table(daily / "gold", ["date_recorded", "regionid"]),
    )
    exported = pd.read_csv(ranged / "exports" / "gold_carbon_intensity_daily.csv")
    assert len(exported) == 3 * 18


def test_gold_before_any_silver_fails_saying_so_and_writes_nothing(tmp_path, spark):
    data = tmp_path / "data"
    result = materialize(
        ALL_ASSETS,
        selection=AssetSelection.assets("gold_carbon_intensity_daily"),
        resources=build_resources(data_dir=str(data), api_base_url="http://127.0.0.1:9"),
        instance=DagsterInstance.ephemeral(),
        tags=range_tags("2024-05-01", "2024-05-02"),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "holds no data yet: materialize silver_carbon_intensity first" in str(
        failure.event_specific_data.error
    )
    assert not (data / "gold").exists() or not any((data / "gold").iterdir())


def test_gold_after_a_silver_range_without_rows_builds_nothing_and_says_why(
    tmp_path, spark, capsys
):
    """The API has no data for these days: bronze stores them empty, silver writes no rows;
    gold then has nothing to aggregate, which is not "silver holds no data yet"."""
    from carbon_assets.emulator import EmulatorConfig, start_emulator

    data = tmp_path / "data"
    days = {dt.date(2024, 5, 1), dt.date(2024, 5, 2)}
    with start_emulator(EmulatorConfig(empty_dates=days)) as empty_api:
        result = materialize(
            ALL_ASSETS,
            selection=LAKE_ONLY,
            resources=build_resources(
                data_dir=str(data), api_base_url=empty_api.base_url, empty_attempts=1, **FAST_API
            ),
            instance=DagsterInstance.ephemeral(),
            tags=range_tags("2024-05-01", "2024-05-02"),
        )
    assert result.success
    gold_rows = [
        m.metadata["dagster/row_count"].value
        for m in result.asset_materializations_for_node("gold_carbon_intensity_daily")
    ]
    assert set(gold_rows) == {0}
    logged = capsys.readouterr().err  # dagster's console logger
    assert "silver_carbon_intensity has no rows for 2024-05-01...2024-05-02" in logged
    assert "holds no data yet" not in logged
    assert not any((data / "gold").glob("date_recorded=*"))


def test_files_written_before_a_column_existed_read_it_as_null(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "silver"
    old, new = folder / "date_recorded=2024-01-01", folder / "date_recorded=2024-01-02"
    old.mkdir(parents=True)
    new.mkdir()
    pq.write_table(pa.table({"regionid": pa.array([1], pa.int32())}), old / "part-0.parquet")
    pq.write_table(
        pa.table({"regionid": pa.array([2], pa.int32()), "added": pa.array([7], pa.int32())}),
        new / "part-0.parquet",
    )
    table = read_parquet_table(folder, columns=["regionid", "added", "date_recorded"])
    assert table.sort_values("regionid")["added"].tolist()[1] == 7
    assert pd.isna(table.sort_values("regionid")["added"].tolist()[0])
    only_old = read_parquet_table(
        folder, DayRange(dt.date(2024, 1, 1), dt.date(2024, 1, 1)), columns=["regionid", "never"]
    )
    assert only_old["regionid"].tolist() == [1] and only_old["never"].isna().all()
