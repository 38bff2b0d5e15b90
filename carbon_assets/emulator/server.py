"""The emulator's HTTP side: configuration and seeded faults, request statistics, the aiohttp
server (regional and national range endpoints) and the in-process runner (`start_emulator`).
Nothing starts at import time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import json
import math
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web

from carbon_assets.bronze.request_plan import MAX_REGIONAL_RANGE_DAYS, RANGE_TOO_LONG_MESSAGE
from carbon_assets.emulator.data import (
    EARLIEST_PERIOD_START,
    FROM_NOT_BEFORE_TO_MESSAGE,
    FUEL_INDEX,
    HALF_HOUR,
    INVALID_DATETIME_MESSAGE,
    MAX_NATIONAL_RANGE_DAYS,
    NATIONAL_RANGE_TOO_LONG_MESSAGE,
    SERVER_ERROR_MESSAGE,
    UTC,
    as_utc,
    day_periods,
    floor_half_hour,
    format_api_datetime,
    index_label,
    national_period_record,
    parse_api_datetime,
    perc_value,
    period_starts_in_range,
    stable_int,
)
from carbon_assets.vocabulary import FUELS

# ================================================================================================
# Configuration and faults
# ================================================================================================


# Seed distance between two revisions of a date's values.
REVISION_SEED_STEP = 7919


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's answers. All faults are off by default.

    Rates are per-request probabilities; at most one fault is applied to a request. Which
    request gets which fault (and its latency) depends only on (seed, path, how many times that
    exact path was requested before), so a retry of the same URL gets a fresh draw while a run
    stays reproducible whatever order concurrent requests arrive in.
    """

    seed: int = 42
    # Latency before every answer: uniform in [latency_min, latency_max], plus
    # latency_per_day for each day the request asks for (the real API answers bigger ranges
    # more slowly), all times latency_scale.
    latency_min: float = 0.0
    latency_max: float = 0.0
    latency_per_day: float = 0.0
    latency_scale: float = 1.0
    rate_500: float = 0.0
    rate_429: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    rate_reset: float = 0.0
    rate_truncated: float = 0.0
    rate_empty: float = 0.0
    # Retry-After of 429/503 answers: delay-seconds ("1"; a fraction such as "0.05" is sent as
    # is, which is not standard HTTP but keeps tests fast) or, if retry_after_http_date, an
    # HTTP-date that many seconds (rounded up) from now.
    retry_after_seconds: float = 1.0
    retry_after_http_date: bool = False
    # How long a "slow" answer waits before it is sent (past any sensible client timeout).
    slow_seconds: float = 30.0
    # Dates (UTC) whose periods are always missing, like the real 2023-10-21 outage.
    empty_dates: frozenset[dt.date] = frozenset()
    # Period starts served twice in a row, the second copy with different values.
    duplicate_periods: frozenset[dt.datetime] = frozenset()
    # (period start, regionid) pairs left out of their period.
    missing_region_periods: frozenset[tuple[dt.datetime, int]] = frozenset()
    # Dates whose values the API has revised since they were first published: served from
    # another seed (per revision), as the real API revises values after a period ends. Applies
    # to the regional and the national values (forecast and actual).
    revised_dates: frozenset[dt.date] = frozenset()
    revision: int = 1
    # Dates (UTC) on which every period also carries a region the API does not have
    # (UNKNOWN_REGION: id 19, "Atlantis"), as if the API had added one.
    unknown_region_dates: frozenset[dt.date] = frozenset()
    # Extra records that start off the half-hour grid (e.g. 09:15), each with the values of
    # the half-hour it falls in; served when its end lies in the range, like any period.
    off_grid_periods: frozenset[dt.datetime] = frozenset()
    # National actuals arrive late: a half hour's actual is null while its end is later than
    # (the wall clock at the request - actual_delay_hours).
    actual_delay_hours: float = 2.0
    # Dates (UTC, of the period start) whose national actuals are all null whatever the clock.
    pending_actual_dates: frozenset[dt.date] = frozenset()

    def __post_init__(self) -> None:
        # Normalise collections so callers may pass lists/sets and naive (UTC) datetimes.
        object.__setattr__(self, "empty_dates", frozenset(self.empty_dates))
        object.__setattr__(self, "revised_dates", frozenset(self.revised_dates))
        object.__setattr__(
            self, "duplicate_periods", frozenset(as_utc(m) for m in self.duplicate_periods)
        )
        object.__setattr__(
            self,
            "missing_region_periods",
            frozenset((as_utc(m), int(r)) for m, r in self.missing_region_periods),
        )
        object.__setattr__(self, "unknown_region_dates", frozenset(self.unknown_region_dates))
        object.__setattr__(self, "pending_actual_dates", frozenset(self.pending_actual_dates))
        object.__setattr__(self, "actual_delay_hours", float(self.actual_delay_hours))
        object.__setattr__(
            self, "off_grid_periods", frozenset(as_utc(m) for m in self.off_grid_periods)
        )
        for moment in self.off_grid_periods:
            if moment == floor_half_hour(moment):
                raise ValueError(f"off_grid_periods: {moment.isoformat()} is on the grid")
        for name, rate in self.fault_rates().items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"rate_{name} must be in [0, 1], got {rate}")
        if sum(self.fault_rates().values()) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        if not 0.0 <= self.latency_min <= self.latency_max:
            raise ValueError("need 0 <= latency_min <= latency_max")
        if min(self.latency_per_day, self.latency_scale, self.slow_seconds) < 0:
            raise ValueError("latency_per_day, latency_scale and slow_seconds must be >= 0")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be >= 0")
        if not self.actual_delay_hours >= 0:  # also rejects NaN
            raise ValueError("actual_delay_hours must be >= 0")

    def data_seed(self, day: dt.date) -> int:
        """The seed of ``day``'s values: another one per revision when the date is revised."""
        return self.seed + REVISION_SEED_STEP * self.revision * (day in self.revised_dates)

    def fault_rates(self) -> dict[str, float]:
        """Fault name -> probability, in the fixed order the draw uses."""
        return {
            "reset": self.rate_reset,
            "500": self.rate_500,
            "429": self.rate_429,
            "503": self.rate_503,
            "slow": self.rate_slow,
            "truncated": self.rate_truncated,
            "empty": self.rate_empty,
        }


@dataclasses.dataclass(frozen=True)
class FaultDraw:
    """What happens to one request: the latency to add and at most one fault."""

    latency: float
    fault: str | None


def draw_fault(config: EmulatorConfig, path: str, nth_request: int) -> FaultDraw:
    """The deterministic latency and fault for the ``nth_request``-th request (0-based) of
    ``path``."""
    rng = random.Random(stable_int(config.seed, path, nth_request))
    # Always draw latency first so the fault draw does not depend on the latency settings.
    latency = rng.uniform(config.latency_min, config.latency_max) * config.latency_scale
    roll = rng.random()
    threshold = 0.0
    for fault, rate in config.fault_rates().items():
        threshold += rate
        if roll < threshold:
            return FaultDraw(latency, fault)
    return FaultDraw(latency, None)


def _error_body(status: int, message: str) -> bytes:
    code = f"{status} {HTTPStatus(status).phrase}"
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()


def _retry_after_value(config: EmulatorConfig) -> str:
    """Retry-After as delay-seconds (a decimal when fractional, handy for fast tests) or a date."""
    if config.retry_after_http_date:
        # HTTP dates have whole seconds; round up so the client never retries too early.
        when = dt.datetime.now(UTC) + dt.timedelta(seconds=math.ceil(config.retry_after_seconds))
        return email.utils.format_datetime(when, usegmt=True)
    seconds = config.retry_after_seconds
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _shifted_period_text(text: bytes, year: int) -> bytes:
    """The second copy of a duplicated period: forecast +7 and 2 points moved to wind or hydro."""
    period = json.loads(text)
    for region in period["regions"]:
        mix_tenths = [round(entry["perc"] * 10) for entry in region["generationmix"]]
        largest = max(range(len(FUELS)), key=mix_tenths.__getitem__)
        receiver = FUEL_INDEX["wind"] if largest != FUEL_INDEX["wind"] else FUEL_INDEX["hydro"]
        moved = min(20, mix_tenths[largest])
        mix_tenths[largest] -= moved
        mix_tenths[receiver] += moved
        for entry, tenths in zip(region["generationmix"], mix_tenths):
            entry["perc"] = perc_value(tenths)
        forecast = region["intensity"]["forecast"] + 7
        region["intensity"] = {"forecast": forecast, "index": index_label(forecast, year)}
    return json.dumps(period, separators=(",", ":")).encode()


# The region unknown_region_dates adds: an id and names the real API has never used.
UNKNOWN_REGION = {"regionid": 19, "dnoregion": "Atlantis Power Networks", "shortname": "Atlantis"}


def _with_unknown_region(text: bytes) -> bytes:
    """The period with UNKNOWN_REGION appended, carrying the GB region's values."""
    period = json.loads(text)
    gb = period["regions"][-1]
    period["regions"].append({**gb, **UNKNOWN_REGION})
    return json.dumps(period, separators=(",", ":")).encode()


def _off_grid_text(text: bytes, moment: dt.datetime) -> bytes:
    """A copy of the half-hour `text` that starts at `moment` (off the grid) instead."""
    period = json.loads(text)
    period["from"] = format_api_datetime(moment)
    period["to"] = format_api_datetime(moment + HALF_HOUR)
    return json.dumps(period, separators=(",", ":")).encode()


def _without_regions(text: bytes, regionids: set[int]) -> bytes:
    period = json.loads(text)
    period["regions"] = [r for r in period["regions"] if r["regionid"] not in regionids]
    return json.dumps(period, separators=(",", ":")).encode()


def build_range_body(config: EmulatorConfig, start: dt.datetime, end: dt.datetime) -> bytes:
    """The 200 body for a valid range request, with the data-shaping options applied."""
    if end < EARLIEST_PERIOD_START + HALF_HOUR:
        return b'{"data":null}'  # entirely before the earliest regional data
    starts = period_starts_in_range(start, end)
    available = [s for s in starts if s >= EARLIEST_PERIOD_START]
    missing_regions: dict[dt.datetime, set[int]] = {}
    for moment, regionid in config.missing_region_periods:
        missing_regions.setdefault(moment, set()).add(regionid)
    off_grid = sorted(
        moment
        for moment in config.off_grid_periods
        if start <= moment + HALF_HOUR <= end and moment >= EARLIEST_PERIOD_START
    )
    parts: list[tuple[dt.datetime, bytes]] = []
    for period_start in [*available, *off_grid]:
        day = period_start.date()
        if day in config.empty_dates:
            continue
        on_grid = floor_half_hour(period_start)
        text = day_periods(config.data_seed(day), day)[on_grid.hour * 2 + on_grid.minute // 30]
        if period_start in missing_regions:
            text = _without_regions(text, missing_regions[period_start])
        if day in config.unknown_region_dates:
            text = _with_unknown_region(text)
        if period_start != on_grid:
            text = _off_grid_text(text, period_start)
        parts.append((period_start, text))
        if period_start in config.duplicate_periods:
            parts.append((period_start, _shifted_period_text(text, period_start.year)))
    parts.sort(key=lambda part: part[0])  # stable: a duplicate stays after its original
    return b'{"data":[' + b",".join(text for _, text in parts) + b"]}"


def national_records(
    config: EmulatorConfig,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime | None = None,
) -> list[dict] | None:
    """The national records ``GET /intensity/{start}/{end}`` serves at wall-clock ``now``.

    Same range rule, year-boundary truncation, earliest period and empty_dates as the regional
    endpoint (None, served as ``{"data":null}``, when the range ends before the earliest data).
    Actuals are None for pending_actual_dates and for periods ending after
    ``now - actual_delay_hours``; ``now`` defaults to the current time.
    """
    start, end = as_utc(start), as_utc(end)
    if end < EARLIEST_PERIOD_START + HALF_HOUR:
        return None
    now = dt.datetime.now(UTC) if now is None else as_utc(now)
    published_until = now - dt.timedelta(hours=config.actual_delay_hours)
    records = []
    for period_start in period_starts_in_range(start, end):
        day = period_start.date()
        if period_start < EARLIEST_PERIOD_START or day in config.empty_dates:
            continue
        published = (
            day not in config.pending_actual_dates and period_start + HALF_HOUR <= published_until
        )
        records.append(national_period_record(period_start, config.data_seed(day), published))
    return records


def build_national_body(
    config: EmulatorConfig, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None
) -> bytes:
    """The 200 body for a valid national range request (compact JSON)."""
    records = national_records(config, start, end, now)
    return json.dumps({"data": records}, separators=(",", ":")).encode()


# ================================================================================================
# Request statistics
# ================================================================================================


class EmulatorStats:
    """Thread-safe request counters (read from the test thread, written by the server loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters; the in-flight gauge keeps its live value and seeds the peak."""
        with self._lock:
            self._total = 0
            self._by_status: Counter[str] = Counter()
            self._by_path: Counter[str] = Counter()
            self._by_endpoint: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._peak_in_flight = self._in_flight
            self._latency_total = 0.0
            self._slow_total = 0.0

    def enter(self, path: str, endpoint: str) -> None:
        """Count a request of ``path`` to ``endpoint`` ("regional" or "national")."""
        with self._lock:
            self._total += 1
            self._by_path[path] += 1
            self._by_endpoint[endpoint] += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)

    def leave(self, outcome: str) -> None:
        """``outcome`` is the status code, or "reset"/"aborted" when no response was sent."""
        with self._lock:
            self._in_flight -= 1
            self._by_status[outcome] += 1

    def add_fault(self, fault: str) -> None:
        with self._lock:
            self._faults[fault] += 1

    def add_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency_total += seconds

    def add_slow(self, seconds: float) -> None:
        with self._lock:
            self._slow_total += seconds

    def snapshot(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (the body of ``GET /_stats``)."""
        with self._lock:
            return {
                "requests_total": self._total,
                "by_status": dict(sorted(self._by_status.items())),
                "by_path": dict(sorted(self._by_path.items())),
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "faults": dict(sorted(self._faults.items())),
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                # Sum of the injected latency (not of slow-fault sleeps), for ideal wall times.
                "latency_seconds_total": round(self._latency_total, 6),
                "slow_seconds_total": round(self._slow_total, 6),
            }


# ================================================================================================
# The aiohttp server
# ================================================================================================

# A one-element list, so a running emulator can be reconfigured (aiohttp freezes app state).
CONFIG_KEY = web.AppKey("emulator_config", list)
STATS_KEY = web.AppKey("emulator_stats", EmulatorStats)
PATH_COUNTS_KEY = web.AppKey("emulator_path_counts", Counter)
BODY_EXECUTOR_KEY = web.AppKey("emulator_body_executor", concurrent.futures.ThreadPoolExecutor)

_JSON_CONTENT_TYPE = "application/json"
# Forward/backward windows of the fw24h/fw48h/pt24h variants.
_RELATIVE_WINDOWS = {
    "fw24h": (dt.timedelta(0), dt.timedelta(hours=24)),
    "fw48h": (dt.timedelta(0), dt.timedelta(hours=48)),
    "pt24h": (dt.timedelta(hours=-24), dt.timedelta(0)),
}


@dataclasses.dataclass(frozen=True)
class _RangeEndpoint:
    """What differs between the regional and the national range endpoints."""

    name: str  # the key in the stats' by_endpoint
    max_days: int  # spans of this many days or more are rejected
    too_long_message: str
    build_body: Callable[[EmulatorConfig, dt.datetime, dt.datetime, dt.datetime], bytes]


def _build_regional_body(
    config: EmulatorConfig, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> bytes:
    return build_range_body(config, start, end)  # regional values do not depend on the clock


REGIONAL_ENDPOINT = _RangeEndpoint(
    "regional", MAX_REGIONAL_RANGE_DAYS, RANGE_TOO_LONG_MESSAGE, _build_regional_body
)
NATIONAL_ENDPOINT = _RangeEndpoint(
    "national", MAX_NATIONAL_RANGE_DAYS, NATIONAL_RANGE_TOO_LONG_MESSAGE, build_national_body
)


def _asked_window(from_text: str, to_text: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The window a ``{from}/{to}`` request asks for; None where a bound does not parse."""
    start = parse_api_datetime(from_text)
    if to_text in _RELATIVE_WINDOWS and start is not None:
        before, after = _RELATIVE_WINDOWS[to_text]
        try:
            return start + before, start + after
        except OverflowError:  # within a day of year 1 or 9999
            return None, None
    return start, parse_api_datetime(to_text)


def _range_latency(
    config: EmulatorConfig, endpoint: _RangeEndpoint, from_text: str, to_text: str
) -> float:
    """The latency a request adds for the days it asks for: none for a window the endpoint
    refuses (it answers 400 at once)."""
    start, end = _asked_window(from_text, to_text)
    if config.latency_per_day == 0 or start is None or end is None or start >= end:
        return 0.0
    if end - start >= dt.timedelta(days=endpoint.max_days):
        return 0.0
    days = (end - start) / dt.timedelta(days=1)
    return config.latency_per_day * days * config.latency_scale


def _answer_range(
    endpoint: _RangeEndpoint,
    config: EmulatorConfig,
    from_text: str,
    to_text: str,
    now: dt.datetime,
) -> tuple[int, bytes]:
    """Status and body of a fault-free ``{from}/{to}`` request to ``endpoint``."""
    start, end = _asked_window(from_text, to_text)
    if start is None or end is None:
        return 400, _error_body(400, INVALID_DATETIME_MESSAGE)
    if start >= end:
        return 400, _error_body(400, FROM_NOT_BEFORE_TO_MESSAGE)
    if end - start >= dt.timedelta(days=endpoint.max_days):
        return 400, _error_body(400, endpoint.too_long_message)
    try:
        return 200, endpoint.build_body(config, start, end, now)
    except OverflowError:  # a period would end after year 9999
        return 200, b'{"data":[]}'


def _reset_connection(request: web.Request) -> None:
    """Drop the TCP connection with an RST (SO_LINGER 0), sending nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already closed; abort() below is still right
    transport.abort()


async def _handle_range(request: web.Request, endpoint: _RangeEndpoint) -> web.StreamResponse:
    """A ``{from}/{to}`` request to ``endpoint``, with latency and faults."""
    (config,) = request.app[CONFIG_KEY]
    # The clock when the request arrives decides which actuals are published (read per request,
    # so that tests can move it).
    now = dt.datetime.now(UTC)
    stats = request.app[STATS_KEY]
    path = request.path
    path_counts = request.app[PATH_COUNTS_KEY]
    nth_request = path_counts[path]
    path_counts[path] += 1
    draw = draw_fault(config, path, nth_request)
    latency = draw.latency + _range_latency(
        config, endpoint, request.match_info["from"], request.match_info["to"]
    )

    stats.enter(path, endpoint.name)
    # Stays "aborted" if the client goes away (aiohttp cancels the handler) or the write fails.
    outcome = "aborted"
    answer = None
    if draw.fault in (None, "slow", "truncated", "empty"):
        # The latency is the server's whole response time, so the body is built meanwhile (on
        # the app's worker thread: a cold 13-day body takes a while) rather than after it.
        answer = asyncio.get_running_loop().run_in_executor(
            request.app[BODY_EXECUTOR_KEY],
            _answer_range,
            endpoint,
            config,
            request.match_info["from"],
            request.match_info["to"],
            now,
        )
    try:
        if latency > 0:
            stats.add_latency(latency)
            await asyncio.sleep(latency)
        if draw.fault is not None:
            stats.add_fault(draw.fault)
        if draw.fault == "reset":
            _reset_connection(request)
            outcome = "reset"
            # Nothing can be sent any more; aiohttp drops the response of a closed transport.
            return web.Response(status=500)
        if draw.fault == "slow":
            stats.add_slow(config.slow_seconds)
            await asyncio.sleep(config.slow_seconds)

        headers: dict[str, str] = {}
        if draw.fault == "500":
            status, body = 500, _error_body(500, SERVER_ERROR_MESSAGE)
        elif draw.fault in ("429", "503"):
            status = int(draw.fault)
            message = "Too many requests" if status == 429 else "Service temporarily unavailable"
            body = _error_body(status, message)
            headers["Retry-After"] = _retry_after_value(config)
        else:
            status, body = await answer
            if status == 200 and draw.fault == "truncated":
                body = body[: len(body) // 2]  # Content-Length matches the cut body
            elif status == 200 and draw.fault == "empty":
                body = b"{}"

        response = web.Response(
            body=body, status=status, headers=headers, content_type=_JSON_CONTENT_TYPE
        )
        # Send it here, not after returning, so "in flight" lasts until the body is written.
        await response.prepare(request)
        await response.write_eof()
        outcome = str(status)
        return response
    finally:
        stats.leave(outcome)


async def _handle_regional_range(request: web.Request) -> web.StreamResponse:
    """``GET /regional/intensity/{from}/{to}``."""
    return await _handle_range(request, REGIONAL_ENDPOINT)


async def _handle_national_range(request: web.Request) -> web.StreamResponse:
    """``GET /intensity/{from}/{to}``."""
    return await _handle_range(request, NATIONAL_ENDPOINT)


async def _handle_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].snapshot())


async def _handle_stats_reset(request: web.Request) -> web.Response:
    request.app[STATS_KEY].reset()
    return web.json_response(request.app[STATS_KEY].snapshot())


# Sent with every answer, so that a client can tell (and record) that it was not the real API.
EMULATOR_HEADER = "X-Carbon-Emulator"


async def _mark_as_emulator(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[EMULATOR_HEADER] = "1"


async def _shutdown_body_executor(app: web.Application) -> None:
    app[BODY_EXECUTOR_KEY].shutdown(wait=False, cancel_futures=True)


def create_app(config: EmulatorConfig) -> web.Application:
    """The emulator as an aiohttp application (run it with any aiohttp runner)."""
    app = web.Application()
    app[CONFIG_KEY] = [config]
    app[STATS_KEY] = EmulatorStats()
    app[PATH_COUNTS_KEY] = Counter()
    # One worker: bodies are CPU-bound Python, so more threads would only contend for the GIL.
    app[BODY_EXECUTOR_KEY] = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="emulator-body"
    )
    app.on_cleanup.append(_shutdown_body_executor)
    app.on_response_prepare.append(_mark_as_emulator)
    app.router.add_get("/regional/intensity/{from}/{to}", _handle_regional_range)
    app.router.add_get("/intensity/{from}/{to}", _handle_national_range)
    app.router.add_get("/_stats", _handle_stats)
    app.router.add_post("/_stats/reset", _handle_stats_reset)
    return app


def _make_runner(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    # handler_cancellation: when a client gives up (e.g. on a slow answer) its handler stops,
    # so it no longer counts as in flight and shutdown does not wait for it.
    return web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout
    )


# ================================================================================================
# In-process runner
# ================================================================================================


class RunningEmulator:
    """An emulator serving from a daemon thread with its own event loop. Use ``stop()`` or
    ``with``."""

    def __init__(self, config: EmulatorConfig, host: str, port: int) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.base_url = ""
        self._app = create_app(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="carbon-api-emulator", daemon=True)

    def _start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise RuntimeError("the emulator failed to start") from self._startup_error

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread by _start
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _bind(self) -> None:
        self._runner = _make_runner(self._app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{self.port}"

    def stats(self) -> dict:
        """The same dict as ``GET /_stats``."""
        return self._app[STATS_KEY].snapshot()

    def reconfigure(self, **changes: Any) -> EmulatorConfig:
        """Change the answers from now on (e.g. revised_dates, empty_dates, pending_actual_dates),
        as the real API's data changes between two runs; returns the new configuration."""
        return self.replace_config(dataclasses.replace(self.config, **changes))

    def replace_config(self, config: EmulatorConfig) -> EmulatorConfig:
        """Serve with ``config`` from the next request on; returns it."""
        self.config = config
        self._app[CONFIG_KEY][0] = config
        return config

    def reset_stats(self) -> None:
        """Same as ``POST /_stats/reset``. Fault draws keep counting per path (not reset)."""
        self._app[STATS_KEY].reset()

    def stop(self) -> None:
        """Close the server and its thread. Safe to call more than once."""
        if self._stopped or self._loop is None or self._runner is None:
            return
        self._stopped = True
        loop = self._loop
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_emulator(
    config: EmulatorConfig = EmulatorConfig(), port: int = 0, host: str = "127.0.0.1"
) -> RunningEmulator:
    """Start the emulator in a background thread; returns once it accepts connections.

    ``port=0`` picks a free port; read it back from ``.port`` / ``.base_url``.
    """
    emulator = RunningEmulator(config, host, port)
    emulator._start()
    return emulator
