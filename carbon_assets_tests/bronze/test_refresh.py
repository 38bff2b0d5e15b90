"""When a stored day is fetched again (pure), and the day file's head that tells it."""

from __future__ import annotations

import datetime as dt
import gzip

import msgspec
import pytest

from carbon_assets.bronze import day_files
from carbon_assets.bronze.day_files import DayHead, build_document
from carbon_assets.bronze.refresh import INCOMPLETE, NEW, UNSETTLED, fetch_reason
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
