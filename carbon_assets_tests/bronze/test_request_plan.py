"""The request plan: few requests, never 14 days, split at 1 January, each half-hour once."""

import datetime as dt

import pytest

from carbon_assets.bronze.request_plan import (
    HALF_HOUR,
    half_hour_of,
    half_hours_of,
    is_on_grid,
    plan_requests,
)
from carbon_assets.partitions import DayRange

D = dt.date.fromisoformat


def test_three_years_take_about_ninety_requests():
    plan = plan_requests(DayRange.from_keys("2022-01-01", "2024-12-31").days())
    assert len(plan.windows) <= 90
    for window in plan.windows:
        assert window.end - window.start < dt.timedelta(days=14)
        assert window.start.year == (window.end - HALF_HOUR).year, "a window crosses 1 January"


def test_every_half_hour_has_one_supplier_that_returns_it():
    days = DayRange.from_keys("2023-12-20", "2024-01-10").days()
    plan = plan_requests(days)
    for day in days:
        for start in half_hours_of(day):
            assert plan.supplier[start].returns(start)
    assert sum(len(plan.expected_half_hours(w)) for w in plan.windows) == 48 * len(days)


def test_first_window_asks_from_midnight_and_owns_its_days():
    plan = plan_requests([D("2024-01-01"), D("2024-01-02")])
    (window,) = plan.windows
    assert window.path == "/regional/intensity/2024-01-01T00:00Z/2024-01-03T00:00Z"
    # The boundary half-hour ending at 00:00 belongs to the previous day: not expected here.
    assert plan.expected_half_hours(window)[0] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_year_end_last_half_hour_comes_from_the_january_request():
    plan = plan_requests([D("2023-12-31"), D("2024-01-01")])
    december, january = plan.windows
    assert december.path == "/regional/intensity/2023-12-31T00:00Z/2023-12-31T23:30Z"
    last = dt.datetime(2023, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert plan.supplier[last] is january
    assert plan.windows_of(D("2023-12-31")) == [december, january]


def test_year_end_alone_gets_a_small_extra_request():
    plan = plan_requests([D("2023-12-31")])
    assert [w.path for w in plan.windows] == [
        "/regional/intensity/2023-12-31T00:00Z/2023-12-31T23:30Z",
        "/regional/intensity/2024-01-01T00:00Z/2024-01-01T00:30Z",
    ]


def test_gaps_split_windows_and_one_day_per_request_reproduces_the_original():
    days = [D("2024-03-01"), D("2024-03-02"), D("2024-03-05")]
    assert len(plan_requests(days).windows) == 2
    assert (
        len(
            plan_requests(
                DayRange.from_keys("2024-01-01", "2024-01-31").days(), days_per_request=1
            ).windows
        )
        == 31
    )


@pytest.mark.parametrize("bad", [0, 14, 30])
def test_days_per_request_is_bounded_by_the_api_limit(bad):
    with pytest.raises(ValueError, match="14 days"):
        plan_requests([D("2024-01-01")], days_per_request=bad)


def test_a_moment_off_the_grid_is_supplied_by_the_request_of_its_half_hour():
    plan = plan_requests([D("2023-12-30"), D("2023-12-31")], days_per_request=1)
    quarter_past = dt.datetime(2023, 12, 30, 9, 15, tzinfo=dt.UTC)
    assert not is_on_grid(quarter_past) and half_hour_of(quarter_past).minute == 0
    assert plan.supplier.get(quarter_past) is plan.supplier[half_hour_of(quarter_past)]
    assert plan.supplier_of(quarter_past) is plan.windows_of(D("2023-12-30"))[0]
    # 31 Dec 23:45 falls in the half-hour the January boundary request supplies.
    late = dt.datetime(2023, 12, 31, 23, 45, 30, tzinfo=dt.UTC)
    assert plan.supplier_of(late) is plan.supplier[dt.datetime(2023, 12, 31, 23, 30, tzinfo=dt.UTC)]
    assert plan.supplier_of(late).returns(late)
    # Nothing supplies a half-hour outside the plan, on the grid or off it.
    assert plan.supplier.get(dt.datetime(2024, 1, 5, 9, 15, tzinfo=dt.UTC)) is None
    with pytest.raises(KeyError):
        plan.supplier[dt.datetime(2024, 1, 5, 9, 0, tzinfo=dt.UTC)]
