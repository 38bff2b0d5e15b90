"""What the bronze asset says: the run that holds the lake's API lock, a lock it cannot take, a
request the API refused or redirected elsewhere, and the requests' counts in its metadata.
Real loopback servers; the asset runs in process."""

from __future__ import annotations

import datetime as dt
import json

from aiohttp import web

from carbon_assets.bronze.store import API_LOCK_FILE
from carbon_assets_tests.bronze.test_hostile_api import emulated, serving
from carbon_assets_tests.bronze.test_ingestion import materialize_bronze
from carbon_assets_tests.faults.common import output_metadata, step_failures

DAY = dt.date(2024, 1, 2)
BRONZE = "bronze_carbon_intensity"


def test_the_metadata_counts_the_requests_answered_and_the_invalid_answers_accepted(tmp_path):
    with serving(emulated) as (base_url, _):
        result = materialize_bronze(tmp_path, base_url, "2024-01-02", "2024-01-04")
    assert result.success, step_failures(result)
    metadata = output_metadata(result, BRONZE)
    assert metadata["requests"] == metadata["requests_answered"] == 1
    assert metadata["accepted_invalid"] == 0 and metadata["days_written"] == 3


def test_a_redirect_elsewhere_stops_the_run_with_the_clients_words_and_the_lock_names_it(
    tmp_path,
):
    held_by = []

    async def redirect(request):
        held_by.append(json.loads((tmp_path / "bronze" / API_LOCK_FILE).read_text()))
        raise web.HTTPFound("http://127.0.0.2:9" + request.path)

    with serving(redirect) as (base_url, hits):
        result = materialize_bronze(tmp_path, base_url, "2024-01-02", "2024-01-02")
    assert not result.success and len(hits) == 1
    message = step_failures(result)[BRONZE]
    assert "Stopped at a request the API refused or redirected elsewhere" in message
    assert f"{base_url}/regional/intensity/2024-01-02T00:00Z" in message
    assert "redirect to http://127.0.0.2:9/regional/intensity/" in message
    assert "not followed" in message and "(0 days stored before it)" in message
    (holder,) = held_by  # the run wrote who it is into the lock while it fetched
    assert holder["holder"] == f"run {result.run_id}"


def test_a_lock_that_cannot_be_taken_fails_the_run_before_any_request(tmp_path):
    (tmp_path / "bronze" / API_LOCK_FILE).mkdir(parents=True)  # not a file anyone can lock
    with serving(emulated) as (base_url, hits):
        result = materialize_bronze(tmp_path, base_url, "2024-01-02", "2024-01-02")
    assert not result.success and hits == []
    message = step_failures(result)[BRONZE]
    assert f"Nothing fetched: Cannot open the lake's API lock {tmp_path / 'bronze'}" in message
    assert "Traceback" not in message.split("\n", 1)[0]
