"""Which heal runs a daily tick asks for: an incomplete day before the settle window when it is
due for another try (growing intervals, for heal_days), an invalid day at every tick however
old or recently tried. Pure: day files in a temporary lake, the schedule's function, no run."""

from __future__ import annotations

import copy
import datetime as dt

from carbon_assets.automation import refresh_requests
from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.records import api_datetime
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.store import BronzeStore
from carbon_assets_tests.helpers import real_periods, source

D = dt.date.fromisoformat
UTC = dt.UTC
POLICY = RefreshPolicy(settle_days=3, settle_hours=36, heal_days=30)
RECORD = real_periods()[0]


def day_records(day: dt.date, half_hours: int = 48, invalid: bool = False) -> list[dict]:
    """The first `half_hours` records of `day`, each the real 2019 record moved there; with
    `invalid`, the first holds an impossible gas share."""
    start = dt.datetime.combine(day, dt.time(), UTC)
    records = []
    for n in range(half_hours):
        record = copy.deepcopy(RECORD)
        record["from"] = api_datetime(start + dt.timedelta(minutes=30 * n))
        record["to"] = api_datetime(start + dt.timedelta(minutes=30 * (n + 1)))
        records.append(record)
    if invalid:
        mix = records[0]["regions"][2]["generationmix"]
        next(share for share in mix if share["fuel"] == "gas")["perc"] = 1e9
    return records


def store_day(store: BronzeStore, day: str, fetched_at: str, **kind) -> None:
    records = day_records(D(day), **kind)
    store.write(build_document(D(day), [source(records, f"{fetched_at}:00+00:00")]))


def healed(tick: str, store: BronzeStore) -> list[str]:
    requests = refresh_requests(dt.datetime.fromisoformat(f"{tick}T00:30Z"), POLICY, store)
    settle, *heals = requests
    assert settle.tags["carbon/run"] == "settle"
    assert all(heal.tags["carbon/run"] == "heal" for heal in heals)
    days = [heal.tags["dagster/asset_partition_range_start"] for heal in heals]
    assert days == [heal.tags["dagster/asset_partition_range_end"] for heal in heals]
    return days


def test_invalid_days_are_healed_at_every_tick_incomplete_ones_when_due(tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    # Older than heal_days (30): the invalid day is fetched again, the incomplete one no more.
    store_day(store, "2024-01-10", "2024-01-11T01:00", invalid=True)
    store_day(store, "2024-01-12", "2024-01-13T01:00", half_hours=40)
    # Tried half a day ago, ten days after its end: the growing interval would wait ten days.
    store_day(store, "2024-05-20", "2024-05-31T12:00", invalid=True)
    store_day(store, "2024-05-22", "2024-05-31T12:00", half_hours=40)
    # Tried half an hour after its end, six days ago: due.
    store_day(store, "2024-05-25", "2024-05-26T00:30", half_hours=40)
    store_day(store, "2024-05-24", "2024-05-26T00:30")  # complete and settled
    store_day(store, "2024-05-30", "2024-05-31T00:30", invalid=True)  # the window fetches it
    assert store.peek_complete(D("2024-05-24")) is True

    assert healed("2024-06-01", store) == ["2024-01-10", "2024-05-20", "2024-05-25"]
    # The heal runs of that tick failed again (still invalid, still empty): the next tick asks
    # for the invalid days again, not yet for the incomplete one just tried.
    store_day(store, "2024-01-10", "2024-06-01T00:31", invalid=True)
    store_day(store, "2024-05-20", "2024-06-01T00:31", invalid=True)
    store_day(store, "2024-05-25", "2024-06-01T00:31", half_hours=40)
    assert healed("2024-06-02", store) == ["2024-01-10", "2024-05-20"]


def test_a_tick_over_an_empty_lake_asks_for_the_window_only(tmp_path):
    assert healed("2024-06-01", BronzeStore(tmp_path / "bronze")) == []
