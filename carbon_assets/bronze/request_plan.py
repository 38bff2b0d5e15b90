"""Which requests fetch which UTC days: pure planning, no I/O.

Both range endpoints (regional and national, `Endpoint`) follow the same rules but for their
longest range. The regional range endpoint returns every half-hour whose END lies in [from,
to], rejects spans of 14 days or more, and stops at 31 Dec 23:30Z when `to` is in the next
year. A day D is the 48 half-hours that START on D (00:00Z .. 23:30Z). So:

- a window of days D..E is requested as from = D 00:00Z, to = E+1 00:00Z; its response also
  carries the half-hour ending at D 00:00Z, which belongs to D-1;
- a window ending on 31 Dec asks for to = 31 Dec 23:30Z instead (the API would truncate there
  anyway) and the 23:30 half-hour of 31 Dec comes from the request that starts on 1 Jan, or
  from a small extra request when 1 Jan is not being fetched.

Every half-hour has exactly one *supplier* request, so a boundary half-hour returned by two
requests is stored once. A record that starts off the half-hour grid (09:15: the API's periods
are on :00/:30, but bronze keeps whatever it sends) is supplied by the request of the half-hour
it falls in, so it is stored (and flagged by a check) rather than dropped as nobody's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from carbon_assets.bronze.records import UTC, AnyPeriod, NationalPeriod, Period, api_datetime
from carbon_assets.vocabulary import HALF_HOURS_PER_DAY

HALF_HOUR = dt.timedelta(minutes=30)
# Regional ranges of 14 days or more are rejected with this 400 message.
MAX_REGIONAL_RANGE_DAYS = 14
RANGE_TOO_LONG_MESSAGE = "The date range you have specified is greater than 14 days."
MAX_DAYS_PER_REQUEST = MAX_REGIONAL_RANGE_DAYS - 1


@dataclass(frozen=True)
class Endpoint:
    """A range endpoint of the API: its path, the most days one request asks for, and the
    records it answers with."""

    name: str
    path: str
    max_days_per_request: int
    period_type: type[AnyPeriod]
    limit: str  # why no request asks for more days


REGIONAL = Endpoint(
    "regional",
    "/regional/intensity",
    MAX_DAYS_PER_REQUEST,
    Period,
    f"the API rejects regional ranges of {MAX_REGIONAL_RANGE_DAYS} days or more",
)
# Live probes accept national ranges of up to 30 days (docs/api-contract.md, section 6); the
# documented limit is the one kept.
NATIONAL = Endpoint(
    "national", "/intensity", 14, NationalPeriod, "the API's docs limit national ranges to 14 days"
)


def half_hour_of(moment: dt.datetime) -> dt.datetime:
    """The start of the half-hour (on :00 or :30 UTC) that `moment` falls in."""
    return moment - dt.timedelta(
        minutes=moment.minute % 30, seconds=moment.second, microseconds=moment.microsecond
    )


def is_on_grid(moment: dt.datetime) -> bool:
    """Whether `moment` starts a half-hour (:00 or :30 UTC), as every API period should."""
    return half_hour_of(moment) == moment


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def half_hours_of(day: dt.date) -> list[dt.datetime]:
    """The starts of the 48 half-hours that make up a UTC day."""
    start = day_start(day)
    return [start + i * HALF_HOUR for i in range(HALF_HOURS_PER_DAY)]


@dataclass(frozen=True, eq=False)
class Window:
    """One request: the days it fetches (`days`, possibly none) and its from/to.

    Windows compare by identity (eq=False): each is one request of one plan, and they are
    looked up once per half-hour of years of data.
    """

    start: dt.datetime
    end: dt.datetime
    days: tuple[dt.date, ...] = ()
    endpoint: Endpoint = REGIONAL

    @property
    def path(self) -> str:
        return f"{self.endpoint.path}/{api_datetime(self.start)}/{api_datetime(self.end)}"

    def returns(self, half_hour_start: dt.datetime) -> bool:
        """Whether the API includes this half-hour in the response (its end lies in [from, to])."""
        return self.start <= half_hour_start + HALF_HOUR <= self.end

    def __str__(self) -> str:
        return self.path


class Suppliers(dict[dt.datetime, Window]):
    """Half-hour start -> the request that supplies it, filled by RequestPlan.assign.

    A moment off the half-hour grid is supplied by the request of the half-hour it falls in
    (lookups with [] and .get alike), so whoever checks "is this record mine?" keeps a record
    the API sent at 09:15 instead of dropping it.
    """

    def __missing__(self, moment: dt.datetime) -> Window:
        on_grid = half_hour_of(moment)
        if on_grid == moment:
            raise KeyError(moment)
        return self[on_grid]

    def get(self, moment: dt.datetime, default: Window | None = None) -> Window | None:
        try:
            return self[moment]
        except KeyError:
            return default


@dataclass
class RequestPlan:
    """The requests for a set of days and, for each half-hour, the request that supplies it."""

    days: tuple[dt.date, ...]
    endpoint: Endpoint = REGIONAL
    windows: list[Window] = field(default_factory=list)
    supplier: Suppliers = field(default_factory=Suppliers)
    # Derived from `supplier` as it is filled in, for lookups once per window and per day.
    _supplied: dict[Window, list[dt.datetime]] = field(default_factory=dict, repr=False)
    _day_windows: dict[dt.date, list[Window]] = field(default_factory=dict, repr=False)

    def assign(self, starts: list[dt.datetime], window: Window) -> None:
        """Make `window` the supplier of `starts`, half-hours of one day in time order."""
        self.supplier.update(dict.fromkeys(starts, window))
        self._supplied.setdefault(window, []).extend(starts)
        day_windows = self._day_windows.setdefault(starts[0].date(), [])
        if window not in day_windows:
            day_windows.append(window)

    def supplier_of(self, moment: dt.datetime) -> Window | None:
        """The request that supplies the record starting at `moment` (on the grid or off it)."""
        return self.supplier.get(moment)

    def expected_half_hours(self, window: Window) -> list[dt.datetime]:
        """The half-hours this window must deliver (those it is the supplier of), in order."""
        return self._supplied.get(window, [])

    def windows_of(self, day: dt.date) -> list[Window]:
        """The windows a day's half-hours come from (one, or two at a year end)."""
        return self._day_windows.get(day, [])


def _chunks(days: list[dt.date], days_per_request: int) -> Iterable[list[dt.date]]:
    """Consecutive runs of days, cut at 1 January and at days_per_request."""
    chunk: list[dt.date] = []
    for day in days:
        breaks_run = chunk and (
            day != chunk[-1] + dt.timedelta(days=1)
            or day.year != chunk[0].year
            or len(chunk) >= days_per_request
        )
        if breaks_run:
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk


def plan_requests(
    days: Iterable[dt.date],
    days_per_request: int = MAX_DAYS_PER_REQUEST,
    endpoint: Endpoint = REGIONAL,
) -> RequestPlan:
    """Plan the fewest requests of `endpoint` that fetch every half-hour of `days`."""
    if not 1 <= days_per_request <= endpoint.max_days_per_request:
        raise ValueError(
            f"days_per_request must be between 1 and {endpoint.max_days_per_request} "
            f"({endpoint.limit}), got {days_per_request}"
        )
    wanted = sorted(set(days))
    plan = RequestPlan(days=tuple(wanted), endpoint=endpoint)
    owner: dict[dt.date, Window] = {}
    for chunk in _chunks(wanted, days_per_request):
        first, last = chunk[0], chunk[-1]
        after_last = day_start(last + dt.timedelta(days=1))
        # A `to` in the next year is truncated by the API; ask only for what it will return.
        end = after_last if after_last.year == first.year else after_last - HALF_HOUR
        window = Window(start=day_start(first), end=end, days=tuple(chunk), endpoint=endpoint)
        plan.windows.append(window)
        owner.update({day: window for day in chunk})

    for day in wanted:
        starts = half_hours_of(day)
        plan.assign([start for start in starts if owner[day].returns(start)], owner[day])
        # Only 31 Dec 23:30 is left over: the boundary half-hour of the request for 1 Jan.
        for start in (start for start in starts if not owner[day].returns(start)):
            supplier = next((w for w in plan.windows if w.returns(start)), None)
            if supplier is None:  # 1 Jan is not being fetched: a small request of its own
                supplier = Window(
                    start=start + HALF_HOUR, end=start + 2 * HALF_HOUR, endpoint=endpoint
                )
                plan.windows.append(supplier)
            plan.assign([start], supplier)
    return plan
