"""Bronze day files for tests, built from the real recorded 2019 API response."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.records import Period
from carbon_assets.bronze.store import BronzeStore

FIXTURES = Path(__file__).parent / "fixtures"
REAL_2019 = FIXTURES / "regional_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json"
FETCHED_AT = "2024-01-01T00:00:00+00:00"


def real_periods() -> list[dict]:
    """The real 2019 response: 48 periods from 2019-08-25T12:30Z (24 of them start on the 25th)."""
    return json.loads(REAL_2019.read_text())["data"]


def source(records: list[dict], fetched_at: str | None = FETCHED_AT) -> dict:
    return {"url": "test", "status": 200, "attempts": 1, "fetched_at": fetched_at,
            "data": [Period.from_record(record) for record in records]}


def write_days(tmp_path: Path, periods: list[dict], fetched_at: str = FETCHED_AT) -> list[str]:
    """Bronze day files from API period records, split by the UTC date of their start."""
    store = BronzeStore(tmp_path / "bronze")
    by_day: dict[str, list] = {}
    for period in periods:
        by_day.setdefault(period["from"][:10], []).append(period)
    paths = []
    for day, records in sorted(by_day.items()):
        store.write(build_document(dt.date.fromisoformat(day), [source(records, fetched_at)]))
        paths.append(str(store.path(dt.date.fromisoformat(day))))
    return paths
