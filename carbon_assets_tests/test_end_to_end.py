"""Three days through all four assets: emulator over loopback -> bronze -> Spark -> PostgreSQL.

The warehouse must equal an independent computation from the bronze files (Python's Decimal,
half-up to the cent), and a second run of the same range must change nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy
from dagster import AssetKey

from carbon_assets.definitions import build_resources
from carbon_assets.emulator import regional_period_records
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.lake_source import normalised
from carbon_assets.vocabulary import FUELS, INDEX_LABELS
from carbon_assets_tests.helpers import materialize_range
from carbon_assets_tests.postgres_helpers import query

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FIRST, LAST = "2024-03-30", "2024-04-01"
CENT = Decimal("0.01")


def independent_daily_rows(bronze_dir: Path) -> pd.DataFrame:
    """Daily rows computed straight from the bronze files, without Spark or Dagster."""
    values: dict[tuple, dict] = defaultdict(
        lambda: {"n": 0, "intensity": [], "index": Counter(), **{f: [] for f in FUELS}}
    )
    names = {}
    for path in sorted(bronze_dir.rglob("*.json.gz")):
        document = json.loads(gzip.decompress(path.read_bytes()))
        for source in document["sources"]:
            fetched_at = pd.Timestamp(source["fetched_at"])
            for period in source["data"]:
                for region in period["regions"]:
                    key = (region["regionid"], dt.date.fromisoformat(period["from"][:10]))
                    row = values[key]
                    row["n"] += 1
                    row["fetched_at"] = max(row.get("fetched_at", fetched_at), fetched_at)
                    row["intensity"].append(Decimal(str(region["intensity"]["forecast"])))
                    row["index"][region["intensity"]["index"]] += 1
                    for mix in region["generationmix"]:
                        row[mix["fuel"]].append(Decimal(str(mix["perc"])))
                    names[key] = (region["shortname"], region["dnoregion"])

    def mean(numbers):
        return (sum(numbers) / len(numbers)).quantize(CENT, rounding=ROUND_HALF_UP)

    rows = []
    for (regionid, date), row in values.items():
        top = max(row["index"].items(), key=lambda item: (item[1], INDEX_LABELS.index(item[0])))[0]
        rows.append(
            {
                "regionid": regionid,
                "date_recorded": date,
                "shortname": names[(regionid, date)][0],
                "dno": names[(regionid, date)][1],
                "intensity_avg": mean(row["intensity"]),
                "index_mode": top,
                **{f"fuel_{fuel}": mean(row[fuel]) for fuel in FUELS},
                "half_hours": row["n"],
                "fetched_at": row["fetched_at"],
            }
        )
    return pd.DataFrame(rows)[list(GOLD_COLUMNS)].sort_values(
        ["date_recorded", "regionid"], ignore_index=True
    )


def warehouse_rows(database_url: str) -> pd.DataFrame:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql(
                sqlalchemy.text(
                    f"SELECT {', '.join(GOLD_COLUMNS)} FROM carbon_data.carbon_intensity_daily "
                    "ORDER BY date_recorded, regionid"
                ),
                connection,
                coerce_float=False,  # keep DECIMAL(10,2) as exact Decimals
            )
    finally:
        engine.dispose()
    return frame


def load_metadata(result) -> dict:
    (materialization, *_) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == AssetKey("carbon_intensity_daily")
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.fixture(params=["embedded", "service"])
def warehouse_url(request):
    """The same test once on the embedded PostgreSQL and once on the 5432 service."""
    return request.getfixturevalue(f"{request.param}_database_url")


def test_three_days_end_to_end_then_rerun_changes_nothing(tmp_path, emulator, spark, warehouse_url):
    resources = build_resources(
        data_dir=str(tmp_path / "data"), api_base_url=emulator.base_url, database_url=warehouse_url
    )
    first = materialize_range(resources, FIRST, LAST, raise_on_error=True)
    assert first.success
    assert load_metadata(first)["inserted"] == 3 * 18
    # What a researcher sees in the UI: one observation of the last day on each daily table,
    # the regional one with that day's rows and two charts of the range, the national one with
    # the range's forecast against its actual.
    observations = {
        event.asset_key.to_user_string(): event.asset_observation_data.asset_observation
        for event in first.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    }
    assert len(observations) == 2
    assert {o.partition for o in observations.values()} == {LAST}
    pictures = {
        key: value.value for key, value in observations["carbon_intensity_daily"].metadata.items()
    }
    assert pictures["latest_day"] == LAST and pictures["preview"].count("\n") == 18 + 1
    national = observations["carbon_intensity_national_daily"].metadata
    pictures |= {key: value.value for key, value in national.items()}
    for chart in ("intensity_heatmap", "gb_fuel_mix", "forecast_vs_actual"):
        encoded = pictures[chart].split("base64,", 1)[1].rstrip(")")
        assert base64.b64decode(encoded).startswith(b"\x89PNG"), chart

    stored = warehouse_rows(warehouse_url)
    assert len(stored) == 3 * 18
    assert (stored.groupby("date_recorded").size() == 18).all()
    expected = independent_daily_rows(tmp_path / "data" / "bronze")
    pd.testing.assert_frame_equal(
        stored.astype(object), expected.astype(object), check_dtype=False, check_exact=True
    )
    for check in first.get_asset_check_evaluations():
        assert check.passed, check.check_name

    before = warehouse_rows(warehouse_url)
    second = materialize_range(resources, FIRST, LAST, raise_on_error=True)
    assert second.success
    metadata = load_metadata(second)
    assert (metadata["inserted"], metadata["updated"]) == (0, 0)
    assert metadata["skipped_unchanged"] == 3 * 18
    pd.testing.assert_frame_equal(warehouse_rows(warehouse_url), before)

    # The half-hourly table holds every region and half-hour exactly as the API sent it.
    assert_half_hours_as_the_api_sent_them(warehouse_url, emulator.config.seed)
    # Every row of both tables says it came from the emulator, and when it was fetched.
    for table, rows in (
        ("carbon_intensity_daily", 3 * 18),
        ("carbon_intensity_halfhourly", 3 * 864),
    ):
        assert query(
            warehouse_url,
            "SELECT s.api_base_url, s.emulator, count(*), count(t.fetched_at)"
            f" FROM carbon_data.{table} t JOIN carbon_data.fetch_source s USING (source_id)"
            " GROUP BY 1, 2",
        ) == [(normalised(emulator.base_url), True, rows, rows)], table


def assert_half_hours_as_the_api_sent_them(database_url: str, seed: int) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                sqlalchemy.text(
                    "SELECT regionid, period_start, date_recorded, intensity_forecast,"
                    f" intensity_index, {', '.join(f'fuel_{f}' for f in FUELS)}"
                    " FROM carbon_data.carbon_intensity_halfhourly"
                    " ORDER BY period_start, regionid"
                )
            ).all()
    finally:
        engine.dispose()
    first, last = dt.date.fromisoformat(FIRST), dt.date.fromisoformat(LAST)
    starts = [
        dt.datetime.combine(first, dt.time(), dt.UTC) + i * dt.timedelta(minutes=30)
        for i in range(((last - first).days + 1) * 48)
    ]
    expected = []
    for start in starts:
        for region in regional_period_records(start, seed):  # the emulator's own answer
            shares = {mix["fuel"]: Decimal(str(mix["perc"])) for mix in region["generationmix"]}
            intensity = region["intensity"]
            expected.append(
                (region["regionid"], start, start.date(), intensity["forecast"])
                + (intensity["index"], *(shares[fuel] for fuel in FUELS))
            )
    assert len(stored) == len(expected) == len(starts) * 18
    assert [tuple(row) for row in stored] == expected
