"""Day documents: completeness and merging a re-fetch without losing half-hours."""

import copy
import datetime as dt
import gzip

import msgspec
import pytest

from carbon_assets.bronze.day_files import (
    assess,
    build_document,
    day_periods,
    decode_periods,
    merge_with_previous,
)
from carbon_assets.bronze.records import Period, api_datetime, periods_in_response
from carbon_assets.bronze.request_plan import half_hours_of
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.emulator import regional_period_records
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


# --- invalid half-hours ------------------------------------------------------------------


def _day_records() -> list[dict]:
    return [r for r in real_periods() if r["from"].startswith("2019-08-25")]


def _with_gas(record: dict, perc: float) -> dict:
    record = copy.deepcopy(record)
    next(s for s in record["regions"][2]["generationmix"] if s["fuel"] == "gas")["perc"] = perc
    return record


GAS_1E9 = "2019-08-25T12:30Z region 3 (North West England): gas share 1e+09 % is outside 0-100"


def test_an_invalid_half_hour_makes_the_day_incomplete_and_is_listed_in_the_summary(tmp_path):
    records = _day_records()
    document = build_document(DAY, [source([_with_gas(records[0], 1e9), *records[1:]])])
    assert document["complete"] is False
    assert document["invalid_half_hours"] == [{"start": "2019-08-25T12:30Z", "problems": [GAS_1E9]}]
    assert document["half_hours"] == 22  # 23 whole half-hours, one of them invalid
    assert "2019-08-25T12:30Z" not in document["missing_half_hours"]
    assert list(document)[-2:] == ["invalid_half_hours", "sources"]
    store = BronzeStore(tmp_path)
    store.write(document)
    assert store.summary(DAY)["invalid_half_hours"] == document["invalid_half_hours"]
    assert store.head(DAY).complete is False  # the head regex still reads the file
    assert "invalid_half_hours" not in build_document(DAY, [source(records)])


def test_a_day_whole_but_for_one_invalid_value_is_not_complete():
    records = [
        {"from": api_datetime(s), "regions": regional_period_records(s)}
        for s in half_hours_of(dt.date(2024, 3, 1))
    ]
    assert build_document(dt.date(2024, 3, 1), [source(records)])["complete"] is True
    records[5]["regions"][0]["intensity"]["forecast"] = 2_000_000_000
    document = build_document(dt.date(2024, 3, 1), [source(records)])
    assert (document["complete"], document["missing_half_hours"]) == (False, [])
    [invalid] = document["invalid_half_hours"]
    assert invalid["start"] == "2024-03-01T02:30Z"
    assert invalid["problems"] == [
        "2024-03-01T02:30Z region 1 (North Scotland): intensity forecast 2000000000 gCO2/kWh is "
        + "outside 0-2000"
    ]


def test_a_later_valid_fetch_replaces_an_invalid_half_hour(tmp_path):
    records = _day_records()
    store = BronzeStore(tmp_path)
    store.write(build_document(DAY, [source([_with_gas(records[0], 1e9), *records[1:]], OLD)]))
    merged = merge_with_previous(build_document(DAY, [source(records, NEW)]), _read(store))
    assert "invalid_half_hours" not in merged
    assert len(day_periods(merged)) == 23 and merged["half_hours"] == 23


def test_a_fetch_without_the_half_hour_keeps_the_invalid_copy(tmp_path):
    records = _day_records()
    store = BronzeStore(tmp_path)
    store.write(build_document(DAY, [source([_with_gas(records[0], 1e9), *records[1:]], OLD)]))
    merged = merge_with_previous(build_document(DAY, [source(records[1:], NEW)]), _read(store))
    assert merged["invalid_half_hours"][0]["problems"] == [GAS_1E9]


def test_an_old_valid_copy_is_kept_beside_a_new_invalid_one_and_the_day_stays_invalid(tmp_path):
    records = _day_records()
    store = BronzeStore(tmp_path)
    store.write(build_document(DAY, [source(records, OLD)]))
    bad = [_with_gas(records[0], 1e9), *records[1:]]
    merged = merge_with_previous(build_document(DAY, [source(bad, NEW)]), _read(store))
    assert merged["complete"] is False and merged["invalid_half_hours"][0]["start"] == (
        "2019-08-25T12:30Z"
    )
    assert [len(s["data"]) for s in merged["sources"]] == [23, 1]  # the valid 12:30 kept
    # Fetched invalid again: the older invalid copy goes, the valid one stays; nothing grows.
    store.write(merged)
    again = merge_with_previous(build_document(DAY, [source(bad, LATER)]), _read(store))
    assert [len(s["data"]) for s in again["sources"]] == [23, 1]
    assert again["sources"][1]["fetched_at"] == OLD


def test_records_plain_json_cannot_hold_are_read_back_as_sent(tmp_path):
    records = _day_records()
    raw = msgspec.json.encode(records[0])
    forecast = b'"forecast":' + str(records[0]["regions"][0]["intensity"]["forecast"]).encode()
    bad = Period(raw.replace(forecast, b'"forecast":1e309', 1))
    store = BronzeStore(tmp_path)
    first = {**source(records[1:], OLD), "data": [bad, *source(records[1:])["data"]]}
    store.write(build_document(DAY, [first]))
    previous = _read(store)
    assert previous["sources"][0]["data"][0] == bad
    assert previous["invalid_half_hours"][0]["problems"] == list(bad.problems)
    merged = merge_with_previous(build_document(DAY, [source(records, NEW)]), previous)
    assert "invalid_half_hours" not in merged and len(day_periods(merged)) == 23


def _read(store: BronzeStore) -> dict:
    return decode_periods(gzip.decompress(store.path(DAY).read_bytes()))


OLD, NEW, LATER = (f"2024-0{m}-01T00:00:00+00:00" for m in (1, 2, 3))


def test_repeated_unreadable_answers_do_not_pile_up(tmp_path):
    records = _day_records()
    raw = msgspec.json.encode(records[0])
    forecast = b'"forecast":' + str(records[0]["regions"][0]["intensity"]["forecast"]).encode()
    unreadable = {**source([]), "data": [Period(raw.replace(forecast, b'"forecast":"abc"', 1))]}
    store = BronzeStore(tmp_path)
    store.write(build_document(DAY, [source(records, OLD)]))
    for fetched_at in (NEW, LATER):
        fetch = {**source(records[1:], fetched_at)}
        fetch["data"] = unreadable["data"] + fetch["data"]
        store.write(merge_with_previous(build_document(DAY, [fetch]), _read(store)))
    document = _read(store)
    assert [len(s["data"]) for s in document["sources"]] == [23, 1]  # the latest + the valid one
    assert document["sources"][1]["fetched_at"] == OLD
    assert "cannot be read" in document["invalid_half_hours"][0]["problems"][0]
