"""Bronze: the API's raw records, one gzip JSON file per UTC day: the regional series and the
national one (forecast and actual), fetched and kept by the same rules."""

import contextlib
import datetime as dt
from collections import Counter
from collections.abc import Callable

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    ResourceParam,
    asset,
)
from pydantic import Field

from carbon_assets.bronze.client import ApiRequestRejected, CarbonIntensityApi, FetchStats
from carbon_assets.bronze.day_assembly import FetchIncomplete, whole_days
from carbon_assets.bronze.day_files import (
    DayDocument,
    build_document,
    merge_with_previous,
)
from carbon_assets.bronze.records import NationalPeriod
from carbon_assets.bronze.refresh import (
    ACTUALS_PENDING,
    INCOMPLETE,
    INVALID,
    NEW,
    UNSETTLED,
    RefreshPolicy,
    stored_head,
)
from carbon_assets.bronze.request_plan import NATIONAL, REGIONAL, RequestPlan
from carbon_assets.bronze.store import API_LOCK_TIMEOUT_SECONDS, BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.lake_source import (
    SOURCE_FILE,
    LakeSourceMismatch,
    check_lake_source,
    record_lake_source,
)
from carbon_assets.locks import LockDatabase, LockError, LockTimeout, advisory_api_lock
from carbon_assets.partitions import DAILY_ASSET, day_range, partition_range_problem
from carbon_assets.spark import start_spark_soon

# Runs the daemon launches (schedules, UI backfills) queue for this pool (limit 1 in
# dagster.yaml); runs launched any other way (the CLI, the Python API) queue on the lake's
# API lock instead (api_lock below), so two runs never fetch at the same time.
API_POOL = "carbon_api"
# Why a day is fetched; each has a count in the materialization's metadata.
REFETCH = "refetch"
FETCH_REASONS = (NEW, UNSETTLED, INCOMPLETE, INVALID, ACTUALS_PENDING, REFETCH)
# Invalid days whose problems the run's failure spells out (all are counted and dated).
INVALID_DAYS_NAMED = 10


class BronzeConfig(Config):
    refetch: bool = Field(
        default=False,
        description="Fetch every day of the range again, even complete days whose values have "
        "settled.",
    )


class _Progress:
    """Counts days as they are stored, and logs every tenth of the way."""

    def __init__(self, context: AssetExecutionContext, total: int):
        self.context, self.total = context, total
        self.stored = 0
        self.bytes = 0
        self.incomplete: list[str] = []
        self.actuals_pending: list[str] = []  # complete national days still short of actuals
        # {date: [problem, ...]} of the days stored with invalid half-hours
        self.invalid: dict[str, list[str]] = {}
        self.next_report = max(1, total // 10)

    def add(self, document: DayDocument, size: int) -> None:
        self.stored += 1
        self.bytes += size
        if invalid := document.get("invalid_half_hours"):
            self.invalid[document["date"]] = [p for half in invalid for p in half["problems"]]
        elif not document["complete"]:
            self.incomplete.append(document["date"])
        elif document.get("actuals_pending"):
            self.actuals_pending.append(document["date"])
        if self.stored >= self.next_report or self.stored == self.total:
            self.context.log.info(
                f"Stored {self.stored:,}/{self.total:,} days ({self.bytes:,} bytes)"
            )
            self.next_report += max(1, self.total // 10)


BRONZE_ASSET = {
    **DAILY_ASSET,
    "pool": API_POOL,
    "io_manager_key": "bronze_io_manager",
    "kinds": {"python", "json"},
}


@asset(**BRONZE_ASSET, metadata={"lake_folder": "bronze"})
def bronze_carbon_intensity(
    context: AssetExecutionContext,
    config: BronzeConfig,
    carbon_api: CarbonIntensityApi,
    lake: LakeResource,
    refresh_policy: RefreshPolicy,
    # Only for the API lock of a lake in an object store (api_lock below): its database is
    # the one place every run worker reaches. Bronze writes nothing there.
    warehouse: ResourceParam[LockDatabase],
) -> dict[str, str]:
    """Raw regional carbon intensity from the Carbon Intensity API, one file per UTC day.

    Each file holds the API's records for the 48 half-hours that start on that day, unchanged,
    with the request URL, HTTP status, attempts and fetch time of each request behind them.
    Days are fetched in requests of up to 13 days (split at 1 January), at most
    CARBON_API_MAX_CONCURRENCY at a time, with retries and backoff. A day is fetched when it
    has no file, when its last fetch came before its values settled (CARBON_SETTLE_HOURS after
    the day's end), when it is incomplete and inside the settle window or due for another try
    (growing intervals, for CARBON_HEAL_DAYS), or when it holds invalid values; `refetch`
    fetches every day. Every record is decoded with silver's schema and checked against its
    physical range: a day with an impossible value is stored as sent but marked invalid, never
    complete. The lake records the API it was filled from (lake_source.py) and a run against
    another API fails before it sends a request. If some days fail after every retry or stay
    invalid, all other days are still stored and the run fails naming those days; running it
    again fetches only those.
    """
    store = BronzeStore(lake.bronze, on_damaged=context.log.warning)
    # Silver builds these days with Spark: its JVM starts while they are fetched, and not at
    # all in a run that fetches none.
    return fetch_days(
        context, config, carbon_api, lake, refresh_policy, warehouse, store, start_spark_soon
    )


@asset(**BRONZE_ASSET, metadata={"lake_folder": "bronze_national"})
def bronze_national_intensity(
    context: AssetExecutionContext,
    config: BronzeConfig,
    carbon_api: CarbonIntensityApi,
    lake: LakeResource,
    refresh_policy: RefreshPolicy,
    warehouse: ResourceParam[LockDatabase],
) -> dict[str, str]:
    """Raw national (GB) carbon intensity, forecast and actual, one file per UTC day.

    The API's national range endpoint (/intensity/{from}/{to}) answers each half-hour with its
    forecast, its actual (null until published, hours after the half-hour) and its index. Kept
    exactly like the regional files (records as sent, requests behind them, validation), in
    requests of up to 14 days, under the same API lock and pool, so the two never fetch at
    once. A day is final only when its values have settled and every actual is in: a day with
    actuals still pending (counted in its file's head) is fetched again at every run inside
    the settle window, then at growing intervals until CARBON_HEAL_DAYS after its end.
    """
    store = BronzeStore(
        lake.bronze_national, on_damaged=context.log.warning, period_type=NationalPeriod
    )
    return fetch_days(context, config, carbon_api, lake, refresh_policy, warehouse, store)


def fetch_days(
    context: AssetExecutionContext,
    config: BronzeConfig,
    carbon_api: CarbonIntensityApi,
    lake: LakeResource,
    refresh_policy: RefreshPolicy,
    warehouse: LockDatabase,
    store: BronzeStore,
    on_fetching: Callable[[], None] | None = None,
) -> dict[str, str]:
    """Fetch the days of the run's range that need it into `store`, under the lake's API lock;
    {date: day file} of every day of the range. `on_fetching` is called before the first
    request, when there are days to fetch."""
    endpoint = NATIONAL if store.period_type is NationalPeriod else REGIONAL
    key_range = context.partition_key_range
    if problem := partition_range_problem(key_range.start, key_range.end):
        raise Failure(description=f"Nothing fetched: {problem}", allow_retries=False)
    days = day_range(context).days()
    with contextlib.ExitStack() as locked:
        try:
            locked.enter_context(api_lock(context, lake, warehouse))
        except LockError as error:
            raise Failure(
                description=f"Nothing fetched: {error}",
                # a holder may end before the next try; a lock file that is wrong stays wrong
                allow_retries=isinstance(error, LockTimeout),
            ) from None
        _check_source(lake, carbon_api.url)
        for leftover in store.folder.remove_leftovers():
            context.log.warning(f"Removed a partial file left by an interrupted run: {leftover}")
        # Decided under the lock: a run that waited sees what the one before it stored.
        now = dt.datetime.now(dt.UTC)
        reasons = {
            day: REFETCH
            if config.refetch
            else refresh_policy.fetch_reason(day, stored_head(store, day), now)
            for day in days
        }
        to_fetch = [day for day, reason in reasons.items() if reason]
        plan = carbon_api.plan(to_fetch, endpoint)
        why = Counter(reason for reason in reasons.values() if reason)
        per_request = max((len(window.days) for window in plan.windows), default=0)
        context.log.info(
            f"{len(days):,} days in range; {len(days) - len(to_fetch):,} left as they are; "
            f"fetching {len(to_fetch):,} ({', '.join(f'{n} {r}' for r, n in why.items())})"
            f" in {len(plan.windows):,} {endpoint.name} requests (up to {per_request} days "
            f"each, at most {carbon_api.concurrency} at a time)"
        )
        if to_fetch and on_fetching is not None:
            on_fetching()
        progress, stats, lost = _fetch_and_store(context, carbon_api, store, plan, lake)

    metadata = {
        "days_in_range": len(days),
        "days_left_as_they_are": len(days) - len(to_fetch),
        **{f"days_fetched_{reason}": why.get(reason, 0) for reason in FETCH_REASONS},
        "days_written": progress.stored,
        "days_incomplete": len(progress.incomplete),
        "incomplete_days": MetadataValue.json(sorted(progress.incomplete)),
        **(
            {
                "days_actuals_pending": len(progress.actuals_pending),
                "actuals_pending_days": MetadataValue.json(sorted(progress.actuals_pending)),
            }
            if endpoint is NATIONAL
            else {}
        ),
        "days_invalid": len(progress.invalid),
        "invalid_days": MetadataValue.json(dict(sorted(progress.invalid.items()))),
        "bytes_written": progress.bytes,
        "wall_seconds": round(stats.wall_seconds if stats else 0.0, 2),
    }
    if stats is not None:
        metadata |= {
            "requests": stats.requests_planned,
            "http_attempts": stats.http_requests,
            "peak_in_flight": stats.peak_in_flight,
            "requests_answered": stats.requests_answered,
            "accepted_without_data": stats.accepted_without_data,
            "accepted_invalid": stats.accepted_invalid,
            **{f"retries_{cause}": n for cause, n in stats.retries_by_cause().items()},
        }
    if lost or progress.invalid:
        failures = []
        if lost:
            failures.append(str(FetchIncomplete(lost, days_stored=progress.stored)))
            metadata["lost_days"] = MetadataValue.json({d.isoformat(): c for d, c in lost.items()})
        if progress.invalid:
            failures.append(invalid_days_message(progress.invalid))
        raise Failure(description="\n".join(failures), metadata=metadata)
    context.add_output_metadata(metadata)
    return {day.isoformat(): store.location(day) for day in days}


def api_lock(
    context: AssetExecutionContext, lake: LakeResource, warehouse: LockDatabase
) -> contextlib.AbstractContextManager:
    """The lake's API lock, one for both series: an flock in the regional bronze folder of a
    lake on disk (every writer is on this machine, or sees the folder), a PostgreSQL advisory
    lock in the warehouse's database for a lake in an object store (run workers on any machine
    reach that database)."""
    holder = f"run {context.run.run_id}"
    store = BronzeStore(lake.bronze)
    if store.folder.local_path is not None:
        return store.api_lock(on_wait=context.log.info, holder=holder)
    return advisory_api_lock(
        warehouse.url(),
        lake.url,
        holder,
        API_LOCK_TIMEOUT_SECONDS,
        on_wait=context.log.info,
    )


def invalid_days_message(invalid: dict[str, list[str]]) -> str:
    """What the run says of the days it stored with invalid values: each day and its values,
    and what happens next."""
    lines = [
        f"  {day}: {'; '.join(problems[:3])}"
        + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        for day, problems in sorted(invalid.items())[:INVALID_DAYS_NAMED]
    ]
    if len(invalid) > INVALID_DAYS_NAMED:
        lines.append(f"  ... and {len(invalid) - INVALID_DAYS_NAMED} more days")
    return (
        f"{len(invalid)} day(s) came with values silver cannot read or outside their physical "
        "range, after every retry; they are stored as the API sent them but marked invalid "
        "(never complete), so silver, gold and the warehouse do not get them. Every run that "
        "covers them fetches them again (re-run this range once the API has corrected them):\n"
        + "\n".join(lines)
    )


def _check_source(lake: LakeResource, api_base_url: str) -> None:
    """Fail before any request when the lake holds another API's data."""
    try:
        check_lake_source(lake.storage, api_base_url)
    except (LakeSourceMismatch, ValueError) as error:
        raise Failure(
            description=f"Nothing fetched: {error}",
            metadata={"lake": MetadataValue.path(lake.url), "api_base_url": api_base_url},
            allow_retries=False,  # the next try meets the same lake
        ) from None


def _fetch_and_store(
    context: AssetExecutionContext,
    api: CarbonIntensityApi,
    store: BronzeStore,
    plan: RequestPlan,
    lake: LakeResource,
) -> tuple[_Progress, FetchStats | None, dict[dt.date, str]]:
    """Fetch the plan, storing each day as soon as it is whole; (progress, stats, lost days).

    Records the lake's source once the first day is stored (a lake without one)."""
    progress = _Progress(context, len(plan.days))
    if not plan.days:
        return progress, None, {}
    lost: dict[dt.date, str] = {}
    source_recorded = lake.storage.exists(SOURCE_FILE)
    requests = api.fetch(plan, log=context.log)
    try:
        for day, sources in whole_days(plan, requests):
            previous = store.read_periods(day)  # None for a damaged file (set aside, reported)
            document = merge_with_previous(
                build_document(day, sources), previous, store.period_type
            )
            progress.add(document, store.write(document))
            if not source_recorded:  # checked before the first request: the same API
                emulator = any(source.get("emulator") for source in sources)
                record_lake_source(lake.storage, api.url, emulator)
                source_recorded = True
    except ApiRequestRejected as error:
        raise Failure(
            description=f"Stopped at a request the API refused or redirected elsewhere: {error}"
            f" ({progress.stored:,} days stored before it)",
            metadata={"days_stored_before_stopping": progress.stored},
            allow_retries=False,  # a 4xx answers the same next time
        ) from error
    except FetchIncomplete as error:
        lost = error.lost_days
        context.log.error(str(FetchIncomplete(lost, days_stored=progress.stored)))
    stats = requests.stats
    retries = (
        ", ".join(f"{n} {cause}" for cause, n in stats.retries_by_cause().items() if n) or "none"
    )
    stored = (
        f"Fetched and stored {progress.stored:,} of {len(plan.days):,} days"
        if progress.stored
        else f"No day was stored (of {len(plan.days):,} to fetch)"
    )
    context.log.info(
        f"{stored}; {stats.requests_planned:,} requests ({stats.http_requests:,} HTTP "
        f"attempts; retries: {retries}) in {stats.wall_seconds:.1f}s; "
        f"{len(progress.incomplete):,} days stored incomplete, {len(progress.invalid):,} invalid"
        + (
            f", {len(progress.actuals_pending):,} with actuals pending"
            if progress.actuals_pending
            else ""
        )
    )
    return progress, stats, lost
