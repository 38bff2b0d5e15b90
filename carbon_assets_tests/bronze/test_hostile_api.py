"""The client against broken or hostile servers on loopback: impossible values, redirects
elsewhere, a gzip bomb, oversized and trickling answers, a host that does not resolve."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web

from carbon_assets.bronze.client import ApiRequestRejected, CarbonIntensityApi, redirect_problem
from carbon_assets.bronze.day_assembly import FetchIncomplete, whole_days
from carbon_assets.bronze.records import parse_api_datetime
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.emulator import EmulatorConfig, build_range_body
from carbon_assets_tests.bronze.test_ingestion import materialize_bronze
from carbon_assets_tests.helpers import FAST_API

DAY = dt.date(2024, 1, 2)
BAD_HALF_HOUR = "2024-01-02T10:00Z"
MiB = 2**20


@contextmanager
def serving(
    handler: Callable, host: str = "127.0.0.1", port: int = 0
) -> Iterator[tuple[str, list[str]]]:
    """A server on a loopback address answering every GET with `handler`, in a thread of its
    own; yields (base URL, the paths it was asked for)."""
    hits: list[str] = []

    async def counted(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return await handler(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", counted)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, host, port).start())
    bound = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{bound}", hits
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def range_body(path: str) -> bytes:
    """The emulator's answer to a /regional/intensity/{from}/{to} path."""
    start, end = (parse_api_datetime(part) for part in path.split("/")[-2:])
    return build_range_body(EmulatorConfig(seed=5), start, end)


def fetch(base_url: str, days: list[dt.date], log: logging.Logger | None = None, **options):
    """(stats, {day: sources}) of the client over `days`."""
    api = CarbonIntensityApi(base_url=base_url, **(FAST_API | options))
    plan = api.plan(days)
    requests = api.fetch(plan, log=log)
    return requests.stats, dict(whole_days(plan, requests))


# --- impossible values are retried, then kept as sent with their problems ----------------

# (what, a pattern in region 3's record of BAD_HALF_HOUR, its replacement, a problem's words)
HOSTILE_VALUES = {
    "absurd gas share": (rb'\{"fuel":"gas","perc":[0-9.]+\}', b'{"fuel":"gas","perc":1e9}', "gas"),
    "non-numeric forecast": (rb'"forecast":[0-9.]+', b'"forecast":"abc"', "forecast"),
    "overflowing forecast": (rb'"forecast":[0-9.]+', b'"forecast":1e309', "forecast"),
    "forecast of 10^15": (rb'"forecast":[0-9.]+', b'"forecast":1000000000000000', "forecast"),
    "forecast of 2e9": (rb'"forecast":[0-9.]+', b'"forecast":2000000000', "forecast"),
}


def with_value(body: bytes, pattern: bytes, replacement: bytes) -> bytes:
    """`body` with the first match of `pattern` in region 3 of BAD_HALF_HOUR replaced."""
    at = body.index(b'"from":"%s"' % BAD_HALF_HOUR.encode())
    at = body.index(b'"regionid":3,', at)
    tail, replaced = re.subn(pattern, replacement, body[at:], count=1)
    assert replaced == 1
    return body[:at] + tail


@pytest.mark.parametrize("hostile", sorted(HOSTILE_VALUES))
def test_an_impossible_value_is_retried_then_kept_as_sent_with_its_problem(hostile, caplog):
    pattern, replacement, words = HOSTILE_VALUES[hostile]

    async def answer(request):
        body = with_value(range_body(request.path), pattern, replacement)
        return web.Response(body=body, content_type="application/json")

    log = logging.getLogger(f"test.hostile.{hostile}")
    with serving(answer) as (base_url, hits), caplog.at_level(logging.ERROR):
        stats, stored = fetch(base_url, [DAY], log=log, invalid_attempts=3)
    assert len(hits) == 3, "retried, then accepted"
    assert (stats.retries["invalid"], stats.accepted_invalid, stats.requests_answered) == (2, 1, 1)
    (source,) = stored[DAY]
    assert source["attempts"] == 3 and "emulator" not in source
    bad = [period for period in source["data"] if period.problems]
    assert [period.start for period in bad] == [parse_api_datetime(BAD_HALF_HOUR)]
    assert replacement in bad[0].raw, "kept as sent"
    (problem,) = bad[0].problems
    assert problem.startswith(f"{BAD_HALF_HOUR} region 3") and words in problem, problem
    assert len(source["data"]) == 48, "every half-hour is kept"
    (record,) = [r for r in caplog.records if r.name == log.name]
    assert "1 invalid value(s)" in record.getMessage() and BAD_HALF_HOUR in record.getMessage()


def test_an_invalid_answer_that_heals_on_a_retry_is_taken_clean():
    async def answer(request):
        body = range_body(request.path)
        if len(hits) == 1:
            body = with_value(body, *HOSTILE_VALUES["absurd gas share"][:2])
        return web.Response(body=body, content_type="application/json")

    with serving(answer) as (base_url, hits):
        stats, stored = fetch(base_url, [DAY])
    assert len(hits) == 2 and stats.accepted_invalid == 0
    assert not [p for source in stored[DAY] for p in source["data"] if p.problems]


def test_a_log_line_names_a_few_problems_then_how_many_more(caplog):
    async def answer(request):
        body = range_body(request.path)  # every region's forecast in every half-hour
        return web.Response(
            body=re.sub(rb'"forecast":[0-9]+', b'"forecast":5000', body),
            content_type="application/json",
        )

    log = logging.getLogger("test.hostile.many")
    with serving(answer) as (base_url, _), caplog.at_level(logging.ERROR):
        fetch(base_url, [DAY], log=log, invalid_attempts=1)
    (record,) = [r for r in caplog.records if r.name == log.name]
    message = record.getMessage()
    assert "864 invalid value(s)" in message and "; and 861 more" in message, message
    assert len(message) < 1000


# --- redirects ----------------------------------------------------------------------------


async def emulated(request):
    return web.Response(body=range_body(request.path), content_type="application/json")


@pytest.mark.parametrize("elsewhere", ["another port", "another loopback address"])
def test_a_redirect_to_another_origin_fetches_nothing_there_and_stops_the_run(elsewhere):
    target: dict[str, str] = {}

    async def redirect(request):
        raise web.HTTPFound(target["url"] + request.path)

    with serving(redirect) as (base_url, hits):
        port = int(base_url.rsplit(":", 1)[1])
        # On 127.0.0.2 the same port: then only the host differs from the server redirecting.
        there = ("127.0.0.1", 0) if elsewhere == "another port" else ("127.0.0.2", port)
        with (
            serving(emulated, *there) as (target["url"], target_hits),
            pytest.raises(ApiRequestRejected) as rejected,
        ):
            fetch(base_url, [DAY, DAY + dt.timedelta(days=1)], days_per_request=1)
    message = str(rejected.value)
    assert f"redirect to {target['url']}/regional/intensity/" in message, message
    assert f"{base_url}/regional/intensity/" in message and "not followed" in message
    assert target_hits == [], "the other origin got a request"
    assert len(hits) <= 2, "a refused redirect is not retried"


def test_a_redirect_within_the_origin_is_followed_and_the_day_names_the_url_that_answered():
    async def answer(request):
        if not request.path.startswith("/v2"):
            raise web.HTTPMovedPermanently("/v2" + request.path)  # a relative Location
        return await emulated(request)

    with serving(answer) as (base_url, hits):
        stats, stored = fetch(base_url, [DAY])
    (source,) = stored[DAY]
    assert source["url"] == f"{base_url}/v2/regional/intensity/2024-01-02T00:00Z/2024-01-03T00:00Z"
    assert len(hits) == 2 and stats.http_requests == 2
    assert len(source["data"]) == 48


def test_the_day_file_names_the_url_that_answered_after_a_redirect(tmp_path):
    async def answer(request):
        if not request.path.startswith("/v2"):
            raise web.HTTPTemporaryRedirect("/v2" + request.path)
        return await emulated(request)

    with serving(answer) as (base_url, _):
        assert materialize_bronze(tmp_path, base_url, DAY.isoformat(), DAY.isoformat()).success
    (source,) = BronzeStore(tmp_path / "bronze").read(DAY)["sources"]
    assert source["url"] == f"{base_url}/v2/regional/intensity/2024-01-02T00:00Z/2024-01-03T00:00Z"


def test_a_redirect_loop_stops_after_a_few_hops():
    async def answer(request):
        raise web.HTTPFound(request.path)

    with serving(answer) as (base_url, hits), pytest.raises(ApiRequestRejected, match="redirects"):
        fetch(base_url, [DAY])
    assert len(hits) == 6


@pytest.mark.parametrize(
    ("source", "target", "refused"),
    [
        ("https://api.example.org/a", "http://api.example.org/a", "leaves https for http"),
        ("https://api.example.org/a", "https://api.example.org:8443/a", "is not"),
        ("https://api.example.org/a", "https://example.org/a", "is not"),
        ("http://api.example.org/a", "https://api.example.org/a", "is not"),
        ("https://api.example.org/a", "https://API.example.org:443/b", None),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?c=1", None),
    ],
)
def test_a_redirect_is_followed_only_within_the_origin_and_never_from_https(
    source, target, refused
):
    problem = redirect_problem(source, target)
    assert problem is None if refused is None else refused in problem


# --- bodies and deadlines -----------------------------------------------------------------


def status_kib(field: str) -> int:
    """A size from /proc/self/status (VmRSS now, VmHWM its peak), in KiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(f"{field}:"))


def reset_peak_rss() -> None:
    """Start VmHWM afresh from the current resident size (Linux, clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass  # then the peak includes what came before: a stricter test


def test_a_gzip_bomb_fails_in_seconds_naming_the_limit_with_memory_bounded():
    """2 MB of gzip that expands to 2 GiB of zeros, compressed as it is sent."""
    sent = []

    async def bomb(request):
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        response.content_type = "application/json"
        await response.prepare(request)
        gzip, zeros = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS), bytes(MiB)
        try:
            for _ in range(2048):
                if chunk := gzip.compress(zeros):
                    await response.write(chunk)
                    sent.append(len(chunk))
            await response.write(gzip.flush())
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    reset_peak_rss()
    before_mib = status_kib("VmRSS") / 1024
    started = time.monotonic()
    with serving(bomb) as (base_url, hits), pytest.raises(FetchIncomplete) as lost:
        fetch(base_url, [DAY])
    elapsed = time.monotonic() - started
    peak_mib = status_kib("VmHWM") / 1024
    message = str(lost.value)
    assert "too large" in message and "67,108,864 bytes decoded" in message, message
    assert f"{base_url}/regional/intensity/" in message
    assert len(hits) == 1, "an answer over a limit is not retried"
    assert sum(sent) < 2 * MiB, "the client read the bomb to its end"
    assert peak_mib < 1024, f"peak resident memory {peak_mib:.0f} MiB"
    # The decoded limit (64 MiB) is what the answer may add, not the 2 GiB it expands to.
    assert peak_mib - before_mib < 512, f"{before_mib:.0f} MiB, then a peak of {peak_mib:.0f}"
    assert elapsed < 60, "a hang guard, not a speed goal"


COMPRESSIONS = {
    "gzip": lambda body: zlib.compress(body, wbits=16 + zlib.MAX_WBITS),
    "deflate": zlib.compress,  # the zlib format, as HTTP specifies
    "raw deflate": lambda body: zlib.compress(body, wbits=-zlib.MAX_WBITS),  # as some send it
}


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_a_compressed_answer_is_decoded_whole(compression):
    async def compressed(request):
        body = COMPRESSIONS[compression](range_body(request.path))
        encoding = compression.split()[-1]
        return web.Response(
            body=body, headers={"Content-Encoding": encoding}, content_type="application/json"
        )

    with serving(compressed) as (base_url, hits):
        stats, stored = fetch(base_url, [DAY])
    assert len(hits) == 1 and len(stored[DAY][0]["data"]) == 48
    assert stats.bytes_received < len(range_body(hits[0])) / 4, "counted as received"


@pytest.mark.parametrize("broken", ["truncated gzip", "not gzip", "brotli, not asked for"])
def test_a_body_that_does_not_decode_is_retried_as_malformed(broken):
    async def answer(request):
        body = zlib.compress(range_body(request.path), wbits=16 + zlib.MAX_WBITS)
        encoding = "br" if broken.startswith("brotli") else "gzip"
        if broken == "truncated gzip":
            body = body[: len(body) // 2]
        elif broken == "not gzip":
            body = b"this is not gzip at all"
        return web.Response(
            body=body, headers={"Content-Encoding": encoding}, content_type="application/json"
        )

    with serving(answer) as (base_url, hits), pytest.raises(FetchIncomplete) as lost:
        fetch(base_url, [DAY], max_attempts=2)
    assert "malformed:" in str(lost.value) and len(hits) == 2, str(lost.value)


def test_an_answer_over_the_raw_limit_fails_while_it_is_read():
    async def endless(request):
        response = web.StreamResponse()  # chunked: no Content-Length to refuse it by
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            for _ in range(64):
                await response.write(b" " * MiB)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    with serving(endless) as (base_url, hits), pytest.raises(FetchIncomplete) as lost:
        fetch(base_url, [DAY], max_body_bytes=4 * MiB)
    assert "more than the limit of 4,194,304 bytes; not retried" in str(lost.value)
    assert "raise max_body_bytes of the carbon_api resource" in str(lost.value)
    assert len(hits) == 1


def test_an_answer_announcing_more_than_the_raw_limit_is_refused_before_it_is_read():
    async def announced(request):
        response = web.StreamResponse()
        response.content_length = 512 * MiB
        await response.prepare(request)
        try:
            await response.write(b"{")
            await asyncio.sleep(30)
        except (ConnectionError, RuntimeError):
            pass
        return response

    with serving(announced) as (base_url, _), pytest.raises(FetchIncomplete) as lost:
        fetch(base_url, [DAY], max_body_bytes=4 * MiB)
    assert "(Content-Length 536,870,912)" in str(lost.value)


async def trickle(request: web.Request) -> web.StreamResponse:
    """Headers and a Content-Length, then a byte now and then: the read timeout never fires."""
    response = web.StreamResponse()
    response.content_length = 10_000
    await response.prepare(request)
    try:
        for _ in range(10_000):
            await response.write(b" ")
            await asyncio.sleep(0.2)
    except (ConnectionError, RuntimeError):
        pass
    return response


def test_a_trickling_answer_fails_within_the_attempt_deadline():
    """A trickling answer: the attempt's deadline ends it, where the read timeout never fires."""
    started = time.monotonic()
    with serving(trickle) as (base_url, hits), pytest.raises(FetchIncomplete) as lost:
        fetch(base_url, [DAY], max_attempts=2, attempt_deadline_seconds=1.5)
    elapsed = time.monotonic() - started
    assert "timeout: no whole answer within the attempt's deadline of 1.5 s" in str(lost.value)
    assert len(hits) == 2
    assert elapsed < 2 * 1.5 + 10, "the deadline did not end the attempts"


def test_after_a_trickling_answer_the_next_run_starts_and_completes(tmp_path):
    """The stuck attempt ends at its deadline, the run fails and lets go of the lake's API
    lock, and the next run (the server has recovered) fetches the days whole."""
    trickling = {"on": True}

    async def trickle_then_answer(request):
        if not trickling["on"]:
            return web.Response(body=range_body(request.path), content_type="application/json")
        return await trickle(request)

    options = {"max_attempts": 2, "attempt_deadline_seconds": 1.5}
    with serving(trickle_then_answer) as (base_url, _):
        stuck = materialize_bronze(tmp_path, base_url, "2024-01-01", "2024-01-03", **options)
        assert not stuck.success
        trickling["on"] = False
        recovered = materialize_bronze(tmp_path, base_url, "2024-01-01", "2024-01-03", **options)
    assert recovered.success
    store = BronzeStore(tmp_path / "bronze")
    assert all(store.is_complete(dt.date(2024, 1, day)) for day in (1, 2, 3))


# --- names that do not resolve ------------------------------------------------------------


def test_a_host_that_does_not_resolve_is_tried_a_few_times_and_named():
    # .invalid never resolves (RFC 2606).
    with pytest.raises(FetchIncomplete) as lost:
        fetch("http://carbon-api.invalid", [DAY], max_attempts=8, dns_attempts=3)
    message = str(lost.value)
    assert "the host carbon-api.invalid could not be resolved" in message, message
    assert "gave up after 3 attempts" in message
    assert "no day was stored" in message
