"""Three days through all four assets: emulator over loopback -> bronze -> Spark -> PostgreSQL.

The warehouse must equal an independent computation from the bronze files (Python's Decimal,
half-up to the cent), and a second run of the same range must change nothing.
"""

from __future__ import annotations

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
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.grid import FUELS, INDEX_LABELS
from carbon_assets_tests.helpers import materialize_range

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
            for period in source["data"]:
                for region in period["regions"]:
                    key = (region["regionid"], dt.date.fromisoformat(period["from"][:10]))
                    row = values[key]
                    row["n"] += 1
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
