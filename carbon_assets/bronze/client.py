"""An async, polite and resilient HTTP client for the regional range endpoint of the API.

It sends a request plan's requests and yields what each one finally brought (an `Answer`);
it knows nothing of days or files (day_assembly.py turns answers into days).

Politeness: at most `max_concurrency` requests in flight, enforced twice (an asyncio
semaphore around each request and the connector's own connection limit), and a 429/503
pauses every request until its Retry-After has passed, not just the one that got it.
Resilience: 5xx, timeouts, dropped connections and truncated or malformed JSON are retried
with exponential backoff and full jitter; empty payloads and missing half-hours are retried a
few times, then accepted as "the API has no data"; a 4xx fails at once with the API's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import itertools
import json
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets import settings
from carbon_assets.bronze.records import Period, periods_in_response
from carbon_assets.bronze.request_plan import (
    MAX_DAYS_PER_REQUEST,
    RequestPlan,
    Window,
    plan_requests,
)
from carbon_assets.gc_pause import paused_gc

# Why a request was sent again; these are the keys of FetchStats.retries.
RETRY_CAUSES = ("5xx", "429", "timeout", "connection", "malformed", "empty", "incomplete")


class ApiRequestRejected(Exception):
    """The API refused a request (4xx): retrying cannot help, so the run stops."""


@dataclass
class FetchStats:
    requests_planned: int = 0
    http_requests: int = 0
    retries: Counter = field(default_factory=Counter)
    bytes_received: int = 0
    accepted_without_data: int = 0  # requests whose empty or short answer was finally accepted
    peak_in_flight: int = 0
    wall_seconds: float = 0.0

    def retries_by_cause(self) -> dict[str, int]:
        return {cause: self.retries.get(cause, 0) for cause in RETRY_CAUSES}


@dataclass
class Answer:
    """What one request of a plan finally brought.

    `periods` are the records it supplies (the plan's boundary rule drops those another
    request supplies), `source` says where they came from (url, status, attempts,
    fetched_at); `failure` says why there are none when it gave up after its retries.
    """

    window: Window
    periods: list[Period] = field(default_factory=list)
    source: dict[str, Any] | None = None
    failure: str | None = None


@dataclass
class _Attempt:
    """What one HTTP exchange produced."""

    status: int | None = None
    periods: list[Period] | None = None
    retry_cause: str | None = None
    detail: str = ""
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, in either of its forms (seconds, HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - now)


def parse_payload(body: bytes) -> tuple[list[Period] | None, str | None]:
    """(periods, None) for a usable payload, or (None, cause) with cause 'malformed'/'empty'."""
    try:
        periods = periods_in_response(body)
    except ValueError:
        return None, "malformed"
    return (periods, None) if periods else (None, "empty")


def api_error_message(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:300].decode(errors="replace")


class CarbonIntensityApi(ConfigurableResource):
    """Client of the Carbon Intensity API's regional range endpoint."""

    base_url: str | None = Field(
        default=None, description=f"the API; unset: ${settings.API_BASE_URL}, else the public API"
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description=f"requests in flight at most; unset: ${settings.API_MAX_CONCURRENCY}, else "
        f"{settings.DEFAULT_API_MAX_CONCURRENCY}",
    )
    days_per_request: int = Field(default=MAX_DAYS_PER_REQUEST, ge=1, le=MAX_DAYS_PER_REQUEST)
    max_attempts: int = Field(default=8, ge=1, description="HTTP attempts per request for errors")
    empty_attempts: int = Field(
        default=3, ge=1, description="attempts before an empty or short answer is accepted"
    )
    backoff_base_seconds: float = 0.5
    # An answer without data is retried seconds later, not at once: a server that has not yet
    # published a day seldom has it half a second later.
    empty_backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 60.0
    max_retry_after_seconds: float = 900.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0

    @property
    def url(self) -> str:
        return (self.base_url or settings.api_base_url()).rstrip("/")

    @property
    def concurrency(self) -> int:
        return self.max_concurrency or settings.api_max_concurrency()

    def plan(self, days: Iterable[dt.date]) -> RequestPlan:
        return plan_requests(days, self.days_per_request)

    def fetch(self, plan: RequestPlan, log: logging.Logger | None = None) -> Fetch:
        """The plan's requests, sent when the returned Fetch is iterated; see Fetch."""
        return Fetch(self, plan, log or logging.getLogger(__name__))


class _RequestSlots:
    """Who sends next: at most `limit` requests at once (an asyncio.Semaphore), retries first.

    A bare semaphore serves waiters in arrival order, and every window's first attempt queues
    as a backfill starts, so a retry would wait behind all of them and then run alone at the
    end while the other slots sit idle. Here a dispatcher hands each freed slot to the waiting
    request with the lowest (priority, arrival) instead.
    """

    RETRY, FIRST_ATTEMPT = 0, 1

    def __init__(self, limit: int):
        self.semaphore = asyncio.Semaphore(limit)
        self.waiting: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self.arrivals = itertools.count()
        self.dispatcher = asyncio.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        while True:
            await self.semaphore.acquire()
            _, _, granted = await self.waiting.get()
            if granted.cancelled():  # its request was cancelled meanwhile: next one
                self.semaphore.release()
            else:
                granted.set_result(None)

    @contextlib.asynccontextmanager
    async def turn(self, priority: int) -> AsyncIterator[None]:
        granted = asyncio.get_running_loop().create_future()
        self.waiting.put_nowait((priority, next(self.arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # cancelled just as the slot came
                self.semaphore.release()
            raise
        try:
            yield
        finally:
            self.semaphore.release()

    async def close(self) -> None:
        self.dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.dispatcher


_FINISHED = object()
# Answers fetched ahead of the caller, per request slot. Parsed answers wait in memory until
# the caller takes them; when storing days is slower than fetching them (a fast API, a slow
# disk) an unbounded backlog would grow with the range.
ANSWERS_AHEAD_PER_SLOT = 2


class Fetch:
    """One plan's requests: iterate it to send them and get each request's Answer as it comes.

    The requests run on an event loop in a background thread while the caller handles the
    answers, so storing one answer overlaps with fetching the next; a request starts only while
    fewer than ANSWERS_AHEAD_PER_SLOT answers per slot wait for the caller. Iteration raises
    ApiRequestRejected at the first 4xx (after the answers that came before it); leaving the
    loop early cancels the requests still running. `stats` is complete once iteration ends.
    """

    def __init__(self, api: CarbonIntensityApi, plan: RequestPlan, log: logging.Logger):
        self.api, self.plan, self.log = api, plan, log
        self.stats = FetchStats(requests_planned=len(plan.windows))
        self.in_flight = 0
        self.resume_at = 0.0  # monotonic time before which nobody sends (after a 429/503)
        self.random = random.Random()
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task | None = None

    def __iter__(self) -> Iterator[Answer]:
        thread = threading.Thread(target=self._run_loop, name="carbon-api-fetch", daemon=True)
        with paused_gc():
            thread.start()
            try:
                while (item := self._answers.get()) is not _FINISHED:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                    self._took_answer()
            finally:
                self._cancel()
                thread.join()

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:  # noqa: BLE001 - handed to the iterating thread
            self._answers.put(error)
        finally:
            self._answers.put(_FINISHED)

    def _took_answer(self) -> None:
        """The caller is done with an answer: one more request may start."""
        with contextlib.suppress(RuntimeError):  # the loop has closed already
            self._loop.call_soon_threadsafe(self._ahead.release)

    def _cancel(self) -> None:
        self._stop.set()
        if self._loop is not None and self._main is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                self._loop.call_soon_threadsafe(self._main.cancel)

    async def _run(self) -> None:
        self._loop, self._main = asyncio.get_running_loop(), asyncio.current_task()
        if self._stop.is_set():
            return
        started = time.monotonic()
        api = self.api
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=api.connect_timeout_seconds, sock_read=api.read_timeout_seconds
        )
        connector = aiohttp.TCPConnector(limit=api.concurrency, limit_per_host=api.concurrency)
        self.slots = _RequestSlots(api.concurrency)
        self._ahead = asyncio.Semaphore(ANSWERS_AHEAD_PER_SLOT * api.concurrency)
        headers = {"Accept": "application/json", "User-Agent": "carbon-assets (research backfill)"}
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=headers
        ) as session:
            # A finished task holds its answer: each is dropped once its answer is handed over,
            # so that answers the caller has stored can be freed during a long backfill.
            running = {
                asyncio.create_task(self._fetch_window(session, w)) for w in self.plan.windows
            }
            try:
                while running:
                    finished, running = await asyncio.wait(
                        running, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in finished:
                        self._answers.put(task.result())
                    del finished, task
            except BaseException:  # a 4xx, or the caller stopped iterating
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                raise
            finally:
                await self.slots.close()
                self.stats.wall_seconds = time.monotonic() - started

    async def _fetch_window(self, session: aiohttp.ClientSession, window: Window) -> Answer:
        expected = self.plan.expected_half_hours(window)
        url = self.api.url + window.path
        await self._ahead.acquire()  # released by the caller taking this window's answer
        # Errors get max_attempts tries and answers without data empty_attempts: loop up to the
        # larger, so that out_of_tries below is always what ends the loop.
        for attempt in range(1, max(self.api.max_attempts, self.api.empty_attempts) + 1):
            result = await self._attempt(session, url, retry=attempt > 1)
            if result.status is not None and 400 <= result.status < 500 and result.status != 429:
                raise ApiRequestRejected(f"{url} -> HTTP {result.status}: {result.detail}")
            supplied: list[Period] = []
            if result.retry_cause is None:
                supplied, got = self._supplied_by(window, result.periods or [])
                missing = [start for start in expected if start not in got]
                if missing:
                    result.retry_cause = "empty" if not result.periods else "incomplete"
                    result.detail = f"{len(missing)} of {len(expected)} half-hours missing"
            no_data = result.retry_cause in ("empty", "incomplete")
            out_of_tries = attempt >= (
                self.api.empty_attempts if no_data else self.api.max_attempts
            )
            if result.retry_cause is None or (no_data and out_of_tries):
                if no_data:
                    self.stats.accepted_without_data += 1
                    self.log.warning(
                        f"Accepted {url} with {result.detail} after {attempt} attempts: "
                        "the API has no data for them"
                    )
                source = {
                    "url": url,
                    "status": result.status,
                    "attempts": attempt,
                    "fetched_at": dt.datetime.now(dt.UTC).isoformat(),
                }
                return Answer(window, supplied, source)
            if out_of_tries:
                self.log.error(
                    f"Gave up on {url}: {result.retry_cause} ({result.detail}) "
                    f"after {attempt} attempts"
                )
                return Answer(
                    window,
                    failure=(
                        f"{result.retry_cause}: {result.detail} "
                        f"(gave up after {attempt} attempts to {url})"
                    ),
                )
            self.stats.retries[result.retry_cause] += 1
            await asyncio.sleep(self._backoff(attempt, result.retry_after, no_data))
        raise AssertionError("unreachable: the last attempt is always out of tries")

    def _supplied_by(
        self, window: Window, periods: list[Period]
    ) -> tuple[list[Period], set[dt.datetime]]:
        """The periods this window supplies and the half-hours among them that are full.

        Periods of half-hours another request supplies (the boundary half-hour before the
        window's start) are dropped here, so each half-hour is stored once.
        """
        supplied: list[Period] = []
        full: set[dt.datetime] = set()
        for period in periods:
            if self.plan.supplier.get(period.start) != window:
                continue
            supplied.append(period)
            if period.full:
                full.add(period.start)
        return supplied, full

    async def _attempt(self, session: aiohttp.ClientSession, url: str, retry: bool) -> _Attempt:
        """One HTTP exchange, classified; never raises for a retryable failure."""
        async with self.slots.turn(_RequestSlots.RETRY if retry else _RequestSlots.FIRST_ATTEMPT):
            # Checked once the slot is ours, so a pause that began while we queued holds too.
            while (wait := self.resume_at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            self.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
            self.stats.http_requests += 1
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    status = response.status
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except TimeoutError:
                return _Attempt(retry_cause="timeout", detail="no answer within the timeout")
            except aiohttp.ClientPayloadError as error:
                return _Attempt(retry_cause="malformed", detail=f"truncated body ({error})")
            except aiohttp.ClientError as error:
                return _Attempt(retry_cause="connection", detail=f"{type(error).__name__}: {error}")
            finally:
                self.in_flight -= 1
        self.stats.bytes_received += len(body)
        if status in (429, 503):
            pause = retry_after if retry_after is not None else self.api.backoff_base_seconds
            if pause > self.api.max_retry_after_seconds:
                return _Attempt(
                    status=status,
                    retry_cause="429" if status == 429 else "5xx",
                    detail=f"Retry-After {pause:.0f}s is beyond the allowed wait",
                )
            # Everyone waits, not just this request: the server asked us to slow down.
            self.resume_at = max(self.resume_at, time.monotonic() + pause)
            cause = "429" if status == 429 else "5xx"
            return _Attempt(
                status=status, retry_cause=cause, detail=f"HTTP {status}", retry_after=pause
            )
        if status >= 500:
            return _Attempt(
                status=status, retry_cause="5xx", detail=f"HTTP {status}: {api_error_message(body)}"
            )
        if status != 200:
            return _Attempt(status=status, detail=api_error_message(body))
        # Parsing a 13-day answer takes tens of milliseconds: keep the event loop free meanwhile.
        periods, cause = await asyncio.to_thread(parse_payload, body)
        detail = {
            "malformed": "the body is not the API's JSON",
            "empty": "no data in the answer",
        }.get(cause, "")
        return _Attempt(status=status, periods=periods, retry_cause=cause, detail=detail)

    def _backoff(self, attempt: int, retry_after: float | None, no_data: bool = False) -> float:
        """Exponential backoff with full jitter; never sooner than the server's Retry-After.

        Answers without data wait at least half their step (equal jitter), so their retries
        spread over seconds instead of landing in a burst.
        """
        base = self.api.empty_backoff_base_seconds if no_data else self.api.backoff_base_seconds
        ceiling = min(self.api.backoff_max_seconds, base * 2 ** (attempt - 1))
        delay = self.random.uniform(ceiling / 2 if no_data else 0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after) + self.random.uniform(
                0, 0.1 * self.api.backoff_base_seconds
            )
        return delay
