"""An async, polite and resilient HTTP client for the range endpoints of the API (regional and
national: request_plan.Endpoint).

It sends a request plan's requests and yields what each one finally brought (an `Answer`);
it knows nothing of days or files (day_assembly.py turns answers into days).

Politeness: at most `max_concurrency` requests in flight, enforced twice (an asyncio
semaphore around each request and the connector's own connection limit), and a 429/503
pauses every request until its Retry-After has passed, not just the one that got it.
Resilience: 5xx, timeouts, dropped connections and truncated or malformed JSON are retried
with exponential backoff and full jitter; empty payloads and missing half-hours are retried a
few times, then accepted as "the API has no data"; a 4xx fails at once with the API's message.
Distrust: an answer whose records silver could not read or that hold impossible values
(`Period.problems`) is retried a few times, then accepted as sent, problems included, for the
day files to mark invalid; a host that cannot be resolved is retried a few times only.
Bounds: redirects are followed only within the API's origin; each attempt has a deadline, and
its body is read in chunks and decompressed here, with a cap on the bytes received and on the
bytes they decode to, so memory stays bounded whatever a server sends.
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
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from dagster import ConfigurableResource
from pydantic import Field
from yarl import URL

from carbon_assets import settings
from carbon_assets.bronze.records import AnyPeriod, Period, periods_in_response
from carbon_assets.bronze.request_plan import (
    MAX_DAYS_PER_REQUEST,
    REGIONAL,
    Endpoint,
    RequestPlan,
    Window,
    plan_requests,
)
from carbon_assets.gc_pause import paused_gc

# Why a request was sent again; these are the keys of FetchStats.retries.
RETRY_CAUSES = (
    "5xx",
    "429",
    "timeout",
    "connection",
    "dns",
    "malformed",
    "empty",
    "incomplete",
    "invalid",
)
# Causes whose answer is accepted, not given up on, once its attempts are spent.
ACCEPTED_AT_LAST = frozenset({"empty", "incomplete", "invalid"})
# Causes a retry half a second later seldom cures: their backoff counts in seconds.
PATIENT_CAUSES = frozenset({"empty", "incomplete", "invalid", "dns"})

MAX_REDIRECTS = 5
# The header the emulator (carbon_assets/emulator/server.py) sends with every answer.
EMULATOR_HEADER = "X-Carbon-Emulator"
MiB = 2**20
# Bytes read from the socket at a time; the decoded size is checked after each.
READ_CHUNK_BYTES = 256 * 1024
# How many of an answer's problems a log line or failure names before "and N more".
PROBLEMS_NAMED = 3


class ApiRequestRejected(Exception):
    """The API refused a request (4xx) or redirected it where the client does not follow:
    the same request would get the same answer, so the run stops."""


class _BodyRefused(Exception):
    """The answer is over a body limit: failed, not retried (it would be over it again)."""

    def __init__(self, url: str, limit: int, setting: str, what: str = ""):
        super().__init__(
            f"{url} answered more than the limit of {limit:,} bytes{what}; not retried (if the "
            f"API's answers have grown, raise {setting} of the carbon_api resource)"
        )


class _BodyMalformed(Exception):
    """The answer's bytes do not decode (a broken gzip stream, an encoding not asked for)."""


@dataclass
class FetchStats:
    requests_planned: int = 0
    http_requests: int = 0
    retries: Counter = field(default_factory=Counter)
    bytes_received: int = 0
    requests_answered: int = 0  # requests that ended with an answer (the others were lost)
    accepted_without_data: int = 0  # requests whose empty or short answer was finally accepted
    accepted_invalid: int = 0  # requests whose answer with invalid values was finally accepted
    peak_in_flight: int = 0
    wall_seconds: float = 0.0

    def retries_by_cause(self) -> dict[str, int]:
        return {cause: self.retries.get(cause, 0) for cause in RETRY_CAUSES}


@dataclass
class Answer:
    """What one request of a plan finally brought.

    `periods` are the records it supplies (the plan's boundary rule drops those another
    request supplies), each with its `problems`; `source` says where they came from (url
    that answered, status, attempts, fetched_at, and "emulator": True when the emulator
    answered); `failure` says why there are none when it gave up.
    """

    window: Window
    periods: list[Period] = field(default_factory=list)
    source: dict[str, Any] | None = None
    failure: str | None = None


@dataclass
class _Attempt:
    """What one HTTP exchange produced: retry_cause None is a usable answer, and `refused` an
    answer over a body limit, which no retry can cure."""

    status: int | None = None
    url: str = ""  # the URL that answered, after redirects
    emulator: bool = False
    periods: list[Period] = field(default_factory=list)  # those this request supplies
    retry_cause: str | None = None
    detail: str = ""
    retry_after: float | None = None
    missing: str = ""  # "N of M half-hours missing", or "" when none is
    problems: list[str] = field(default_factory=list)
    refused: str | None = None


def redirect_problem(source: str, target: str) -> str | None:
    """Why a redirect from `source` to `target` (absolute URLs) must not be followed, or None.

    Only redirects within the API's origin (scheme, host, port) are followed: the day files
    name the URL that answered, and an answer from another host is not the API's.
    """
    origin, goal = URL(source), URL(target)
    if origin.scheme == "https" and goal.scheme != "https":
        return f"it leaves https for {goal.scheme or 'no scheme'}"
    if (origin.scheme, origin.host, origin.port) != (goal.scheme, goal.host, goal.port):
        return f"{goal.origin() if goal.is_absolute() else goal} is not {origin.origin()}"
    return None


class _BodyDecoder:
    """An answer's body as it arrives, decompressed here (gzip or deflate) so that no more
    than `limit` decoded bytes are ever held, whatever the compressed bytes expand to."""

    def __init__(self, encoding: str, limit: int, url: str):
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise _BodyMalformed(f"the answer is in Content-Encoding {encoding!r}, not asked for")
        self.encoding, self.limit, self.url = encoding, limit, url
        self.inflate: Any = None
        self.parts: list[bytes] = []
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        if self.encoding in ("", "identity"):
            self._keep(chunk)
            return
        if self.inflate is None:
            # gzip, or deflate as the zlib format HTTP specifies; some servers send deflate
            # without the zlib header (its first byte's low bits are not 8), read as raw.
            wbits = 16 + zlib.MAX_WBITS if "gzip" in self.encoding else zlib.MAX_WBITS
            if self.encoding == "deflate" and chunk and chunk[0] & 0x0F != 8:
                wbits = -zlib.MAX_WBITS
            self.inflate = zlib.decompressobj(wbits)
        try:
            while chunk:
                # One byte over the room left shows the limit is passed without holding more.
                self._keep(self.inflate.decompress(chunk, self.limit - self.size + 1))
                chunk = self.inflate.unconsumed_tail
        except zlib.error as error:
            raise _BodyMalformed(
                f"the {self.encoding} body does not decompress ({error})"
            ) from None

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _BodyRefused(self.url, self.limit, "max_decoded_bytes", " decoded")
        if data:
            self.parts.append(data)

    def body(self) -> bytes:
        if self.inflate is not None and not self.inflate.eof:
            raise _BodyMalformed(f"the {self.encoding} body is truncated")
        return b"".join(self.parts)


def named_problems(problems: list[str]) -> str:
    """The first few problems, then how many more."""
    shown = "; ".join(problems[:PROBLEMS_NAMED])
    rest = len(problems) - PROBLEMS_NAMED
    return shown + (f"; and {rest} more" if rest > 0 else "")


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


def parse_payload(
    body: bytes, period_type: type[AnyPeriod] = Period
) -> tuple[list[AnyPeriod] | None, str | None]:
    """(periods, None) for a usable payload, or (None, cause) with cause 'malformed'/'empty'.

    Each period carries its problems (values silver could not read or that are impossible).
    """
    try:
        periods = periods_in_response(body, period_type)
    except ValueError:
        return None, "malformed"
    return (periods, None) if periods else (None, "empty")


def api_error_message(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:300].decode(errors="replace")


class CarbonIntensityApi(ConfigurableResource):
    """Client of the Carbon Intensity API's range endpoints (regional and national)."""

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
    # An impossible value is nearly always what the API holds, so the same answer comes back;
    # a few tries, seconds apart, catch an answer spoiled on its way (a proxy or cache serving
    # a half-written body) without holding the run for the minutes max_attempts' backoff takes.
    # After them the answer is kept as sent, its days are marked invalid, and every later run
    # fetches them again.
    invalid_attempts: int = Field(
        default=3,
        ge=1,
        description="attempts before an answer with unreadable or impossible values is accepted "
        "(its days are stored invalid)",
    )
    # A name that does not resolve is a typo in the base URL or a machine without a network far
    # more often than a resolver's hiccup: a few tries, not max_attempts.
    dns_attempts: int = Field(
        default=3, ge=1, description="attempts when the API's host cannot be resolved"
    )
    backoff_base_seconds: float = 0.5
    # An answer without data is retried seconds later, not at once: a server that has not yet
    # published a day seldom has it half a second later.
    empty_backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 60.0
    max_retry_after_seconds: float = 900.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    attempt_deadline_seconds: float = Field(
        default=180.0,
        gt=0,
        description="the longest one attempt may take, redirects and the whole body included "
        "(the read timeout restarts with every byte, this does not)",
    )
    # The largest real answer (13 days x 48 half-hours x 18 regions) is about 4.4 MB of compact
    # JSON, 12 MB pretty-printed, and far less gzip-compressed: the limits leave room for the
    # API to grow while bounding what a broken or hostile server can make the client hold.
    max_body_bytes: int = Field(
        default=64 * MiB, ge=1, description="the most bytes one answer may send (compressed)"
    )
    max_decoded_bytes: int = Field(
        default=64 * MiB, ge=1, description="the most bytes one answer may decompress to"
    )

    @property
    def url(self) -> str:
        return (self.base_url or settings.api_base_url()).rstrip("/")

    @property
    def concurrency(self) -> int:
        return self.max_concurrency or settings.api_max_concurrency()

    def plan(self, days: Iterable[dt.date], endpoint: Endpoint = REGIONAL) -> RequestPlan:
        """The requests of `endpoint` for `days`: days_per_request regional days a request, and
        the most the endpoint allows for any other."""
        per_request = self.days_per_request if endpoint is REGIONAL else None
        return plan_requests(days, per_request or endpoint.max_days_per_request, endpoint)

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
    ApiRequestRejected at the first 4xx or refused redirect (after the answers that came before
    it); leaving the loop early cancels the requests still running. `stats` is complete once
    iteration ends.
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
        headers = {
            "Accept": "application/json",
            # What _BodyDecoder reads; aiohttp's own decompression would hold a body whole.
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": "carbon-assets (research backfill)",
        }
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, headers=headers, auto_decompress=False
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
        url = self.api.url + window.path
        await self._ahead.acquire()  # released by the caller taking this window's answer
        # Each cause has its own number of attempts: loop up to the largest, so that
        # out_of_tries below is always what ends the loop.
        for attempt in range(1, max(self._attempts_for(c) for c in (None, *RETRY_CAUSES)) + 1):
            result = await self._attempt(session, url, window, retry=attempt > 1)
            if result.status is not None and 400 <= result.status < 500 and result.status != 429:
                raise ApiRequestRejected(f"{url} -> HTTP {result.status}: {result.detail}")
            if result.refused is not None:
                self.log.error(result.refused)
                return Answer(window, failure=f"too large: {result.refused}")
            cause = result.retry_cause
            out_of_tries = attempt >= self._attempts_for(cause)
            if cause is None or (cause in ACCEPTED_AT_LAST and out_of_tries):
                return self._accepted(window, result, attempt)
            if out_of_tries:
                self.log.error(
                    f"Gave up on {url}: {cause} ({result.detail}) after {attempt} attempts"
                )
                return Answer(
                    window,
                    failure=f"{cause}: {result.detail} (gave up after {attempt} attempts to {url})",
                )
            self.stats.retries[cause] += 1
            await asyncio.sleep(self._backoff(attempt, result.retry_after, cause in PATIENT_CAUSES))
        raise AssertionError("unreachable: the last attempt is always out of tries")

    def _attempts_for(self, cause: str | None) -> int:
        api = self.api
        return {
            "empty": api.empty_attempts,
            "incomplete": api.empty_attempts,
            "invalid": api.invalid_attempts,
            "dns": api.dns_attempts,
        }.get(cause, api.max_attempts)

    def _accepted(self, window: Window, result: _Attempt, attempt: int) -> Answer:
        """The answer as it came, its shortcomings logged and counted."""
        self.stats.requests_answered += 1
        if result.problems:
            self.stats.accepted_invalid += 1
            self.log.error(
                f"Accepted {result.url} as sent after {attempt} attempts, with "
                f"{len(result.problems)} invalid value(s), whose days are stored invalid: "
                + named_problems(result.problems)
            )
        if result.missing:
            self.stats.accepted_without_data += 1
            self.log.warning(
                f"Accepted {result.url} with {result.missing} after {attempt} attempts: "
                "the API has no data for them"
            )
        source = {
            "url": result.url,
            "status": result.status,
            "attempts": attempt,
            "fetched_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        if result.emulator:  # only then, so that day files from the real API keep their shape
            source["emulator"] = True
        return Answer(window, result.periods, source)

    def _judge(self, window: Window, body: bytes, result: _Attempt) -> _Attempt:
        """`result` of a 200 answer completed from its body: the periods this request supplies,
        what is missing and what is wrong with them, and the retry cause that follows.

        Runs off the event loop: parsing a 13-day answer takes tens of milliseconds.
        """
        periods, cause = parse_payload(body, self.plan.endpoint.period_type)
        if cause == "malformed":
            result.retry_cause, result.detail = cause, "the body is not the API's JSON"
            return result
        result.periods, full = self._supplied_by(window, periods or [])
        expected = self.plan.expected_half_hours(window)
        if missing := sum(start not in full for start in expected):
            result.missing = f"{missing} of {len(expected)} half-hours missing"
            result.retry_cause = "incomplete" if periods else "empty"
            result.detail = result.missing
        # Invalid values outrank missing ones: they are what no later run may take as data.
        result.problems = [problem for period in result.periods for problem in period.problems]
        if result.problems:
            invalid = sum(bool(period.problems) for period in result.periods)
            result.retry_cause = "invalid"
            result.detail = (
                f"{len(result.problems)} invalid value(s) in {invalid} half-hour(s): "
                + named_problems(result.problems)
            )
        return result

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

    async def _attempt(
        self, session: aiohttp.ClientSession, url: str, window: Window, retry: bool
    ) -> _Attempt:
        """One HTTP exchange (its redirects included), classified; never raises for a
        retryable failure."""
        async with self.slots.turn(_RequestSlots.RETRY if retry else _RequestSlots.FIRST_ATTEMPT):
            # Checked once the slot is ours, so a pause that began while we queued holds too.
            while (wait := self.resume_at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            self.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
            seconds = self.api.attempt_deadline_seconds
            deadline = asyncio.timeout(seconds)
            try:
                async with deadline:
                    result, body = await self._exchange(session, url)
            except TimeoutError:
                detail = (
                    f"no whole answer within the attempt's deadline of {seconds:g} s"
                    if deadline.expired()
                    else "no answer within the timeout"
                )
                return _Attempt(url=url, retry_cause="timeout", detail=detail)
            except _BodyRefused as error:
                return _Attempt(url=url, refused=str(error))
            except _BodyMalformed as error:
                return _Attempt(url=url, retry_cause="malformed", detail=str(error))
            except aiohttp.ClientPayloadError as error:
                return _Attempt(
                    url=url, retry_cause="malformed", detail=f"truncated body ({error})"
                )
            except aiohttp.ClientConnectorDNSError as error:
                return _Attempt(
                    url=url,
                    retry_cause="dns",
                    detail=f"the host {error.host} could not be resolved ({error.os_error})",
                )
            except aiohttp.ClientError as error:
                return _Attempt(
                    url=url, retry_cause="connection", detail=f"{type(error).__name__}: {error}"
                )
            finally:
                self.in_flight -= 1
        status = result.status
        if status in (429, 503):
            pause = (
                result.retry_after
                if result.retry_after is not None
                else self.api.backoff_base_seconds
            )
            result.retry_cause = "429" if status == 429 else "5xx"
            if pause > self.api.max_retry_after_seconds:
                result.retry_after = None
                result.detail = f"Retry-After {pause:.0f}s is beyond the allowed wait"
                return result
            # Everyone waits, not just this request: the server asked us to slow down.
            self.resume_at = max(self.resume_at, time.monotonic() + pause)
            result.retry_after, result.detail = pause, f"HTTP {status}"
        elif status >= 500:
            result.retry_cause, result.detail = "5xx", f"HTTP {status}: {api_error_message(body)}"
        elif status != 200:
            result.detail = api_error_message(body)
            if not 400 <= status < 500:  # another 2xx: an answer without data
                expected = len(self.plan.expected_half_hours(window))
                result.retry_cause = "empty"
                result.detail = result.missing = f"{expected} of {expected} half-hours missing"
        else:
            return await asyncio.to_thread(self._judge, window, body, result)
        return result

    async def _exchange(self, session: aiohttp.ClientSession, url: str) -> tuple[_Attempt, bytes]:
        """GET `url`, following redirects within its origin; (status and where, body).

        Raises ApiRequestRejected for a redirect elsewhere, _BodyRefused over a body limit.
        """
        answering = url
        for _ in range(MAX_REDIRECTS + 1):
            self.stats.http_requests += 1
            async with session.get(URL(answering), allow_redirects=False) as response:
                if 300 <= response.status < 400:
                    location = response.headers.get("Location")
                    if not location:
                        raise ApiRequestRejected(
                            f"{answering} -> HTTP {response.status} redirect without a Location"
                        )
                    target = str(URL(answering).join(URL(location)))
                    if problem := redirect_problem(answering, target):
                        raise ApiRequestRejected(
                            f"{answering} -> HTTP {response.status} redirect to {location} not "
                            f"followed: {problem}"
                        )
                    answering = target
                    continue
                body = await self._read_body(response, answering)
                return _Attempt(
                    status=response.status,
                    url=answering,
                    emulator=EMULATOR_HEADER in response.headers,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                ), body
        raise ApiRequestRejected(f"{url}: more than {MAX_REDIRECTS} redirects, last to {answering}")

    async def _read_body(self, response: aiohttp.ClientResponse, url: str) -> bytes:
        """The body, read in chunks within the raw and decoded limits."""
        limit = self.api.max_body_bytes
        if (length := response.content_length) is not None and length > limit:
            raise _BodyRefused(url, limit, "max_body_bytes", f" (Content-Length {length:,})")
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        decoder = _BodyDecoder(encoding, self.api.max_decoded_bytes, url)
        received = 0
        try:
            async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise _BodyRefused(url, limit, "max_body_bytes")
                decoder.feed(chunk)
        finally:
            self.stats.bytes_received += received
        return decoder.body()

    def _backoff(self, attempt: int, retry_after: float | None, patient: bool = False) -> float:
        """Exponential backoff with full jitter; never sooner than the server's Retry-After.

        The PATIENT_CAUSES (answers without data or with invalid values, a name that does not
        resolve) wait at least half their step (equal jitter), so their retries spread over
        seconds instead of landing in a burst.
        """
        base = self.api.empty_backoff_base_seconds if patient else self.api.backoff_base_seconds
        ceiling = min(self.api.backoff_max_seconds, base * 2 ** (attempt - 1))
        delay = self.random.uniform(ceiling / 2 if patient else 0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after) + self.random.uniform(
                0, 0.1 * self.api.backoff_base_seconds
            )
        return delay
