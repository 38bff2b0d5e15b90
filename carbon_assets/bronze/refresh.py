"""When bronze fetches a stored day again: revisions until the day settles, holes until they heal.

The API revises values for at least 24 hours after a period ends (docs/api-contract.md, section 5),
so a day fetched sooner than `settle_hours` after its end is fetched again by a later run, and
a day fetched after that is final: it is never requested again. A day stored incomplete (the
API had no or partial data) is fetched again by every run while it is inside the settle window
(the last `window_days` complete days: the window's request fetches it anyway), then with
growing intervals, each at least as long as the day was old at its last fetch, until it is
complete or `heal_days` old. A day holding invalid values (day_files.py) is fetched again by
every run that covers it, however old: its values must never reach a table; the daily schedule
asks for a run of each such day at every tick (automation.py). A national day whose actuals are
not all published (the API sends them hours after each half-hour) is not final either: it is
fetched again like an incomplete day, until every actual is in or the day is `heal_days` old.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.bronze.day_files import DayHead
from carbon_assets.bronze.request_plan import day_start
from carbon_assets.bronze.store import BronzeStore

NEW, UNSETTLED, INCOMPLETE, INVALID = "new", "unsettled", "incomplete", "invalid"
ACTUALS_PENDING = "actuals_pending"
DAY = dt.timedelta(days=1)


def fetch_reason(
    day: dt.date,
    head: DayHead | None,
    now: dt.datetime,
    settle_hours: float,
    heal_days: int,
    window_days: int = 0,
) -> str | None:
    """Why `day` must be fetched now (NEW, UNSETTLED, INVALID, INCOMPLETE or ACTUALS_PENDING),
    or None to leave it."""
    if head is None:
        return NEW
    day_end = day_start(day) + DAY
    if head.complete:
        settled_from = day_end + dt.timedelta(hours=settle_hours)
        if head.first_fetched_at is None or head.first_fetched_at < settled_from:
            return UNSETTLED
        if head.actuals_pending and _due_again(day, head, now, heal_days, window_days):
            return ACTUALS_PENDING
        return None
    if head.invalid:
        return INVALID
    return INCOMPLETE if _due_again(day, head, now, heal_days, window_days) else None


def _due_again(
    day: dt.date, head: DayHead, now: dt.datetime, heal_days: int, window_days: int
) -> bool:
    """Whether a day still short of data is due for another fetch: at every run inside the
    settle window, then at growing intervals until it is `heal_days` old."""
    day_end = day_start(day) + DAY
    today = now.astimezone(dt.UTC).date()
    if today - dt.timedelta(days=window_days) <= day < today:
        return True  # inside the settle window
    if now - day_end > dt.timedelta(days=heal_days):
        return False  # too old to hope for more: the API keeps its holes
    last = head.last_fetched_at
    return last is None or now - last >= max(last - day_end, dt.timedelta(0))


def stored_head(store: BronzeStore, day: dt.date) -> DayHead | None:
    """The day file's head, with `invalid` read from its summary when it is incomplete (an
    invalid day is never complete, and the head alone cannot tell the two apart)."""
    head = store.head(day)
    if head is None or head.complete:
        return head
    summary = store.summary(day) or {}
    return dataclasses.replace(head, invalid=bool(summary.get("invalid_half_hours")))


class RefreshPolicy(ConfigurableResource):
    """How the warehouse keeps current: the daily run's window, when a day's values are final,
    how long a hole is retried. Unset fields come from the environment."""

    settle_days: int | None = Field(
        default=None,
        ge=1,
        description=f"complete days each daily run re-materializes; unset: ${settings.SETTLE_DAYS},"
        f" else {settings.DEFAULT_SETTLE_DAYS}",
    )
    settle_hours: float | None = Field(
        default=None,
        ge=0,
        description=f"hours after a day's end before its values are final; unset: "
        f"${settings.SETTLE_HOURS}, else {settings.DEFAULT_SETTLE_HOURS:g}",
    )
    heal_days: int | None = Field(
        default=None,
        ge=0,
        description=f"days after its end an incomplete day is still fetched again; unset: "
        f"${settings.HEAL_DAYS}, else {settings.DEFAULT_HEAL_DAYS}",
    )

    @property
    def window_days(self) -> int:
        return self.settle_days or settings.settle_days()

    @property
    def final_after_hours(self) -> float:
        return self.settle_hours if self.settle_hours is not None else settings.settle_hours()

    @property
    def heal_horizon_days(self) -> int:
        return self.heal_days if self.heal_days is not None else settings.heal_days()

    def fetch_reason(self, day: dt.date, head: DayHead | None, now: dt.datetime) -> str | None:
        return fetch_reason(
            day, head, now, self.final_after_hours, self.heal_horizon_days, self.window_days
        )
