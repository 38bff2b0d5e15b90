"""The national series through bronze, silver and gold, pure: its records, request plan, day
files with pending actuals, when such a day is fetched again, and its rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from carbon_assets.bronze import day_files
from carbon_assets.bronze.client import parse_payload
from carbon_assets.bronze.day_files import DayHead, build_document, merge_with_previous
from carbon_assets.bronze.records import NationalPeriod
from carbon_assets.bronze.refresh import ACTUALS_PENDING, UNSETTLED, fetch_reason
from carbon_assets.bronze.request_plan import NATIONAL, plan_requests
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.gold.national import national_daily_row
from carbon_assets.silver.national import national_silver_rows

FIXTURES = Path(__file__).parents[1] / "fixtures"
DAY = dt.date(2024, 3, 9)
START = dt.datetime(2024, 3, 9, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)
H = dt.timedelta(hours=1)


def record(start: dt.datetime, forecast: int | None, actual: int | None) -> dict:
    end = start + dt.timedelta(minutes=30)
    return {
        "from": start.strftime("%Y-%m-%dT%H:%MZ"),
        "to": end.strftime("%Y-%m-%dT%H:%MZ"),
        "intensity": {"forecast": forecast, "actual": actual, "index": "moderate"},
    }


def day_records(pending_from: int = 48) -> list[dict]:
    """The 48 half-hours of DAY: forecast 100 + i, actual 95 + i, null from `pending_from` on."""
    return [
        record(START + i * dt.timedelta(minutes=30), 100 + i, None if i >= pending_from else 95 + i)
        for i in range(48)
    ]


def source(records: list[dict], fetched_at: dt.datetime) -> dict:
    return {
        "url": "http://api/intensity/x/y",
        "status": 200,
        "attempts": 1,
        "fetched_at": fetched_at.isoformat(),
        "data": [NationalPeriod.from_record(r) for r in records],
    }


def test_the_recorded_national_answers_are_read_with_their_pending_actuals():
    body = (FIXTURES / "national_intensity_date_2026-10-05_pending_actuals.json").read_bytes()
    periods, cause = parse_payload(body, NationalPeriod)
    assert cause is None and len(periods) == 48
    assert sum(p.actual_pending for p in periods) == 22
    assert all(p.full and not p.problems for p in periods)
    settled = FIXTURES / "national_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json"
    periods, _ = parse_payload(settled.read_bytes(), NationalPeriod)
    assert not any(p.actual_pending for p in periods)


def test_an_impossible_national_value_is_a_problem_of_its_record():
    bad = NationalPeriod.from_record(record(START, 120, 2_000_000_000))
    assert bad.problems == (
        "2024-03-09T00:00Z national: intensity actual 2000000000 gCO2/kWh is outside 0-2000",
    )
    unreadable = NationalPeriod(b'{"from":"2024-03-09T00:00Z","intensity":{"forecast":"x"}}')
    assert not unreadable.full and "cannot be read" in unreadable.problems[0]


def test_national_requests_ask_for_14_days_of_the_national_endpoint():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(30)]
    plan = plan_requests(days, NATIONAL.max_days_per_request, NATIONAL)
    assert [w.path for w in plan.windows] == [
        "/intensity/2024-01-01T00:00Z/2024-01-15T00:00Z",
        "/intensity/2024-01-15T00:00Z/2024-01-29T00:00Z",
        "/intensity/2024-01-29T00:00Z/2024-01-31T00:00Z",
    ]
    with pytest.raises(ValueError, match="docs limit national ranges to 14 days"):
        plan_requests(days, 15, NATIONAL)


def test_a_day_with_pending_actuals_is_complete_and_says_how_many_in_its_head(tmp_path):
    document = build_document(DAY, [source(day_records(pending_from=40), END + 2 * H)])
    assert document["complete"] and document["actuals_pending"] == 8
    store = BronzeStore(tmp_path, period_type=NationalPeriod)
    store.write(document)
    head = store.head(DAY)
    assert head.complete and head.actuals_pending == 8
    assert store.read_periods(DAY)["sources"][0]["data"][0] == document["sources"][0]["data"][0]
    # Regional files never carry the key: their heads read as before.
    assert "actuals_pending" not in build_document(DAY, [source([], END)])


def test_a_later_fetch_with_the_actuals_replaces_the_pending_half_hours():
    first = build_document(DAY, [source(day_records(pending_from=40), END + 2 * H)])
    later = build_document(DAY, [source(day_records(), END + 30 * H)])
    merged = merge_with_previous(later, first, NationalPeriod)
    assert merged["complete"] and "actuals_pending" not in merged
    assert len(day_files.day_periods(merged)) == 48


@pytest.mark.parametrize(
    ("fetched", "now", "reason"),
    [
        (END + 2 * H, END + 24 * H, UNSETTLED),  # fetched before its values settled
        (END + 40 * H, END + 48 * H, ACTUALS_PENDING),  # settled, actuals missing, in window
        (END + 40 * H, END + 10 * 24 * H, ACTUALS_PENDING),  # due again: as old as it was
        (END + 9 * 24 * H, END + 10 * 24 * H, None),  # fetched a day ago when 9 days old
        (END + 40 * H, END + 31 * 24 * H, None),  # past the heal horizon: final as it is
    ],
)
def test_a_settled_day_with_pending_actuals_is_fetched_again_until_they_are_in(
    fetched, now, reason
):
    head = DayHead(True, fetched, fetched, actuals_pending=3)
    assert fetch_reason(DAY, head, now, settle_hours=36, heal_days=30, window_days=3) == reason
    settled = DayHead(True, fetched, fetched)
    if reason == ACTUALS_PENDING:
        assert fetch_reason(DAY, settled, now, settle_hours=36, heal_days=30) is None


def test_national_silver_keeps_the_latest_fetch_of_each_half_hour_and_null_actuals():
    first = source(day_records(pending_from=40), END + 2 * H)
    later = source(day_records(pending_from=46)[40:], END + 5 * H)
    document = build_document(DAY, [first, later])
    content = day_files.encode(document)
    rows = national_silver_rows(content, "test").to_pylist()
    assert [r["timestamp"] for r in rows] == [
        START + i * dt.timedelta(minutes=30) for i in range(48)
    ]
    assert [r["intensity_actual"] for r in rows[38:]] == [133, 134, *range(135, 141), None, None]
    assert {r["date_recorded"] for r in rows} == {DAY}


def test_national_gold_averages_exactly_and_measures_the_forecast_error():
    document = build_document(DAY, [source(day_records(pending_from=44), END + 2 * H)])
    content = day_files.encode(document)
    (row,) = national_daily_row(national_silver_rows(content), DAY).to_pylist()
    assert row["half_hours"] == 48 and row["actual_half_hours"] == 44
    assert row["forecast_avg"] == Decimal("123.50")  # mean of 100..147
    assert row["mean_absolute_error"] == Decimal("5.00") and row["bias"] == Decimal("5.00")
    assert row["actual_avg"] == Decimal("116.50")  # mean of 95..138
