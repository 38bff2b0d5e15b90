"""Tests of the Carbon Intensity API emulator, over real loopback HTTP.

The fidelity tests compare the emulator's answers with real recorded responses, kept in
carbon_assets_tests/fixtures/ (docs/api-provenance.md says where they come from):

* regional_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json (pretty-printed)
* regional_pt24h_2024-01-12T0601Z_first8windows.json (compact, the API's own layout)
* error_400_invalid_datetime.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import email.utils
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from carbon_assets import emulator
from carbon_assets.bronze.request_plan import RANGE_TOO_LONG_MESSAGE
from carbon_assets.emulator import EmulatorConfig, regional_period_records, start_emulator
from carbon_assets.emulator.data import FUEL_FACTORS
from carbon_assets.vocabulary import FUELS, INDEX_LABELS, REGIONS

FIXTURES = Path(__file__).parent / "fixtures"
REAL_2019 = FIXTURES / "regional_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json"
REAL_2024 = FIXTURES / "regional_pt24h_2024-01-12T0601Z_first8windows.json"
REAL_INVALID_DATETIME = FIXTURES / "error_400_invalid_datetime.json"
UTC = dt.UTC
REGION_KEYS = ["regionid", "dnoregion", "shortname", "intensity", "generationmix"]
# Ignore any proxy settings: everything here is loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def regional(base_url: str, start: str, end: str, **kwargs) -> tuple[int, dict, bytes]:
    return fetch(f"{base_url}/regional/intensity/{start}/{end}", **kwargs)


def data_of(body: bytes) -> list[dict]:
    return json.loads(body)["data"]


def mix_tenths(region: dict) -> list[int]:
    return [round(entry["perc"] * 10) for entry in region["generationmix"]]


@pytest.fixture(scope="module")
def server():
    """A fault-free emulator shared by the read-only tests."""
    with start_emulator(EmulatorConfig()) as running:
        yield running


@pytest.fixture(scope="module")
def day_2019(server) -> list[dict]:
    """The emulator's answer for the window of the recorded 2019 file."""
    status, _, body = regional(server.base_url, "2019-08-25T12:31Z", "2019-08-26T12:30Z")
    assert status == 200
    return data_of(body)


# ------------------------------------------------------------------------------------------------
# Fidelity against the real recorded responses
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "start", "end"),
    [
        (REAL_2019, "2019-08-25T12:31Z", "2019-08-26T12:30Z"),
        (REAL_2024, "2024-01-12T06:01Z", "pt24h"),
    ],
)
def test_shape_matches_real_response(server, fixture, start, end):
    real = json.loads(fixture.read_text())
    status, headers, body = regional(server.base_url, start, end)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    ours = json.loads(body)

    assert list(ours) == list(real) == ["data"]
    # Same periods as the real window (the 2024 file was cut to its first 8 periods).
    real_froms = [p["from"] for p in real["data"]]
    assert [p["from"] for p in ours["data"]][: len(real_froms)] == real_froms
    assert len(ours["data"]) == 48
    for our_period, real_period in zip(ours["data"], real["data"]):
        assert list(our_period) == list(real_period) == ["from", "to", "regions"]
        assert our_period["to"] == real_period["to"]
        ours_regions, real_regions = our_period["regions"], real_period["regions"]
        assert [r["regionid"] for r in ours_regions] == [r["regionid"] for r in real_regions]
        for our_region, real_region in zip(ours_regions, real_regions):
            assert list(our_region) == list(real_region) == REGION_KEYS
            assert our_region["dnoregion"] == real_region["dnoregion"]
            if real_region["regionid"] == 6:  # "North Wales and Merseyside" in 2019
                assert real_region["shortname"].replace(" and ", " & ") == our_region["shortname"]
            else:
                assert our_region["shortname"] == real_region["shortname"]
            assert list(our_region["intensity"]) == list(real_region["intensity"])
            assert [g["fuel"] for g in our_region["generationmix"]] == list(FUELS)
            assert [g["fuel"] for g in real_region["generationmix"]] == list(FUELS)
            assert [list(g) for g in our_region["generationmix"]] == [["fuel", "perc"]] * 9


def test_regions_match_schema_and_body_is_compact_json(server):
    status, _, body = regional(server.base_url, "2024-01-11T06:01Z", "2024-01-11T10:00Z")
    assert status == 200
    parsed = json.loads(body)
    # Byte-identical to json.dumps with compact separators, like the real API's layout.
    assert body == json.dumps(parsed, separators=(",", ":")).encode()
    for period in parsed["data"]:
        assert [(r["regionid"], r["dnoregion"], r["shortname"]) for r in period["regions"]] == [
            tuple(region) for region in REGIONS
        ]


def without_values(text: str) -> str:
    """JSON text with the forecasts, index labels and percentages blanked out."""
    text = re.sub(r'"forecast":\d+', '"forecast":F', text)
    text = re.sub(r'"index":"[a-z ]+"', '"index":"I"', text)
    return re.sub(r'"perc":[\d.]+', '"perc":P', text)


def test_byte_layout_matches_the_real_compact_response(server):
    """Apart from the values, our text for the same 8 periods equals the recorded 2024 bytes."""
    real_text = REAL_2024.read_text()
    _, _, body = regional(server.base_url, "2024-01-12T06:01Z", "pt24h")
    first_eight = {"data": data_of(body)[:8]}
    ours_text = json.dumps(first_eight, separators=(",", ":"))
    assert without_values(ours_text) == without_values(real_text)


@pytest.mark.parametrize("source", ["emulator", "real-2019", "real-2024"])
def test_value_types_and_ranges(day_2019, source):
    """The checks hold for both the real files and the emulator, so the bar is the real data."""
    real_files = {"real-2019": REAL_2019, "real-2024": REAL_2024}
    periods = day_2019 if source == "emulator" else data_of(real_files[source].read_bytes())
    for period in periods:
        for region in period["regions"]:
            forecast = region["intensity"]["forecast"]
            assert type(forecast) is int and 0 <= forecast <= 600
            assert region["intensity"]["index"] in INDEX_LABELS
            total = 0.0
            for entry in region["generationmix"]:
                perc = entry["perc"]
                assert type(perc) in (int, float) and 0 <= perc <= 100
                if type(perc) is float:
                    assert round(perc, 1) == perc and not perc.is_integer()
                total += perc
            assert abs(total - 100) <= 0.2 + 1e-9


def test_index_follows_the_year_bands(day_2019):
    for period in day_2019:
        for region in period["regions"]:
            forecast = region["intensity"]["forecast"]
            assert region["intensity"]["index"] == emulator.index_label(forecast, 2019)
    # The bands of the recorded responses (docs/api-contract.md, section 8).
    assert emulator.index_label(59, 2019) == "very low"
    assert emulator.index_label(160, 2019) == "moderate"
    assert emulator.index_label(109, 2024) == "low"
    assert emulator.index_label(190, 2024) == "high"
    assert emulator.index_label(270, 2024) == "very high"


def test_intensity_is_consistent_with_the_mix(day_2019):
    factors = np.array(FUEL_FACTORS)
    shares, forecasts, fossil = [], [], []
    for period in day_2019:
        for region in period["regions"]:
            mix = np.array([entry["perc"] for entry in region["generationmix"]])
            shares.append(mix)
            forecasts.append(region["intensity"]["forecast"])
            fossil.append(mix[FUELS.index("gas")] + mix[FUELS.index("coal")])
    implied = np.array(shares) @ factors / 100
    assert np.max(np.abs(implied - np.array(forecasts))) <= 15  # forecast noise only
    assert np.corrcoef(fossil, forecasts)[0, 1] > 0.9


def share(records: list[dict], regionid: int, *fuels: str) -> float:
    """Mean share of ``fuels`` for one region over a list of periods."""
    values = [
        sum(g["perc"] for g in region["generationmix"] if g["fuel"] in fuels)
        for period in records
        for region in period["regions"]
        if region["regionid"] == regionid
    ]
    return sum(values) / len(values)


def test_regional_character(day_2019):
    for scotland in (1, 2):
        assert share(day_2019, scotland, "wind", "hydro") > share(day_2019, 13, "wind", "hydro")
    assert share(day_2019, 14, "imports") > share(day_2019, 5, "imports")  # interconnectors
    assert share(day_2019, 11, "nuclear") > 30  # Hinkley Point B in 2019
    assert share(day_2019, 5, "biomass") > 20  # Drax
    assert share(day_2019, 1, "solar") == 0


def test_aggregate_regions_blend_their_members(day_2019):
    for period in day_2019:
        by_id = {r["regionid"]: r for r in period["regions"]}
        for aggregate, members in ((16, (1, 2)), (17, (6, 7)), (18, range(1, 15))):
            member_mixes = np.array([mix_tenths(by_id[m]) for m in members])
            blend = np.array(mix_tenths(by_id[aggregate]))
            # Each fuel's share lies within its members' range (GB adds a sliver of "other").
            assert np.all(blend >= member_mixes.min(axis=0) - 1)
            assert np.all(blend <= member_mixes.max(axis=0) + (5 if aggregate == 18 else 1))


def test_solar_follows_the_sun(server):
    _, _, body = regional(server.base_url, "2023-06-21T00:01Z", "2023-06-22T00:00Z")
    periods = data_of(body)
    solar_index = FUELS.index("solar")
    night = [p for p in periods if p["from"][11:16] < "03:00"]
    assert len(night) == 6
    assert all(r["generationmix"][solar_index]["perc"] == 0 for p in night for r in p["regions"])
    noon = next(p for p in periods if p["from"].endswith("T12:00Z"))
    for regionid in (11, 12, 10):  # South West, South and East England
        assert noon["regions"][regionid - 1]["generationmix"][solar_index]["perc"] > 5
    winter_noon = regional_period_records(dt.datetime(2023, 12, 21, 12, tzinfo=UTC))
    june_noon = noon["regions"]
    assert sum(r["generationmix"][solar_index]["perc"] for r in winter_noon) < sum(
        r["generationmix"][solar_index]["perc"] for r in june_noon
    )


def test_coal_fades_out():
    def coal_share(year: int) -> float:
        records = [
            regional_period_records(dt.datetime(year, 1, day, 17, 30, tzinfo=UTC))[17]
            for day in range(10, 17)
        ]
        return sum(r["generationmix"][FUELS.index("coal")]["perc"] for r in records) / 7

    assert coal_share(2019) > coal_share(2023) > 0
    assert coal_share(2025) == 0


def test_wind_varies_from_day_to_day():
    daily_wind = [
        np.mean(
            [
                regional_period_records(dt.datetime(2023, 2, day, hour, tzinfo=UTC))[17][
                    "generationmix"
                ][FUELS.index("wind")]["perc"]
                for hour in (0, 6, 12, 18)
            ]
        )
        for day in range(1, 29)
    ]
    assert max(daily_wind) - min(daily_wind) > 10


# ------------------------------------------------------------------------------------------------
# The range rule, limits and errors
# ------------------------------------------------------------------------------------------------


def test_whole_day_returns_49_periods(server):
    status, _, body = regional(server.base_url, "2023-01-01T00:00Z", "2023-01-02T00:00Z")
    periods = data_of(body)
    assert status == 200 and len(periods) == 49
    assert periods[0]["from"] == "2022-12-31T23:30Z"
    assert periods[-1]["from"] == "2023-01-01T23:30Z"
    assert periods[-1]["to"] == "2023-01-02T00:00Z"
    assert all(len(p["regions"]) == 18 for p in periods)

    _, _, body = regional(server.base_url, "2023-01-01T00:01Z", "2023-01-02T00:00Z")
    periods = data_of(body)
    assert len(periods) == 48 and periods[0]["from"] == "2023-01-01T00:00Z"


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        ("2023-01-01T10:15Z", "2023-01-01T11:45Z", 3),  # ends 10:30, 11:00 and 11:30
        ("2023-01-01T10:00:00Z", "2023-01-01T11:00:00Z", 3),  # seconds tolerated
        ("2023-01-01", "2023-01-02", 49),  # bare dates mean midnight
        ("2023-01-01T10:01Z", "2023-01-01T10:29Z", 0),  # no period ends inside
        ("2024-01-12T06:01Z", "fw24h", 48),
        ("2024-01-12T06:00Z", "fw24h", 49),
    ],
)
def test_range_rule(server, start, end, count):
    status, _, body = regional(server.base_url, start, end)
    assert status == 200
    assert len(data_of(body)) == count


def test_fourteen_days_is_too_long(server):
    status, headers, body = regional(server.base_url, "2023-01-01T00:00Z", "2023-01-15T00:00Z")
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {
        "error": {"code": "400 Bad Request", "message": RANGE_TOO_LONG_MESSAGE}
    }
    status, _, body = regional(server.base_url, "2023-01-01T00:00Z", "2023-01-14T23:30Z")
    assert status == 200
    assert len(data_of(body)) == 14 * 48  # 13 d 23 h 30 m of ends plus the one ending at from


def test_a_thirteen_day_body_is_generated_whole():
    """A cold 13-day, 18-region body (624 periods); how fast it is is a benchmark's concern
    (bench/), not a test's."""
    start = dt.datetime(2021, 3, 1, 0, 1, tzinfo=UTC)
    end = dt.datetime(2021, 3, 14, tzinfo=UTC)
    body = emulator.build_range_body(EmulatorConfig(seed=1001), start, end)
    assert len(data_of(body)) == 13 * 48


@pytest.mark.parametrize(
    ("start", "end"), [("2023-01-02T00:00Z", "2023-01-01T00:00Z"), ("2023-01-01T00:00Z",) * 2]
)
def test_from_must_be_before_to(server, start, end):
    status, _, body = regional(server.base_url, start, end)
    assert status == 400
    assert json.loads(body) == {
        "error": {
            "code": "400 Bad Request",
            "message": "The start datetime should be less than the end datetime",
        }
    }


@pytest.mark.parametrize(
    "bad", ["yesterday", "2023-13-01T00:00Z", "2023-02-30", "2023-01-01T25:00Z", "20230101"]
)
def test_invalid_datetime(server, bad):
    status, _, body = regional(server.base_url, bad, "2023-01-02T00:00Z")
    assert status == 400
    assert json.loads(body) == json.loads(REAL_INVALID_DATETIME.read_text())
    assert regional(server.base_url, "2023-01-01T00:00Z", bad)[0] == 400


def test_year_boundary_truncation(server):
    status, _, body = regional(server.base_url, "2022-12-28T00:00Z", "2023-01-07T00:00Z")
    periods = data_of(body)
    assert status == 200
    assert periods[0]["from"] == "2022-12-27T23:30Z"
    assert periods[-1]["to"] == "2022-12-31T23:30Z"
    assert len(periods) == 4 * 48  # 27th 23:30 to 31st 23:00 starts


def test_before_the_earliest_data(server):
    status, _, body = regional(server.base_url, "2018-05-01T00:00Z", "2018-05-10T00:00Z")
    assert status == 200 and json.loads(body) == {"data": None}
    _, _, body = regional(server.base_url, "2018-05-10T00:00Z", "2018-05-11T12:00Z")
    periods = data_of(body)
    assert periods[0]["from"] == "2018-05-10T23:30Z"
    assert len(periods) == 1 + 24  # 23:30 on the 10th, then 00:00 to 11:30 on the 11th


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different_values(server):
    path = ("2020-02-10T00:01Z", "2020-02-12T00:00Z")
    first = regional(server.base_url, *path)[2]
    with (
        start_emulator(EmulatorConfig(seed=42)) as same,
        start_emulator(EmulatorConfig(seed=7)) as other,
    ):
        assert regional(same.base_url, *path)[2] == first
        different = regional(other.base_url, *path)[2]
    assert different != first
    ours, theirs = data_of(first), data_of(different)
    assert [p["from"] for p in ours] == [p["from"] for p in theirs]
    assert [r["intensity"] for p in ours for r in p["regions"]] != [
        r["intensity"] for p in theirs for r in p["regions"]
    ]


def test_overlapping_requests_agree(server):
    def periods_by_from(start: str, end: str) -> dict[str, dict]:
        return {p["from"]: p for p in data_of(regional(server.base_url, start, end)[2])}

    first = periods_by_from("2023-03-01T00:00Z", "2023-03-03T00:00Z")
    second = periods_by_from("2023-03-02T12:00Z", "2023-03-05T00:00Z")
    shared = sorted(set(first) & set(second))
    assert len(shared) == 25
    assert all(first[key] == second[key] for key in shared)
    moment = dt.datetime(2023, 3, 2, 13, 30, tzinfo=UTC)
    assert regional_period_records(moment) == first["2023-03-02T13:30Z"]["regions"]
    with pytest.raises(ValueError):
        regional_period_records(dt.datetime(2023, 3, 2, 13, 15, tzinfo=UTC))


# ------------------------------------------------------------------------------------------------
# Faults
# ------------------------------------------------------------------------------------------------

DAY = ("2023-05-01T00:01Z", "2023-05-02T00:00Z")


def test_fault_500():
    with start_emulator(EmulatorConfig(rate_500=1.0)) as running:
        status, _, body = regional(running.base_url, *DAY)
    assert status == 500
    assert json.loads(body) == {
        "error": {"code": "500 Internal Server Error", "message": "Requested resource not found."}
    }


@pytest.mark.parametrize("status", [429, 503])
def test_fault_retry_after_seconds(status):
    config = EmulatorConfig(**{f"rate_{status}": 1.0, "retry_after_seconds": 3})
    with start_emulator(config) as running:
        got, headers, body = regional(running.base_url, *DAY)
    assert got == status
    assert headers["Retry-After"] == "3"
    assert json.loads(body)["error"]["code"].startswith(str(status))


def test_fault_retry_after_http_date():
    config = EmulatorConfig(rate_429=1.0, retry_after_seconds=5, retry_after_http_date=True)
    with start_emulator(config) as running:
        status, headers, _ = regional(running.base_url, *DAY)
    assert status == 429
    when = email.utils.parsedate_to_datetime(headers["Retry-After"])
    assert headers["Retry-After"].endswith("GMT")
    assert 3 <= (when - dt.datetime.now(UTC)).total_seconds() <= 6


def test_fault_slow_exceeds_client_timeout():
    with start_emulator(EmulatorConfig(rate_slow=1.0, slow_seconds=3.0)) as running:
        started = time.perf_counter()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            regional(running.base_url, *DAY, timeout=0.3)
        assert time.perf_counter() - started < 2
        assert running.stats()["faults"] == {"slow": 1}


def test_fault_reset_drops_the_connection():
    with start_emulator(EmulatorConfig(rate_reset=1.0)) as running:
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            regional(running.base_url, *DAY)
        assert running.stats()["by_status"] == {"reset": 1}


def test_fault_truncated_body():
    with start_emulator(EmulatorConfig(rate_truncated=1.0)) as running:
        status, headers, body = regional(running.base_url, *DAY)
    assert status == 200
    assert int(headers["Content-Length"]) == len(body) > 1000
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_fault_empty_object():
    with start_emulator(EmulatorConfig(rate_empty=1.0)) as running:
        status, _, body = regional(running.base_url, *DAY)
    assert status == 200 and json.loads(body) == {}


def test_fault_draws_are_reproducible_and_fresh_per_retry():
    config = EmulatorConfig(seed=3, rate_500=0.5)
    sequences = []
    for _ in range(2):
        with start_emulator(config) as running:
            sequences.append([regional(running.base_url, *DAY)[0] for _ in range(16)])
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {200, 500}  # retries of one URL get fresh draws
    # The server's draws are those of draw_fault, so clients can predict them.
    path = f"/regional/intensity/{DAY[0]}/{DAY[1]}"
    predicted = [500 if emulator.draw_fault(config, path, n).fault else 200 for n in range(16)]
    assert predicted == sequences[0]


def test_latency_is_scaled_and_recorded():
    config = EmulatorConfig(latency_min=1.0, latency_max=1.0, latency_scale=0.1)
    with start_emulator(config) as running:
        started = time.perf_counter()
        for _ in range(3):
            assert regional(running.base_url, *DAY)[0] == 200
        assert time.perf_counter() - started >= 0.3
        assert running.stats()["latency_seconds_total"] == pytest.approx(0.3)


def test_latency_grows_with_the_days_asked_for():
    # 0.1 s a day, scaled by half: a 3-day request waits 0.15 s, a refused one nothing extra.
    config = EmulatorConfig(latency_per_day=0.1, latency_scale=0.5)
    with start_emulator(config) as running:
        assert regional(running.base_url, "2023-10-21T00:00Z", "2023-10-24T00:00Z")[0] == 200
        assert running.stats()["latency_seconds_total"] == pytest.approx(0.15)
        assert regional(running.base_url, "2023-10-24T00:00Z", "2023-10-21T00:00Z")[0] == 400
        assert regional(running.base_url, "not-a-date", "2023-10-21T00:00Z")[0] == 400
        assert regional(running.base_url, "2023-01-01T00:00Z", "2023-10-21T00:00Z")[0] == 400
        assert running.stats()["latency_seconds_total"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="latency_per_day"):
        EmulatorConfig(latency_per_day=-1.0)


def test_empty_dates():
    config = EmulatorConfig(empty_dates=frozenset({dt.date(2023, 10, 22)}))
    with start_emulator(config) as running:
        _, _, body = regional(running.base_url, "2023-10-21T00:01Z", "2023-10-24T00:00Z")
        froms = [p["from"] for p in data_of(body)]
        assert len(froms) == 2 * 48
        assert not any(f.startswith("2023-10-22") for f in froms)
        assert froms[47] == "2023-10-21T23:30Z" and froms[48] == "2023-10-23T00:00Z"
        status, _, body = regional(running.base_url, "2023-10-22T00:01Z", "2023-10-23T00:00Z")
        assert status == 200 and json.loads(body) == {"data": []}


def test_duplicate_periods():
    moment = dt.datetime(2021, 4, 19, 19, 0, tzinfo=UTC)
    with start_emulator(EmulatorConfig(duplicate_periods=frozenset({moment}))) as running:
        _, _, body = regional(running.base_url, "2021-04-19T00:01Z", "2021-04-20T00:00Z")
    periods = data_of(body)
    froms = [p["from"] for p in periods]
    assert len(periods) == 49 and froms.count("2021-04-19T19:00Z") == 2
    first_index = froms.index("2021-04-19T19:00Z")
    first, second = periods[first_index], periods[first_index + 1]
    assert first["regions"] == regional_period_records(moment)
    for original, copy in zip(first["regions"], second["regions"]):
        assert copy["intensity"]["forecast"] == original["intensity"]["forecast"] + 7
        assert copy["generationmix"] != original["generationmix"]
        assert sum(mix_tenths(copy)) == sum(mix_tenths(original))


def test_missing_region_periods():
    moment = dt.datetime(2022, 6, 1, 8, 30, tzinfo=UTC)
    config = EmulatorConfig(missing_region_periods=frozenset({(moment, 13), (moment, 18)}))
    with start_emulator(config) as running:
        _, _, body = regional(running.base_url, "2022-06-01T08:01Z", "2022-06-01T10:00Z")
    by_from = {p["from"]: [r["regionid"] for r in p["regions"]] for p in data_of(body)}
    assert by_from["2022-06-01T08:30Z"] == [i for i in range(1, 18) if i != 13]
    assert by_from["2022-06-01T09:00Z"] == list(range(1, 19))


def test_config_validation():
    with pytest.raises(ValueError):
        EmulatorConfig(rate_500=1.5)
    with pytest.raises(ValueError):
        EmulatorConfig(rate_500=0.6, rate_503=0.6)
    with pytest.raises(ValueError):
        EmulatorConfig(latency_min=2, latency_max=1)
    # Naive datetimes are read as UTC; sets and lists are accepted.
    config = EmulatorConfig(duplicate_periods=[dt.datetime(2023, 1, 1)])  # type: ignore[arg-type]
    assert config.duplicate_periods == frozenset({dt.datetime(2023, 1, 1, tzinfo=UTC)})


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------


def test_stats_counts_and_peak_in_flight():
    config = EmulatorConfig(latency_min=0.4, latency_max=0.4)
    with start_emulator(config) as running:
        urls = [
            f"{running.base_url}/regional/intensity/"
            f"2023-02-{day:02d}T00:01Z/2023-02-{day + 1:02d}T00:00Z"
            for day in range(1, 9)
        ]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda url: fetch(url)[0], urls))
        assert statuses == [200] * 8
        assert regional(running.base_url, "bad", "2023-01-01")[0] == 400

        status, _, body = fetch(f"{running.base_url}/_stats")
        stats = json.loads(body)
        assert status == 200 and stats == running.stats()
        assert stats["requests_total"] == 9
        assert stats["by_status"] == {"200": 8, "400": 1}
        assert stats["by_path"][urls[0].removeprefix(running.base_url)] == 1
        assert stats["in_flight"] == 0
        assert stats["peak_in_flight"] == 8
        assert stats["latency_seconds_total"] == pytest.approx(9 * 0.4)

        status, _, body = fetch(f"{running.base_url}/_stats/reset", method="POST")
        assert status == 200
        assert running.stats()["requests_total"] == 0
        assert running.stats()["peak_in_flight"] == 0
        running.reset_stats()
        assert running.stats()["by_status"] == {}


# ------------------------------------------------------------------------------------------------
# Python API and CLI
# ------------------------------------------------------------------------------------------------


def test_start_emulator_handle():
    running = start_emulator(EmulatorConfig(), port=0)
    try:
        assert running.base_url == f"http://127.0.0.1:{running.port}" and running.port > 0
        assert regional(running.base_url, *DAY)[0] == 200
    finally:
        running.stop()
        running.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", running.port), timeout=1).close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_until_terminated():
    port = free_port()
    command = [sys.executable, "-m", "carbon_assets.cli", "emulate-api", "--port", str(port)]
    command += ["--latency-min", "0", "--latency-max", "0", "--empty-date", "2023-10-22"]
    process = subprocess.Popen(
        command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the CLI emulator did not start"
                time.sleep(0.1)
        base_url = f"http://127.0.0.1:{port}"
        status, _, body = regional(base_url, *DAY)
        assert status == 200 and len(data_of(body)) == 48
        assert json.loads(regional(base_url, "2023-10-22T00:01Z", "2023-10-23T00:00Z")[2]) == {
            "data": []
        }
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"Carbon Intensity API emulator on http://127.0.0.1:{port}" in out


def test_unknown_region_dates():
    config = EmulatorConfig(unknown_region_dates=frozenset({dt.date(2022, 6, 1)}))
    with start_emulator(config) as running:
        _, _, body = regional(running.base_url, "2022-05-31T23:01Z", "2022-06-02T00:30Z")
    by_from = {p["from"]: p["regions"] for p in data_of(body)}
    assert [r["regionid"] for r in by_from["2022-06-01T08:30Z"]] == list(range(1, 20))
    atlantis = by_from["2022-06-01T08:30Z"][-1]
    assert (atlantis["shortname"], atlantis["dnoregion"]) == ("Atlantis", "Atlantis Power Networks")
    assert atlantis["intensity"] == by_from["2022-06-01T08:30Z"][17]["intensity"]  # GB's values
    assert all(len(regions) == 19 for f, regions in by_from.items() if f.startswith("2022-06-01"))
    assert len(by_from["2022-05-31T23:30Z"]) == len(by_from["2022-06-02T00:00Z"]) == 18


def test_off_grid_periods():
    moment = dt.datetime(2022, 6, 1, 9, 15, tzinfo=UTC)
    with start_emulator(EmulatorConfig(off_grid_periods=frozenset({moment}))) as running:
        _, _, body = regional(running.base_url, "2022-06-01T08:01Z", "2022-06-01T10:30Z")
        _, _, before_its_end = regional(running.base_url, "2022-06-01T08:01Z", "2022-06-01T09:40Z")
    periods = data_of(body)
    froms = [p["from"] for p in periods]
    times = ["08:00", "08:30", "09:00", "09:15", "09:30", "10:00"]
    assert froms == [f"2022-06-01T{time}Z" for time in times]
    off_grid = periods[3]
    assert off_grid["to"] == "2022-06-01T09:45Z"
    assert off_grid["regions"] == regional_period_records(moment.replace(minute=0))
    # The range rule applies: its end, 09:45, is after this request's `to`.
    assert "2022-06-01T09:15Z" not in [p["from"] for p in data_of(before_its_end)]
    with pytest.raises(ValueError, match="is on the grid"):
        EmulatorConfig(off_grid_periods=frozenset({moment.replace(minute=30)}))


def test_cli_options_for_an_unknown_region_and_an_off_grid_record(capsys):
    from carbon_assets.emulator import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = ["--unknown-region-date", "2024-03-04", "--off-grid-period", "2024-03-04T09:15Z"]
    config = command.config_from_args(parser.parse_args(args))
    assert config.unknown_region_dates == frozenset({dt.date(2024, 3, 4)})
    assert config.off_grid_periods == frozenset({dt.datetime(2024, 3, 4, 9, 15, tzinfo=UTC)})
    with pytest.raises(SystemExit):
        parser.parse_args(["--off-grid-period", "2024-03-04T09:30Z"])
    assert "off the half-hour grid" in capsys.readouterr().err
