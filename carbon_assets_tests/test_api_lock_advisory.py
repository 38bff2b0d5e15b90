"""The lake's API lock as a PostgreSQL advisory lock: waiters name the holder and take their
turn, a wait ends, lakes do not block each other, a killed holder frees it, no password shows;
and the models' build lock beside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

from carbon_assets.locks import (
    APPLICATION_PREFIX,
    LockError,
    LockTimeout,
    advisory_api_lock,
    api_lock_key,
    models_build_key,
    models_build_lock,
)
from carbon_assets_tests.postgres_helpers import query, role_with_password

LAKE = "s3://bucket/lake"
PROJECT = Path(__file__).resolve().parents[1]


@dataclass
class Holder:
    """A thread of this process holding the lock in a session of its own until `release()`."""

    let_go: threading.Event = field(default_factory=threading.Event)
    releasing: float | None = None  # time.monotonic() when it started to let go

    def release(self) -> None:
        self.let_go.set()


@contextlib.contextmanager
def held(database_url: str, lake_url: str = LAKE, holder: str = "run 1234abcd") -> Iterator[Holder]:
    state, taken = Holder(), threading.Event()

    def hold() -> None:
        with advisory_api_lock(database_url, lake_url, holder, timeout_seconds=5):
            taken.set()
            state.let_go.wait(30)
            state.releasing = time.monotonic()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10), "the holder never took the lock"
        yield state
    finally:
        state.release()
        thread.join(10)


def test_the_key_is_stable_and_one_per_lake(tmp_path, monkeypatch):
    # Pinned: a changed derivation would let an old and a new version fetch at the same time.
    assert api_lock_key(LAKE) == -7760741081000867460
    assert api_lock_key(LAKE + "/") == api_lock_key(f" {LAKE}//") == api_lock_key(LAKE)
    assert api_lock_key("s3://bucket/other") != api_lock_key(LAKE)
    monkeypatch.chdir(tmp_path)
    local = api_lock_key(str(tmp_path / "lake"))
    assert api_lock_key("lake") == api_lock_key(f"file://{tmp_path}/lake/") == local


def test_a_waiter_names_the_holder_and_takes_its_turn(service_database_url):
    url = service_database_url
    long_holder = "run " + "0123456789abcdef" * 4  # longer than an application_name can be
    with held(url, holder=long_holder) as holder:
        ((name,),) = query(
            url,
            "SELECT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'carbon-assets%%'",
        )
        assert name == (APPLICATION_PREFIX + long_holder)[:63]
        waits: list[str] = []

        def wait(message: str) -> None:  # once it has said whom it waits for, the holder ends
            waits.append(message)
            holder.release()

        with advisory_api_lock(url, LAKE, "run waiter", 10, poll_seconds=0.05, on_wait=wait):
            taken = time.monotonic()
    assert holder.releasing is not None and taken > holder.releasing
    (message,) = waits
    assert message.startswith(f"Waiting for the lake's API lock ({LAKE}: PostgreSQL advisory")
    assert f"held by {name.removeprefix(APPLICATION_PREFIX)} (PostgreSQL pid " in message
    assert " from 127.0.0.1, since 20" in message and message.endswith("giving up after 10 s")


def test_a_wait_ends_with_one_line_naming_the_holder(service_database_url):
    url = service_database_url
    with held(url):
        started = time.monotonic()
        waiting = advisory_api_lock(url, LAKE, "run waiter", 0.5, poll_seconds=0.1)
        with pytest.raises(LockTimeout) as raised, waiting:
            pytest.fail("took a lock that another session held")
        waited = time.monotonic() - started
    assert isinstance(raised.value, TimeoutError) and 0.5 <= waited < 5
    message = str(raised.value)
    assert message.startswith(f"Gave up after 0.5 s waiting for the lake's API lock ({LAKE}: ")
    assert "held by run 1234abcd (PostgreSQL pid " in message and "\n" not in message
    assert message.endswith("let that run end (or stop it), then re-run")
    # Released: the next one takes it at once.
    with advisory_api_lock(url, LAKE, "run next", 0, on_wait=pytest.fail):
        pass


def test_two_dbt_builds_take_turns_and_never_block_the_api(service_database_url):
    """The models' build lock is a key of its own: held, it leaves every lake's API lock free,
    and a second build waits for it, then fails naming the first (two `dbt build`s at once
    fail with "relation ... already exists")."""
    url = service_database_url
    assert models_build_key() not in (api_lock_key(LAKE), api_lock_key("lake"))
    with models_build_lock(url, "dbt build of run first", 5):
        with advisory_api_lock(url, LAKE, "run fetching", 0, on_wait=pytest.fail):
            pass
        waits: list[str] = []
        second = models_build_lock(url, "dbt build of run second", 0.3, on_wait=waits.append)
        with pytest.raises(LockTimeout) as raised, second:
            pytest.fail("two builds held the models' build lock at once")
    (message,) = waits
    assert message.startswith("Waiting for the models' build lock (PostgreSQL advisory lock ")
    assert "held by dbt build of run first (PostgreSQL pid " in str(raised.value)
    with models_build_lock(url, "dbt build of run third", 0, on_wait=pytest.fail):
        pass


def test_a_holder_that_is_not_a_run_is_named_for_what_it_is(service_database_url):
    url = service_database_url
    other = psycopg2.connect(url.replace("postgresql+psycopg2", "postgresql"))
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SET application_name = 'a psql session'")
            cursor.execute("SELECT pg_advisory_lock(%s)", (api_lock_key(LAKE),))
        named = r"not a carbon-assets run \(application_name 'a psql session', PostgreSQL pid \d"
        with pytest.raises(LockTimeout, match=named), advisory_api_lock(url, LAKE, "w", 0):
            pass
    finally:
        other.close()


def test_two_lakes_do_not_block_each_other(service_database_url):
    url = service_database_url
    with advisory_api_lock(url, LAKE, "run a", 0, on_wait=pytest.fail):
        with advisory_api_lock(url, "s3://bucket/other", "run b", 0, on_wait=pytest.fail):
            pass
        # The same lake however written, even from the same process: a session each.
        with pytest.raises(LockTimeout), advisory_api_lock(url, LAKE + "/", "run c", 0):
            pass


def test_a_holder_killed_with_sigkill_frees_the_lock(service_database_url):
    url = service_database_url
    script = textwrap.dedent(
        f"""
        import time
        from carbon_assets.locks import advisory_api_lock
        with advisory_api_lock({url!r}, {LAKE!r}, "run doomed", timeout_seconds=5):
            print("held", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "held\n"
        busy = pytest.raises(LockTimeout, match="held by run doomed")
        with busy, advisory_api_lock(url, LAKE, "run waiter", 0):
            pass
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        killed = time.monotonic()
        with advisory_api_lock(url, LAKE, "run after", 5, poll_seconds=0.05):
            freed_after = time.monotonic() - killed
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL and freed_after < 5


def test_no_message_shows_the_password():
    with role_with_password() as (url, password):
        waits: list[str] = []
        waiting = advisory_api_lock(url, LAKE, "run waiter", 0.2, 0.1, on_wait=waits.append)
        with held(url), pytest.raises(LockTimeout) as raised, waiting:
            pass
        unreachable = url.replace("127.0.0.1:5432", "127.0.0.1:1")
        with pytest.raises(LockError) as failed, advisory_api_lock(unreachable, LAKE, "w", 0):
            pass
    assert not isinstance(failed.value, LockTimeout)
    messages = [*waits, str(raised.value), str(failed.value)]
    assert len(messages) == 3 and not any(password in message for message in messages)
    assert str(failed.value).startswith("Cannot take the lake's API lock (s3://bucket/lake: ")
    assert "\n" not in str(failed.value) and "check CARBON_DATABASE_URL" in str(failed.value)
