"""Keeping the warehouse current with no one watching: the daily refresh and the automation sensor.

Both are RUNNING by default (a fresh `make dev` keeps itself current); pause them in the UI
under Automation. Each daily tick asks for two kinds of runs of every layer, regional and
national:
- the settle window: the last CARBON_SETTLE_DAYS complete days, as one run, so revised values
  reach the warehouse (bronze fetches only the days not yet final, see bronze/refresh.py);
- a heal run for each older day stored incomplete, or (national) with actuals still pending,
  that is due for another try (growing intervals, for CARBON_HEAL_DAYS), and for each older day
  stored invalid, at every tick and however old (bronze/refresh.py).
A failed step is tried again later (RETRY_POLICY), fetching only what is still missing. A run
that goes on for MAX_RUN_HOURS is ended by run monitoring (dagster.yaml), so a stuck server
cannot keep the API pool and the lake's lock from the next tick.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    MAX_RUNTIME_SECONDS_TAG,
    AssetSelection,
    AutomationConditionSensorDefinition,
    Backoff,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Jitter,
    RetryPolicy,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from carbon_assets.bronze.client import CarbonIntensityApi
from carbon_assets.bronze.records import NationalPeriod
from carbon_assets.bronze.refresh import (
    ACTUALS_PENDING,
    INCOMPLETE,
    INVALID,
    RefreshPolicy,
    stored_head,
)
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.lake_source import LakeSourceMismatch, check_lake_source
from carbon_assets.partitions import FIRST_FULL_DAY, DayRange

GROUP = "carbon_intensity"
# A transient outage (the API, PostgreSQL) passes without a person: tries again 10, 20 and 40
# minutes later. Only for the unattended job: a run someone launched fails at once.
RETRY_POLICY = RetryPolicy(
    max_retries=3, delay=600, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)

# A tick's runs take minutes and RETRY_POLICY's waits add under two hours (10 + 20 + 40 minutes,
# each up to 10 more with jitter); a run still going after this long is stuck (a server that
# trickles bytes for days) and run monitoring (dagster.yaml) ends it, freeing its pool slot and
# the lake's API lock long before the next tick. A tag, not the instance's max_runtime_seconds:
# a backfill someone launched may rightly take longer.
MAX_RUN_HOURS = 6
MAX_RUN_TAGS = {MAX_RUNTIME_SECONDS_TAG: str(MAX_RUN_HOURS * 3600)}

daily_refresh_job = define_asset_job(
    name="daily_refresh",
    selection=AssetSelection.groups(GROUP),
    description="Fetch, transform and load the settle window (or one day to heal) through every "
    "layer.",
    op_retry_policy=RETRY_POLICY,
)


def range_tags(first: str, last: str) -> dict[str, str]:
    """The tags that make one run of the partitions first..last (what a single-run backfill
    launches)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def refresh_requests(
    tick: dt.datetime, policy: RefreshPolicy, *stores: BronzeStore
) -> list[RunRequest]:
    """The runs a tick at `tick` asks for: the settle window, then one per older day to heal
    in any of `stores` (an incomplete day or one with actuals pending, due for another try;
    an invalid day at every tick)."""
    last = tick.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    if last < FIRST_FULL_DAY:
        return []
    window = DayRange(max(FIRST_FULL_DAY, last - dt.timedelta(days=policy.window_days - 1)), last)
    requests = [
        RunRequest(
            run_key=f"settle-{window}",
            tags={
                **range_tags(str(window.first), str(window.last)),
                "carbon/run": "settle",
                **MAX_RUN_TAGS,
            },
        )
    ]
    to_heal = sorted(
        {day for store in stores for day in _days_to_heal(tick, policy, store, window)}
    )
    for day in to_heal:
        requests.append(
            RunRequest(
                run_key=f"heal-{day}-{tick.date()}",
                tags={**range_tags(str(day), str(day)), "carbon/run": "heal", **MAX_RUN_TAGS},
            )
        )
    return requests


def _days_to_heal(
    tick: dt.datetime, policy: RefreshPolicy, store: BronzeStore, window: DayRange
) -> list[dt.date]:
    """The days before the window that are due for another fetch, in order.

    Every day of the heal horizon is looked at; an invalid day older than that is too (its
    values must never reach a table, however old), found among the stored days by the head of
    its file, so a tick over years of history does not read years of records.
    """
    oldest = max(FIRST_FULL_DAY, window.last - dt.timedelta(days=policy.heal_horizon_days))
    candidates = [
        day for day in store.stored_days() if day < oldest and store.peek_complete(day) is not True
    ]
    if oldest < window.first:
        candidates += DayRange(oldest, window.first - dt.timedelta(days=1)).days()
    return [
        day
        for day in candidates
        if policy.fetch_reason(day, stored_head(store, day), tick)
        in (INCOMPLETE, INVALID, ACTUALS_PENDING)
    ]


# The partition for day D closes at midnight; 00:30 UTC leaves the API time to publish it.
@schedule(
    job=daily_refresh_job,
    cron_schedule="30 0 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 00:30 UTC: the settle window as one run, and a run per incomplete "
    "day due for another try.",
)
def daily_refresh_schedule(
    context: ScheduleEvaluationContext,
    refresh_policy: RefreshPolicy,
    lake: LakeResource,
    carbon_api: CarbonIntensityApi,
) -> list[RunRequest] | SkipReason:
    try:
        check_lake_source(lake.storage, carbon_api.url)
    except LakeSourceMismatch as mismatch:
        # Every run would stop at bronze's own check (the demo's lake under `dev --demo`, say):
        # the tick says why once and launches nothing to fail and be retried.
        return SkipReason(str(mismatch))
    tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    national = BronzeStore(lake.bronze_national, period_type=NationalPeriod)
    return refresh_requests(tick, refresh_policy, BronzeStore(lake.bronze), national)


# Drives the eager() conditions of silver, gold and the warehouse: when bronze is materialized
# on its own (a manual re-fetch), the layers below follow.
automation_sensor = AutomationConditionSensorDefinition(
    "carbon_automation",
    target=AssetSelection.groups(GROUP),
    default_status=DefaultSensorStatus.RUNNING,
    description="Materializes silver, gold and the warehouse when bronze changes under them.",
)
