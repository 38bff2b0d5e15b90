"""BronzeStore: a day file that cannot be read whole is named, set aside and treated as absent."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest

from carbon_assets.bronze.day_files import build_document, decode_periods
from carbon_assets.bronze.records import Period
from carbon_assets.bronze.store import DAMAGED_FOLDER, BronzeStore, DamagedDayFile, whole_content
from carbon_assets.storage import atomic_write_bytes
from carbon_assets_tests.helpers import real_periods, source

DAY = dt.date(2019, 8, 25)


def stored(tmp_path: Path) -> tuple[BronzeStore, list[str]]:
    """A store holding one real (incomplete) day, and the messages it reports."""
    messages: list[str] = []
    store = BronzeStore(tmp_path / "bronze", on_damaged=messages.append)
    records = [p for p in real_periods() if p["from"].startswith(DAY.isoformat())]
    store.write(build_document(DAY, [source(records)]))
    return store, messages


def truncated_gzip(good: bytes) -> bytes:
    return good[: len(good) // 2]  # a valid gzip start, as an interrupted copy leaves it


def garbage(good: bytes) -> bytes:
    return b"this is no gzip file\n"


def truncated_json(good: bytes) -> bytes:
    content = gzip.decompress(good)
    return gzip.compress(content[: len(content) // 2])  # a whole gzip of half a document


def empty(good: bytes) -> bytes:
    return b""


def bad_crc(good: bytes) -> bytes:
    return good[:-8] + bytes(8)  # every byte of the data there, the trailer wrong


DAMAGES = [truncated_gzip, garbage, truncated_json, empty, bad_crc]


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("reader", ["head", "read", "read_periods", "summary"])
def test_a_damaged_file_is_set_aside_named_and_treated_as_absent(tmp_path, damage, reader):
    store, messages = stored(tmp_path)
    path = store.path(DAY)
    bad = damage(path.read_bytes())
    path.write_bytes(bad)

    assert getattr(store, reader)(DAY) is None
    assert not path.exists() and store.stored_days() == []
    assert list(store.root.rglob("*.json.gz")) == []  # no glob of day files (DuckDB's) sees it
    (kept,) = (store.root / DAMAGED_FOLDER / "2019").iterdir()
    assert kept.name.startswith("2019-08-25.json.gz.") and kept.read_bytes() == bad
    (message,) = messages
    assert str(path) in message and str(kept) in message and "fetches it again" in message
    assert "\n" not in message

    # Nothing reads the file set aside: the day is absent for every reader from now on.
    assert store.head(DAY) is None and store.read(DAY) is None and not store.is_complete(DAY)
    assert len(messages) == 1


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (truncated_gzip, "truncated gzip"),
        (garbage, "not a gzip file"),
        (truncated_json, "not one whole JSON object"),
        (empty, "empty file"),
        (bad_crc, "damaged gzip"),
    ],
)
def test_the_message_says_what_is_wrong(tmp_path, damage, said):
    store, _ = stored(tmp_path)
    with pytest.raises(DamagedDayFile, match=said):
        whole_content(damage(store.path(DAY).read_bytes()))


def test_a_whole_file_reads_as_before(tmp_path):
    store, messages = stored(tmp_path)
    good = store.path(DAY).read_bytes()
    assert whole_content(good) == gzip.decompress(good)
    assert whole_content(good + gzip.compress(b"")) == gzip.decompress(good)  # two members
    head = store.head(DAY)
    assert head is not None and not head.complete
    assert store.read(DAY)["date"] == DAY.isoformat()
    assert store.summary(DAY)["half_hours"] == store.read(DAY)["half_hours"] > 0
    assert store.stored_days() == [DAY] and messages == []


def test_a_file_that_cannot_be_moved_aside_is_an_error_naming_it(tmp_path):
    store, _ = stored(tmp_path)
    path = store.path(DAY)
    path.write_bytes(b"garbage")
    (store.root / DAMAGED_FOLDER).write_text("a file where the folder would go")
    with pytest.raises(DamagedDayFile, match=f"{path}.*could not be moved aside"):
        store.head(DAY)
    assert path.read_bytes() == b"garbage"  # left where it was, nothing lost


def test_the_default_report_goes_to_logging(tmp_path, caplog):
    store = BronzeStore(tmp_path)
    store.path(DAY).parent.mkdir(parents=True)
    store.path(DAY).write_bytes(b"garbage")
    with caplog.at_level("WARNING", logger="carbon_assets.bronze.store"):
        assert store.summary(DAY) is None
    assert f"Damaged bronze day file {store.path(DAY)}" in caplog.text


def test_a_file_stored_since_it_was_read_is_never_set_aside(tmp_path):
    store, messages = stored(tmp_path)
    path = store.path(DAY)
    good = path.read_bytes()
    path.write_bytes(b"garbage")
    seen = store.folder.version(store.key(DAY))  # a reader found it damaged here...
    atomic_write_bytes(path, good)  # ...and a run stored the day before it moved it
    assert not store._set_aside(store.key(DAY), seen, "garbage")
    assert path.read_bytes() == good and messages == []
    assert not (store.root / DAMAGED_FOLDER).exists()


def test_read_periods_is_the_verified_file_with_its_records_as_sent(tmp_path):
    store, messages = stored(tmp_path)
    document = store.read_periods(DAY)
    assert document == decode_periods(gzip.decompress(store.path(DAY).read_bytes()))
    assert all(isinstance(p, Period) for source in document["sources"] for p in source["data"])
    assert store.read_periods(DAY + dt.timedelta(days=1)) is None and messages == []


def test_a_record_plain_json_cannot_hold_is_read_as_sent(tmp_path):
    """1e309 is whole JSON that no Python float holds: bronze keeps it as sent (its day is
    invalid), so reading the file gives that record as its Period, the others as dicts."""
    store = BronzeStore(tmp_path / "bronze")
    records = [p for p in real_periods() if p["from"].startswith(DAY.isoformat())]
    huge = Period(
        Period.from_record(records[0]).raw.replace(
            b'"forecast":' + str(records[0]["regions"][0]["intensity"]["forecast"]).encode(),
            b'"forecast":1e309',
            1,
        )
    )
    assert b"1e309" in huge.raw and huge.problems
    store.write(
        build_document(DAY, [{**source(records), "data": [huge, *source(records)["data"][1:]]}])
    )

    document = store.read(DAY)
    first, *others = document["sources"][0]["data"]
    assert first == huge and first.raw == huge.raw
    assert [record["from"] for record in others] == [record["from"] for record in records[1:]]
    assert document["invalid_half_hours"][0]["start"] == records[0]["from"]


def test_peek_complete_reads_only_the_head(tmp_path):
    store, _ = stored(tmp_path)
    assert store.peek_complete(DAY) is False  # the real day has 24 of its 48 half-hours
    assert store.peek_complete(DAY + dt.timedelta(days=1)) is None  # no file
    store.path(DAY).write_bytes(b"garbage")
    assert store.peek_complete(DAY) is None
    assert store.path(DAY).exists()  # a peek sets nothing aside: head() decides that
