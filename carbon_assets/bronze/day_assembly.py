"""From answers to days: a UTC day is whole once every request that supplies it has answered.

Most days come from one request; 31 December also needs the request for 1 January (the plan's
boundary rule). A day whose request gave up is lost; every other day is handed over as soon as
it is whole, so a failure late in a long backfill keeps everything fetched before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from carbon_assets.bronze.client import Answer
from carbon_assets.bronze.records import Period
from carbon_assets.bronze.request_plan import RequestPlan, Window

# {url, status, attempts, fetched_at, data: [Period, ...]}: one request's part of a day.
Source = dict[str, Any]


class FetchIncomplete(Exception):
    """Some days could not be fetched; `days_stored` others were (None: not known here)."""

    def __init__(self, lost_days: dict[dt.date, str], days_stored: int | None = None):
        self.lost_days = dict(sorted(lost_days.items()))
        self.days_stored = days_stored
        lines = [f"  {day.isoformat()}: {cause}" for day, cause in self.lost_days.items()]
        if days_stored is None:
            others = ""
        elif days_stored == 0:
            others = "; no day was stored"
        else:
            others = f"; every other day ({days_stored:,}) was stored"
        super().__init__(
            f"{len(self.lost_days)} day(s) could not be fetched{others}. "
            "Re-run the same range to fetch only these:\n" + "\n".join(lines)
        )


def whole_days(
    plan: RequestPlan, answers: Iterable[Answer]
) -> Iterator[tuple[dt.date, list[Source]]]:
    """(day, its sources) for each day of the plan, as soon as the day is whole.

    Raises FetchIncomplete at the end when some days' requests gave up, counting as stored
    the days the caller took (it stores each before it asks for the next).
    """
    pending = {day: set(plan.windows_of(day)) for day in plan.days}
    sources: dict[Window, Source | str] = {}  # the source of each answered request, or its failure
    periods: dict[Window, dict[dt.date, list[Period]]] = {}
    lost: dict[dt.date, str] = {}
    taken = 0
    for answer in answers:
        window = answer.window
        sources[window] = answer.failure or answer.source
        periods[window] = {}
        for period in answer.periods:
            periods[window].setdefault(period.start.date(), []).append(period)
        ready = []
        for day, waiting_for in list(pending.items()):
            waiting_for.discard(window)
            if not waiting_for:
                del pending[day]
                ready.append(day)
        for day in ready:
            windows = plan.windows_of(day)
            if failures := [sources[w] for w in windows if isinstance(sources[w], str)]:
                lost[day] = failures[0]
                continue
            # pop: a request's records are freed as soon as their days are handed over.
            yield day, [{**sources[w], "data": periods[w].pop(day, [])} for w in windows]
            taken += 1
    if lost:
        raise FetchIncomplete(lost, days_stored=taken)
