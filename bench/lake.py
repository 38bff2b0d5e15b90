"""What a run left in the lake: rows per layer, and whether two gold tables agree."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pa_ds

from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import HIVE_DATES, PARTITION_COLUMN, read_parquet_table
from carbon_assets.partitions import DayRange
from carbon_assets.vocabulary import FUEL_COLUMNS

VALUE_COLUMNS = ("intensity_avg", *FUEL_COLUMNS)
CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005") + Decimal("1e-9")


def bronze_counts(bronze_dir: Path, first: str, last: str) -> dict:
    """Day files present, missing (= days lost) and incomplete, and raw region-records."""
    store = BronzeStore(bronze_dir)
    documents = {day: store.read(day) for day in DayRange.from_keys(first, last).days()}
    stored = [doc for doc in documents.values() if doc is not None]
    return {
        "day_files": len(stored),
        "days_lost": sorted(day.isoformat() for day, doc in documents.items() if doc is None),
        "days_incomplete": sorted(doc["date"] for doc in stored if not doc["complete"]),
        "region_records": sum(doc["region_records"] for doc in stored),
    }


def parquet_rows(folder: Path, first: str, last: str) -> int:
    """Rows of a date-partitioned Parquet folder in first..last (from file footers)."""
    if not folder.exists():
        return 0
    dataset = pa_ds.dataset(
        folder, format="parquet", partitioning=HIVE_DATES, exclude_invalid_files=True
    )
    days = pa_ds.field(PARTITION_COLUMN)
    return dataset.count_rows(
        filter=(days >= dt.date.fromisoformat(first)) & (days <= dt.date.fromisoformat(last))
    )


def spark_written_table(folder: Path) -> pd.DataFrame:
    """A date-partitioned folder as Spark's writer leaves it (any file names), as pandas."""
    dataset = pa_ds.dataset(
        folder, format="parquet", partitioning=HIVE_DATES, exclude_invalid_files=True
    )
    return dataset.to_table().to_pandas()


def half_up(value: float) -> Decimal:
    """A float average rounded half-up to the cent, the way its shortest repr reads."""
    return Decimal(repr(float(value))).quantize(CENT, rounding=ROUND_HALF_UP)


def compare_gold(ours_dir: Path, original_dir: Path) -> dict:
    """Do two gold tables hold the same daily rows and averages (to the cent)?"""
    ours, original = read_parquet_table(ours_dir), spark_written_table(original_dir)
    keys = ["regionid", PARTITION_COLUMN]
    both = ours.merge(original, on=keys, how="outer", suffixes=("_ours", "_orig"), indicator=True)
    matched = both[both["_merge"] == "both"]
    cells = equal = within = 0
    max_diff = Decimal(0)
    for column in VALUE_COLUMNS:
        for mine, theirs in zip(matched[f"{column}_ours"], matched[f"{column}_orig"]):
            diff = abs(Decimal(mine) - half_up(theirs))
            cells += 1
            equal += diff == 0
            # Ours is the exact mean rounded half-up; a float mean a hair below a half-cent
            # rounds the other way, so "within half a cent" is agreement up to rounding.
            within += abs(Decimal(mine) - Decimal(repr(float(theirs)))) <= HALF_CENT
            max_diff = max(max_diff, diff)
    return {
        "rows_ours": len(ours),
        "rows_original": len(original),
        "rows_matched": len(matched),
        "rows_only_one_side": int((both["_merge"] != "both").sum()),
        "half_hours_equal": int((matched["half_hours_ours"] == matched["half_hours_orig"]).sum()),
        "cells_compared": cells,
        "cells_equal_to_the_cent": int(equal),
        "cells_within_half_a_cent": int(within),
        "max_abs_difference": float(max_diff),
    }
