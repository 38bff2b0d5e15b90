"""Tests of the emulator's national endpoint ``GET /intensity/{from}/{to}``, over loopback HTTP.

The national recordings in /work/shared/fixtures/carbon-intensity-api/ (contract §2, §5-8) set
the shape, the range rule, the 31-day limit and the pending actuals checked here.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import time_machine

from carbon_assets.emulator import (
    EmulatorConfig,
    command,
    index_label,
    national_period_record,
    national_records,
    regional_period_records,
    start_emulator,
)
from carbon_assets.emulator.data import national_day_values

UTC = dt.UTC
# Ignore any proxy settings: everything here is loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TOO_LONG_BODY = {
    "error": {
        "code": "400 Bad Request",
        "message": "The date range you have specified is greater than 31 days."
        " Please select a smaller date range.",
    }
}
# A clock long after every period these tests ask for, so that all actuals are published.
LATE_CLOCK = dt.datetime(2026, 12, 1, tzinfo=UTC)


def fetch(url: str) -> tuple[int, bytes]:
    """(status, body) of one GET; HTTP errors are answers, not exceptions."""
    try:
        with OPENER.open(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def national(base_url: str, start: str, end: str) -> tuple[int, bytes]:
    return fetch(f"{base_url}/intensity/{start}/{end}")


def national_data(base_url: str, start: str, end: str) -> list[dict]:
    status, body = national(base_url, start, end)
    assert status == 200, body
    return json.loads(body)["data"]


@pytest.fixture(scope="module")
def server():
    """A fault-free emulator shared by the read-only tests."""
    with start_emulator(EmulatorConfig()) as running:
        yield running


def test_shape_and_key_order(server):
    data = national_data(server.base_url, "2024-03-01T00:00Z", "2024-03-02T00:00Z")
    for record in data:
        assert list(record) == ["from", "to", "intensity"]
        assert list(record["intensity"]) == ["forecast", "actual", "index"]
        assert isinstance(record["intensity"]["forecast"], int)
        assert isinstance(record["intensity"]["actual"], int)
    assert data[0]["from"] == "2024-02-29T23:30Z"
    assert data[0]["to"] == "2024-03-01T00:00Z"


def test_a_day_on_boundaries_returns_49_periods(server):
    data = national_data(server.base_url, "2024-03-01T00:00Z", "2024-03-02T00:00Z")
    assert len(data) == 49
    assert data[-1]["to"] == "2024-03-02T00:00Z"
    off_boundary = national_data(server.base_url, "2024-03-01T00:01Z", "2024-03-02T00:00Z")
    assert len(off_boundary) == 48


def test_30_days_accepted_31_days_rejected(server):
    status, body = national(server.base_url, "2024-03-01T00:00Z", "2024-03-31T00:00Z")
    assert status == 200
    assert len(json.loads(body)["data"]) == 30 * 48 + 1
    for end in ("2024-04-01T00:00Z", "2024-04-02T00:00Z"):  # 31 and 32 days
        status, body = national(server.base_url, "2024-03-01T00:00Z", end)
        assert status == 400
        assert json.loads(body) == TOO_LONG_BODY


def test_same_400s_as_regional(server):
    for start, end in (("2024-03-02T00:00Z", "2024-03-01T00:00Z"), ("yesterday", "2024-03-01")):
        national_status, national_body = national(server.base_url, start, end)
        regional_status, regional_body = fetch(
            f"{server.base_url}/regional/intensity/{start}/{end}"
        )
        assert national_status == regional_status == 400
        assert national_body == regional_body


def test_year_end_truncation(server):
    data = national_data(server.base_url, "2023-12-31T00:00Z", "2024-01-01T12:00Z")
    assert data[-1]["to"] == "2023-12-31T23:30Z"
    assert len(data) == 48  # 23:30Z on 30 Dec through the period ending 23:30Z on 31 Dec


def test_before_the_earliest_data_is_null(server):
    status, body = national(server.base_url, "2018-01-01T00:00Z", "2018-01-02T00:00Z")
    assert (status, body) == (200, b'{"data":null}')


def test_actuals_differ_realistically_from_forecasts():
    records = national_records(
        EmulatorConfig(), dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 31), LATE_CLOCK
    )
    forecast = np.array([r["intensity"]["forecast"] for r in records])
    actual = np.array([r["intensity"]["actual"] for r in records])
    error = actual - forecast
    assert 3 <= np.abs(error).mean() <= 40
    assert (error != 0).mean() > 0.5
    assert actual.min() >= 0
    # Autocorrelated like the real series (0.74 at one half hour in 2023).
    assert np.corrcoef(error[1:], error[:-1])[0, 1] > 0.4
    for record in records:
        intensity = record["intensity"]
        assert intensity["index"] == index_label(intensity["actual"], 2024)


def test_a_month_builds_fast():
    config = EmulatorConfig(seed=1234)  # a seed no other test uses, so nothing is cached
    started = time.perf_counter()
    national_records(config, dt.datetime(2022, 5, 1), dt.datetime(2022, 5, 31), LATE_CLOCK)
    assert time.perf_counter() - started < 0.5


def test_forecast_is_the_regional_gb_forecast(server):
    data = national_data(server.base_url, "2024-03-01T00:00Z", "2024-03-01T06:00Z")
    for record in data:
        start = dt.datetime.strptime(record["from"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        gb = regional_period_records(start, seed=42)[-1]
        assert gb["regionid"] == 18
        assert record["intensity"]["forecast"] == gb["intensity"]["forecast"]


def test_served_records_equal_national_records(server):
    start, end = dt.datetime(2024, 3, 1, tzinfo=UTC), dt.datetime(2024, 3, 3, tzinfo=UTC)
    served = national_data(server.base_url, "2024-03-01T00:00Z", "2024-03-03T00:00Z")
    assert served == national_records(server.config, start, end)
    assert served[5] == national_period_record(start + dt.timedelta(hours=2), seed=42)


def test_actuals_are_null_within_the_delay(server):
    clock = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(clock, tick=False):
        data = national_data(server.base_url, "2024-03-01T09:00Z", "2024-03-01T12:00Z")
    by_end = {record["to"]: record["intensity"] for record in data}
    # Published up to 2 h before the clock: the period ending 10:00Z has its actual.
    assert by_end["2024-03-01T10:00Z"]["actual"] is not None
    for end in ("2024-03-01T10:30Z", "2024-03-01T11:00Z", "2024-03-01T12:00Z"):
        intensity = by_end[end]
        assert intensity["actual"] is None
        assert intensity["index"] == index_label(intensity["forecast"], 2024)


def test_pending_date_is_null_until_published_by_swapping_the_config():
    pending = dt.date(2024, 3, 2)
    config = EmulatorConfig(pending_actual_dates=[pending])
    with start_emulator(config) as running:
        data = national_data(running.base_url, "2024-03-01T00:00Z", "2024-03-03T00:00Z")
        on_pending = [r for r in data if r["from"].startswith("2024-03-02")]
        assert len(on_pending) == 48
        assert all(r["intensity"]["actual"] is None for r in on_pending)
        assert all(r["intensity"]["actual"] is not None for r in data if r not in on_pending)

        running.replace_config(dataclasses.replace(config, pending_actual_dates=frozenset()))
        published = national_data(running.base_url, "2024-03-01T00:00Z", "2024-03-03T00:00Z")
        assert all(r["intensity"]["actual"] is not None for r in published)
        assert [r["intensity"]["forecast"] for r in published] == [
            r["intensity"]["forecast"] for r in data
        ]


def test_revised_dates_change_national_values():
    day = dt.date(2024, 3, 2)
    with start_emulator(EmulatorConfig()) as running:
        before = national_data(running.base_url, "2024-03-02T00:01Z", "2024-03-03T00:00Z")
        running.reconfigure(revised_dates={day})
        revised = national_data(running.base_url, "2024-03-02T00:01Z", "2024-03-03T00:00Z")
    assert [r["intensity"]["forecast"] for r in before] != [
        r["intensity"]["forecast"] for r in revised
    ]
    assert [r["intensity"]["actual"] for r in before] != [r["intensity"]["actual"] for r in revised]


def test_empty_dates_empty_national_days():
    config = EmulatorConfig(empty_dates={dt.date(2024, 3, 2)})
    with start_emulator(config) as running:
        data = national_data(running.base_url, "2024-03-01T00:01Z", "2024-03-04T00:00Z")
    assert len(data) == 2 * 48
    assert not any(r["from"].startswith("2024-03-02") for r in data)


def test_faults_apply_to_the_national_endpoint():
    with start_emulator(EmulatorConfig(rate_500=1.0)) as running:
        status, body = national(running.base_url, "2024-03-01T00:00Z", "2024-03-02T00:00Z")
        assert status == 500
        assert json.loads(body)["error"]["code"] == "500 Internal Server Error"
        assert running.stats()["faults"] == {"500": 1}
    with start_emulator(EmulatorConfig(rate_empty=1.0)) as running:
        assert national(running.base_url, "2024-03-01T00:00Z", "2024-03-02T00:00Z") == (200, b"{}")


def test_stats_count_national_and_regional_separately():
    with start_emulator(EmulatorConfig()) as running:
        national(running.base_url, "2024-03-01T00:00Z", "2024-03-02T00:00Z")
        national(running.base_url, "2024-03-02T00:00Z", "2024-03-03T00:00Z")
        fetch(f"{running.base_url}/regional/intensity/2024-03-01T00:00Z/2024-03-02T00:00Z")
        stats = running.stats()
    assert stats["by_endpoint"] == {"national": 2, "regional": 1}
    national_paths = [path for path in stats["by_path"] if path.startswith("/intensity/")]
    assert len(national_paths) == 2


def national_week_bytes(seed: int) -> bytes:
    """A week of March 2024 from a fresh emulator (long past, so every actual is published),
    generated afresh rather than from the day cache."""
    national_day_values.cache_clear()
    with start_emulator(EmulatorConfig(seed=seed)) as running:
        status, body = national(running.base_url, "2024-03-01T00:00Z", "2024-03-08T00:00Z")
    assert status == 200
    return body


def test_same_seed_same_bytes():
    assert national_week_bytes(5) == national_week_bytes(5)
    assert national_week_bytes(5) != national_week_bytes(6)


def test_command_line_flags():
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(
        ["--actual-delay-hours", "0.5"]
        + ["--pending-actual-date", "2024-03-02", "--pending-actual-date", "2024-03-03"]
    )
    config = command.config_from_args(args)
    assert config.actual_delay_hours == 0.5
    assert config.pending_actual_dates == {dt.date(2024, 3, 2), dt.date(2024, 3, 3)}
