"""Day documents: completeness and merging a re-fetch without losing half-hours."""

import datetime as dt
import gzip

import pytest

from carbon_assets.bronze.day_files import assess, build_document, day_periods, merge_with_previous
from carbon_assets.bronze.records import Period, periods_in_response
from carbon_assets.bronze.store import BronzeStore
from carbon_assets_tests.helpers import REAL_2019, real_periods, source

DAY = dt.date(2019, 8, 25)


def test_a_half_day_is_incomplete_with_its_missing_half_hours_listed():
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    completeness = assess(DAY, map(Period.from_record, records))
    assert completeness.half_hours == 23  # 12:30 .. 23:30
    assert not completeness.complete
    assert completeness.missing[0] == dt.datetime(2019, 8, 25, tzinfo=dt.UTC)


def test_a_region_short_of_a_fuel_makes_its_half_hour_incomplete():
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    records[0]["regions"][3]["generationmix"].pop()
    assert assess(DAY, map(Period.from_record, records)).half_hours == 22


def test_records_off_the_grid_are_kept_counted_and_listed(tmp_path):
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    quarter_past = {**records[0], "from": "2019-08-25T12:45Z", "to": "2019-08-25T13:15Z"}
    document = build_document(DAY, [source([records[0], quarter_past, *records[1:]])])
    assert document["off_grid_starts"] == ["2019-08-25T12:45Z"]
    assert document["half_hours"] == 23 and document["region_records"] == 24 * 18
    assert list(document)[-2:] == ["off_grid_starts", "sources"]
    store = BronzeStore(tmp_path)
    store.write(document)
    assert [r["from"] for r in day_periods_of(store.read(DAY))][:2] == [
        "2019-08-25T12:30Z",
        "2019-08-25T12:45Z",
    ]
    assert store.summary(DAY) == {k: v for k, v in document.items() if k != "sources"}
    assert "off_grid_starts" not in build_document(DAY, [source(records)])


def day_periods_of(document: dict) -> list[dict]:
    return [record for source in document["sources"] for record in source["data"]]


def test_merge_keeps_half_hours_only_the_previous_fetch_had(tmp_path):
    records = [r for r in real_periods() if r["from"].startswith("2019-08-25")]
    store = BronzeStore(tmp_path)
    store.write(build_document(DAY, [source(records[:10], "2024-01-01T00:00:00+00:00")]))
    new = build_document(DAY, [source(records[5:], "2024-02-01T00:00:00+00:00")])
    merged = merge_with_previous(new, store.read(DAY))
    assert merged["half_hours"] == 23
    assert len(day_periods(merged)) == 23  # 18 new + the 5 only the previous fetch had


def test_store_writes_atomically_and_reads_back(tmp_path):
    store = BronzeStore(tmp_path)
    document = build_document(DAY, [source(real_periods()[:3])])
    size = store.write(document)
    stored = store.read(DAY)
    assert stored["sources"][0]["data"] == real_periods()[:3]
    assert {**stored, "sources": None} == {**document, "sources": None}
    assert size == store.path(DAY).stat().st_size
    assert [p.name for p in store.path(DAY).parent.iterdir()] == ["2019-08-25.json.gz"]


def test_is_complete_reads_the_flag_from_the_head_of_the_file(tmp_path):
    from carbon_assets.bronze.records import api_datetime
    from carbon_assets.bronze.request_plan import half_hours_of
    from carbon_assets.emulator import regional_period_records

    store = BronzeStore(tmp_path)
    day = dt.date(2024, 3, 1)
    full = [
        {
            "from": api_datetime(s),
            "to": api_datetime(s + dt.timedelta(minutes=30)),
            "regions": regional_period_records(s),
        }
        for s in half_hours_of(day)
    ]
    assert store.is_complete(day) is False  # no file
    store.write(build_document(day, [source(full)]))
    assert store.is_complete(day) is True
    store.write(build_document(day, [source(full[:-1])]))
    assert store.is_complete(day) is False


def test_records_are_stored_as_the_exact_bytes_the_api_sent(tmp_path):
    body = REAL_2019.read_bytes()
    periods = periods_in_response(body)
    assert len(periods) == 48 and all(period.full and period.regions == 18 for period in periods)
    store = BronzeStore(tmp_path)
    store.write(
        build_document(DAY, [{**source([]), "data": [p for p in periods if p.start.date() == DAY]}])
    )
    with gzip.open(store.path(DAY), "rb") as handle:
        written = handle.read()
    first = periods[0].raw
    assert first in body and first in written  # not re-encoded: key order, spacing, numbers as sent


@pytest.mark.parametrize(
    "body", [b"[]", b'{"data": {}}', b'{"data": [{"to": "x"}]}', b'{"data": [1]}', b"{"]
)
def test_malformed_answers_are_rejected(body):
    with pytest.raises(ValueError):
        periods_in_response(body)


@pytest.mark.parametrize("body", [b"{}", b'{"data": null}', b'{"data": []}'])
def test_answers_without_data_have_no_periods(body):
    assert periods_in_response(body) is None
