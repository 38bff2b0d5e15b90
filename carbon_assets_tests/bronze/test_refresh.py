"""When a stored day is fetched again (pure), and the day file's head that tells it."""

from __future__ import annotations

import datetime as dt
import gzip

import msgspec
import pytest

from carbon_assets.bronze import day_files
from carbon_assets.bronze.day_files import DayHead, build_document
from carbon_assets.bronze.refresh import (
    INCOMPLETE,
    INVALID,
    NEW,
    UNSETTLED,
    RefreshPolicy,
    fetch_reason,
    stored_head,
)
from carbon_assets.bronze.store import BronzeStore
from carbon_assets_tests.helpers import real_periods, source

DAY = dt.date(2024, 3, 9)
END = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)  # the day's end
H = dt.timedelta(hours=1)


def head(complete: bool, first: dt.datetime | None, last: dt.datetime | None = None) -> DayHead:
    return DayHead(complete, first, last or first)


@pytest.mark.parametrize(
    ("stored", "now", "reason"),
    [
        (None, END + H, NEW),
        (head(True, END + 0.5 * H), END + 24 * H, UNSETTLED),  # fetched before it settled
        (head(True, END + 36 * H), END + 40 * H, None),  # fetched once settled: final
        (head(True, END - 0 * H, END + 40 * H), END + 50 * H, UNSETTLED),  # an older part
        (head(True, None), END + 50 * H, UNSETTLED),  # fetch time unknown
        (head(False, END + 0.5 * H), END + 1 * H, INCOMPLETE),  # waited as long as its age
        (head(False, END + 24 * H), END + 47 * H, None),  # too soon: wait 24 h more
        (head(False, END + 24 * H), END + 48 * H, INCOMPLETE),
        (head(False, END + 20 * 24 * H), END + 31 * 24 * H, None),  # past the horizon
    ],
)
def test_fetch_reason(stored, now, reason):
    assert fetch_reason(DAY, stored, now, settle_hours=36, heal_days=30) == reason


def test_the_head_of_a_day_file_holds_completeness_and_fetch_times(tmp_path):
    store = BronzeStore(tmp_path)
    day = dt.date(2019, 8, 25)
    early, late = "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    store.write(build_document(day, [source(records[:10], late), source(records[10:], early)]))
    assert store.head(day) == DayHead(
        False, dt.datetime.fromisoformat(early), dt.datetime.fromisoformat(late)
    )


def test_a_file_written_before_the_head_had_fetch_times_is_read_whole(tmp_path):
    store = BronzeStore(tmp_path)
    day = dt.date(2019, 8, 25)
    document = build_document(day, [source([], "2024-01-01T00:00:00+00:00")])
    del document["first_fetched_at"], document["last_fetched_at"]
    store.path(day).parent.mkdir(parents=True)
    store.path(day).write_bytes(gzip.compress(msgspec.json.encode(document)))
    assert day_files.read_head(b'{"date":"2019-08-25","complete":false,"half') == DayHead(
        False, None, None
    )
    fetched = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert store.head(day) == DayHead(False, fetched, fetched)


def test_an_invalid_day_is_fetched_by_every_run_however_old_or_recent_its_fetch():
    invalid = DayHead(False, END + 36 * H, END + 36 * H, invalid=True)
    for now in (END + 37 * H, END + 400 * 24 * H):
        assert fetch_reason(DAY, invalid, now, settle_hours=36, heal_days=30) == INVALID


@pytest.mark.parametrize(
    ("last_fetch", "now", "window_days", "reason"),
    [
        # Inside the settle window (the last 3 complete days): at every run.
        (END + 1 * H, END + 2 * H, 3, INCOMPLETE),
        (END + 24 * H, END + 25 * H, 3, INCOMPLETE),
        (END + 48 * H, END + 49 * H, 3, INCOMPLETE),
        # Older than the window: the growing interval (waited 49 h of the 72 h due).
        (END + 72 * H, END + 73 * H, 3, None),
        (END + 24 * H, END + 25 * H, 1, None),  # a window of 1 day holds only yesterday
        (END + 24 * H, END + 25 * H, 0, None),
    ],
)
def test_a_hole_inside_the_settle_window_is_fetched_at_every_run(
    last_fetch, now, window_days, reason
):
    hole = head(False, last_fetch)
    assert (
        fetch_reason(DAY, hole, now, settle_hours=36, heal_days=30, window_days=window_days)
        == reason
    )


def test_the_head_of_a_stored_day_tells_an_invalid_day_from_an_incomplete_one(tmp_path):
    store = BronzeStore(tmp_path)
    day = dt.date(2019, 8, 25)
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    store.write(build_document(day, [source(records)]))
    assert stored_head(store, day).invalid is False
    records[3]["regions"][0]["intensity"]["forecast"] = -5
    store.write(build_document(day, [source(records)]))
    stored = stored_head(store, day)
    assert (stored.complete, stored.invalid) == (False, True)
    assert RefreshPolicy(heal_days=0).fetch_reason(day, stored, END) == INVALID
    assert stored_head(store, dt.date(2019, 8, 26)) is None
