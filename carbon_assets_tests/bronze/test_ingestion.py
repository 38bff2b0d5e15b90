"""Bronze over real loopback HTTP: faults, politeness, lost days, interruption, idempotency."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from contextlib import contextmanager

import pytest
from aiohttp import web
from dagster import DagsterInstance, materialize

from carbon_assets.bronze.assets import bronze_carbon_intensity
from carbon_assets.bronze.client import (
    ANSWERS_AHEAD_PER_SLOT,
    ApiRequestRejected,
    CarbonIntensityApi,
)
from carbon_assets.bronze.day_assembly import FetchIncomplete, whole_days
from carbon_assets.bronze.io_manager import BronzeJsonIOManager
from carbon_assets.bronze.records import api_datetime
from carbon_assets.bronze.refresh import RefreshPolicy
from carbon_assets.bronze.request_plan import plan_requests
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.emulator import EmulatorConfig, draw_fault, start_emulator
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import DayRange
from carbon_assets.warehouse.resource import WarehouseDatabase
from carbon_assets_tests.helpers import FAST_API, FIXTURES, REPO, range_tags

D = dt.date.fromisoformat


def fetch(base_url, days, **options):
    """Run the client; return (stats, {day: sources})."""
    api = CarbonIntensityApi(base_url=base_url, **(FAST_API | options))
    plan = api.plan(days)
    requests = api.fetch(plan)
    stored = dict(whole_days(plan, requests))
    return requests.stats, stored


def half_hours(sources) -> set[str]:
    return {api_datetime(period.start) for source in sources for period in source["data"]}


def materialize_bronze(data_dir, base_url, first, last, refetch=False, **options):
    lake = LakeResource(data_dir=str(data_dir))
    return materialize(
        [bronze_carbon_intensity],
        resources={
            "lake": lake,
            "carbon_api": CarbonIntensityApi(base_url=base_url, **(FAST_API | options)),
            "refresh_policy": RefreshPolicy(),
            "bronze_io_manager": BronzeJsonIOManager(lake=lake),
            # unused by a lake on disk (the API lock of an object-store lake)
            "warehouse": WarehouseDatabase(),
        },
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(first, last),
        run_config={"ops": {"bronze_carbon_intensity": {"config": {"refetch": refetch}}}},
        raise_on_error=False,
    )


FAULTS = {
    "5xx": {"rate_500": 0.5},
    "503": {"rate_503": 0.5, "retry_after_seconds": 0.05},
    "429": {"rate_429": 0.5, "retry_after_seconds": 0.05},
    "timeout": {"rate_slow": 0.5, "slow_seconds": 3},
    "connection": {"rate_reset": 0.5},
    "malformed": {"rate_truncated": 0.5},
    "empty": {"rate_empty": 0.5},
}
CAUSE_OF = {"503": "5xx"}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_retried_until_every_day_is_complete(fault):
    days = DayRange.from_keys("2024-01-01", "2024-04-09").days()  # 8 requests
    with start_emulator(EmulatorConfig(seed=3, **FAULTS[fault])) as emulator:
        # Only the slow-answer fault needs a short read timeout; elsewhere it would turn a busy
        # machine's ordinary slowness into spurious timeouts.
        timeout = 1.0 if fault == "timeout" else 60.0
        stats, stored = fetch(
            emulator.base_url, days, read_timeout_seconds=timeout, empty_attempts=8, max_attempts=12
        )
    assert sorted(stored) == days
    assert all(len(half_hours(stored[day])) == 48 for day in days)
    assert stats.retries[CAUSE_OF.get(fault, fault)] > 0
    assert stats.requests_planned == 8


def test_in_flight_requests_never_exceed_the_limit():
    days = DayRange.from_keys("2024-01-01", "2024-01-30").days()
    with start_emulator(EmulatorConfig(latency_min=0.05, latency_max=0.1)) as emulator:
        stats, stored = fetch(emulator.base_url, days, max_concurrency=3, days_per_request=1)
        server_peak = emulator.stats()["peak_in_flight"]
    assert len(stored) == 30
    assert server_peak == stats.peak_in_flight == 3


def test_a_slow_caller_holds_back_the_requests_and_answers_are_freed_once_taken():
    """Memory stays flat in the range: answers wait for a slow caller only ANSWERS_AHEAD_PER_SLOT
    per slot ahead, and no answer is kept after the caller has taken it."""
    days = DayRange.from_keys("2024-01-01", "2024-01-30").days()
    with start_emulator(EmulatorConfig()) as emulator:
        api = CarbonIntensityApi(
            base_url=emulator.base_url, max_concurrency=2, days_per_request=1, **FAST_API
        )
        ahead, taken = [], []
        for answer in api.fetch(api.plan(days)):
            time.sleep(0.02)  # storing is slower than this emulator answers
            ahead.append(emulator.stats()["requests_total"] - len(taken))
            taken.append(weakref.ref(answer))
            del answer
        gc.collect()
    assert len(taken) == 30
    assert max(ahead) <= ANSWERS_AHEAD_PER_SLOT * 2
    assert [ref for ref in taken if ref() is not None] == []


def test_a_retry_takes_the_next_free_slot_before_requests_queued_earlier():
    days = DayRange.from_keys("2024-06-01", "2024-06-04").days()
    paths = [window.path for window in plan_requests(days, days_per_request=1).windows]
    base = EmulatorConfig(rate_500=0.3, latency_min=0.1, latency_max=0.1)
    # A seed where only the first day's first request fails.
    config = next(
        candidate
        for seed in range(1000)
        if [
            draw_fault(candidate := dataclasses.replace(base, seed=seed), path, 0).fault
            for path in paths
        ]
        == ["500", None, None, None]
        and draw_fault(candidate, paths[0], 1).fault is None
    )
    with start_emulator(config) as emulator:
        stats, stored = fetch(emulator.base_url, days, max_concurrency=1, days_per_request=1)
    assert stats.retries["5xx"] == 1
    # One slot: day 2 was already sent when the retry became due; the retry goes next,
    # ahead of days 3 and 4 that had queued from the start.
    assert list(stored) == [days[1], days[0], days[2], days[3]]


def _seed_where_first_request_gets(fault: str, config: EmulatorConfig, path: str) -> EmulatorConfig:
    for seed in range(500):
        candidate = EmulatorConfig(**{**config.__dict__, "seed": seed})
        if (
            draw_fault(candidate, path, 0).fault == fault
            and draw_fault(candidate, path, 1).fault is None
        ):
            return candidate
    raise AssertionError("no seed found")


@pytest.mark.parametrize("http_date", [False, True])
def test_retry_after_is_honoured_in_both_forms(http_date):
    days = [D("2024-05-01")]
    path = plan_requests(days).windows[0].path
    config = _seed_where_first_request_gets(
        "429",
        EmulatorConfig(rate_429=0.5, retry_after_seconds=2, retry_after_http_date=http_date),
        path,
    )
    with start_emulator(config) as emulator:
        started = time.monotonic()
        stats, stored = fetch(emulator.base_url, days)
        elapsed = time.monotonic() - started
        by_status = emulator.stats()["by_status"]
    assert by_status == {"200": 1, "429": 1}
    # An HTTP-date has whole seconds, so "2 s from now" may mean a little over 1 s.
    assert elapsed >= (1.0 if http_date else 2.0)
    assert stats.retries["429"] == 1 and len(half_hours(stored[days[0]])) == 48


@contextmanager
def always_400_server():
    """A loopback server answering every request with the API's own 400 body."""
    body = (FIXTURES / "error_400_invalid_datetime.json").read_bytes()
    hits = []

    async def handler(request):
        hits.append(request.path)
        return web.Response(status=400, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", hits
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_a_400_fails_fast_with_the_apis_message():
    with (
        always_400_server() as (base_url, hits),
        pytest.raises(ApiRequestRejected, match="Please enter a valid datetime in ISO8601"),
    ):
        fetch(base_url, DayRange.from_keys("2024-01-01", "2024-01-05").days())
    assert len(hits) == 1, "a 400 must not be retried"


def test_a_day_without_data_is_stored_incomplete_and_does_not_block_others(tmp_path):
    config = EmulatorConfig(empty_dates=frozenset({D("2023-10-22")}))
    with start_emulator(config) as emulator:
        result = materialize_bronze(
            tmp_path, emulator.base_url, "2023-10-20", "2023-10-24", empty_attempts=2
        )
        requests = emulator.stats()["requests_total"]
    assert result.success
    store = BronzeStore(tmp_path / "bronze")
    empty = store.read(D("2023-10-22"))
    assert (empty["complete"], empty["half_hours"]) == (False, 0)
    assert all(
        store.is_complete(D(day))
        for day in ("2023-10-20", "2023-10-21", "2023-10-23", "2023-10-24")
    )
    assert requests == 2, "one window, retried once for its missing day, then accepted"
    (event, *_) = result.get_asset_materialization_events()
    assert event.materialization.metadata["days_incomplete"].value == 1


def test_a_duplicated_period_is_kept_as_the_api_sent_it(tmp_path):
    twice = dt.datetime(2024, 2, 2, 10, 0, tzinfo=dt.UTC)
    with start_emulator(EmulatorConfig(duplicate_periods=frozenset({twice}))) as emulator:
        assert materialize_bronze(tmp_path, emulator.base_url, "2024-02-02", "2024-02-02").success
    document = BronzeStore(tmp_path / "bronze").read(D("2024-02-02"))
    froms = [r["from"] for s in document["sources"] for r in s["data"]]
    assert froms.count("2024-02-02T10:00Z") == 2 and len(froms) == 49
    assert document["complete"]


@pytest.mark.parametrize("days_per_request", [1, 13])
def test_a_record_off_the_half_hour_grid_reaches_the_bronze_file(days_per_request, tmp_path):
    """The client drops records of half-hours another request supplies; a record at 09:15 is
    supplied by the request of 09:00-09:30 (RequestPlan.supplier), so it is kept."""
    off_grid = dt.datetime(2024, 2, 2, 9, 15, tzinfo=dt.UTC)
    config = EmulatorConfig(off_grid_periods=frozenset({off_grid}))
    with start_emulator(config) as emulator:
        result = materialize_bronze(
            tmp_path,
            emulator.base_url,
            "2024-02-01",
            "2024-02-03",
            days_per_request=days_per_request,
        )
    assert result.success
    store = BronzeStore(tmp_path / "bronze")
    document = store.read(D("2024-02-02"))
    froms = [r["from"] for s in document["sources"] for r in s["data"]]
    assert froms.count("2024-02-02T09:15Z") == 1 and len(froms) == 49
    assert froms.index("2024-02-02T09:15Z") == froms.index("2024-02-02T09:00Z") + 1  # API order
    assert document["complete"] and document["off_grid_starts"] == ["2024-02-02T09:15Z"]
    assert "off_grid_starts" not in store.read(D("2024-02-01"))
    assert store.summary(D("2024-02-02")) == {k: v for k, v in document.items() if k != "sources"}


def test_lost_days_fail_the_run_after_storing_the_rest_and_a_rerun_fetches_only_them(tmp_path):
    days = ("2024-01-01", "2024-03-31")
    # One emulator for both runs: the lake records the API it was filled from.
    with start_emulator(EmulatorConfig(seed=11, rate_500=0.5)) as emulator:
        failed = materialize_bronze(
            tmp_path, emulator.base_url, *days, days_per_request=5, max_attempts=1
        )
        assert not failed.success
        store = BronzeStore(tmp_path / "bronze")
        all_days = DayRange.from_keys(*days).days()
        lost = [day for day in all_days if not store.exists(day)]
        assert 0 < len(lost) < len(all_days)
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        message = str(failure.event_specific_data.error)
        assert f"every other day ({len(all_days) - len(lost)}) was stored" in message
        for day in lost:
            assert day.isoformat() in message

        emulator.reconfigure(rate_500=0.0)
        emulator.reset_stats()
        rerun = materialize_bronze(tmp_path, emulator.base_url, *days, days_per_request=5)
        requested = emulator.stats()["by_path"]
    assert rerun.success
    assert all(store.is_complete(day) for day in all_days)
    assert len(requested) == len(plan_requests(lost, 5).windows)


def test_a_complete_day_is_not_requested_again_unless_refetch(tmp_path):
    with start_emulator(EmulatorConfig()) as emulator:
        assert materialize_bronze(tmp_path, emulator.base_url, "2024-06-01", "2024-06-03").success
        emulator.reset_stats()
        assert materialize_bronze(tmp_path, emulator.base_url, "2024-06-01", "2024-06-03").success
        assert emulator.stats()["requests_total"] == 0
        assert materialize_bronze(
            tmp_path, emulator.base_url, "2024-06-01", "2024-06-03", refetch=True
        ).success
        assert emulator.stats()["requests_total"] == 1


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from carbon_assets_tests.bronze.test_ingestion import materialize_bronze
    materialize_bronze(
        sys.argv[1], sys.argv[2], "2024-01-01", "2024-03-31", days_per_request=1, max_concurrency=2
    )
    """
)


def test_a_killed_run_leaves_no_partial_file_and_a_rerun_fetches_only_missing_days(tmp_path):
    config = EmulatorConfig(latency_min=0.05, latency_max=0.15)
    bronze = tmp_path / "bronze"
    with start_emulator(config) as emulator:
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(tmp_path), emulator.base_url],
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 60
        while len(list(bronze.rglob("*.json.gz"))) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        stored_before = sorted(bronze.rglob("*.json.gz"))
        assert 10 <= len(stored_before) < 91
        for path in stored_before:  # every file that exists is whole
            json.loads(gzip.decompress(path.read_bytes()))
        emulator.reset_stats()
        assert materialize_bronze(tmp_path, emulator.base_url, "2024-01-01", "2024-03-31").success
        requested = emulator.stats()["by_path"]
    assert not [p for p in bronze.rglob("*") if p.name.startswith(".tmp-")]
    assert len(list(bronze.rglob("*.json.gz"))) == 91
    missing = [
        D(p)
        for p in (d.isoformat() for d in DayRange.from_keys("2024-01-01", "2024-03-31").days())
        if (bronze / p[:4] / f"{p}.json.gz") not in stored_before
    ]
    assert len(requested) == len(plan_requests(missing).windows)


def test_fetch_incomplete_names_every_lost_day():
    error = FetchIncomplete({D("2024-01-02"): "5xx: HTTP 500", D("2024-01-01"): "timeout"})
    assert str(error).index("2024-01-01") < str(error).index("2024-01-02")
    assert "Re-run the same range" in str(error)


@pytest.mark.parametrize(
    ("days_stored", "first_line"),
    [
        (0, "1 day(s) could not be fetched; no day was stored. Re-run"),
        (5, "1 day(s) could not be fetched; every other day (5) was stored. Re-run"),
        (None, "1 day(s) could not be fetched. Re-run"),  # the caller did not say
    ],
)
def test_fetch_incomplete_says_what_was_stored_only_when_it_was(days_stored, first_line):
    error = FetchIncomplete({D("2024-01-01"): "timeout"}, days_stored=days_stored)
    assert str(error).startswith(first_line)


def test_whole_days_counts_the_days_handed_over_when_some_are_lost(emulator):
    days = DayRange.from_keys("2024-01-01", "2024-01-04").days()
    api = CarbonIntensityApi(base_url=emulator.base_url, days_per_request=2, **FAST_API)
    plan = api.plan(days)
    lost_window = plan.windows[1]  # days 3 and 4

    def losing(answers):
        for answer in answers:
            if answer.window == lost_window:
                answer = dataclasses.replace(answer, periods=[], source=None, failure="5xx")
            yield answer

    taken = []
    with pytest.raises(FetchIncomplete) as lost:
        for day, _ in whole_days(plan, losing(api.fetch(plan))):
            taken.append(day)
    assert taken == days[:2] and sorted(lost.value.lost_days) == days[2:]
    assert lost.value.days_stored == 2
    assert "2 day(s) could not be fetched; every other day (2) was stored" in str(lost.value)


def test_the_emulator_is_recorded_as_the_source(emulator):
    _, stored = fetch(emulator.base_url, [D("2024-01-02")])
    (source,) = stored[D("2024-01-02")]
    assert source["emulator"] is True
    assert list(source) == ["url", "status", "attempts", "fetched_at", "emulator", "data"]


OVERLAPPING_RUN = textwrap.dedent(
    """
    import sys
    from carbon_assets_tests.bronze.test_ingestion import materialize_bronze
    result = materialize_bronze(
        sys.argv[1], sys.argv[2], "2024-01-01", "2024-02-29", days_per_request=3, max_concurrency=2
    )
    sys.exit(0 if result.success else 1)
    """
)


def test_overlapping_runs_outside_the_daemon_take_turns_at_the_api(tmp_path):
    """Two Python-API runs of one range into one lake at once (the CLI runs the same way): the
    pool only queues runs the daemon launches, the lake's API lock queues these."""
    config = EmulatorConfig(latency_min=0.2, latency_max=0.3)
    with start_emulator(config) as emulator:
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", OVERLAPPING_RUN, str(tmp_path), emulator.base_url],
                cwd=REPO,
                env=os.environ | {"PYTHONPATH": str(REPO)},
            )
            for _ in range(2)
        ]
        exits = [run.wait(timeout=300) for run in runs]
        served = emulator.stats()
    assert exits == [0, 0]
    assert served["peak_in_flight"] <= 2, "both runs were at the API at once"
    assert set(served["by_path"].values()) == {1}, "a day was fetched twice"
    days = DayRange.from_keys("2024-01-01", "2024-02-29").days()
    assert served["requests_total"] == len(plan_requests(days, days_per_request=3).windows)
