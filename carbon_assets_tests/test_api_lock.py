"""The lake's API lock: a file only its owner can open, a wait that ends naming the holder."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_assets.bronze.store import API_LOCK_FILE, BronzeStore, LockError, LockTimeout


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A lake folder every user can reach (pytest's tmp_path is its owner's alone, which would
    keep another user from the lock file whatever its mode)."""
    folder = Path(tempfile.mkdtemp(prefix="carbon-lock-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_the_lock_file_is_the_owners_alone(tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    with store.api_lock(on_wait=pytest.fail):
        assert mode(store.root / API_LOCK_FILE) == 0o600
    # One of an older version (0644) is made the owner's alone.
    (store.root / API_LOCK_FILE).chmod(0o644)
    with store.api_lock(on_wait=pytest.fail):
        assert mode(store.root / API_LOCK_FILE) == 0o600


def test_a_symlink_is_never_followed(tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    store.root.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("not a lock")
    before = mode(target)
    (store.root / API_LOCK_FILE).symlink_to(target)
    refused = pytest.raises(LockError, match=f"{store.root / API_LOCK_FILE}.*remove it")
    with refused, store.api_lock():
        pass
    assert target.read_text() == "not a lock" and mode(target) == before


def test_a_lock_file_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    store = BronzeStore(tmp_path / "bronze")
    store.root.mkdir()
    lock = store.root / API_LOCK_FILE
    lock.touch(mode=0o600)
    os.chown(lock, 65534, 65534)
    with pytest.raises(LockError, match="belongs to uid 65534"), store.api_lock():
        pass


def test_another_user_cannot_hold_it(open_folder):
    if os.geteuid() != 0 or shutil.which("su") is None or shutil.which("flock") is None:
        pytest.skip("needs root, su and flock(1)")
    store = BronzeStore(open_folder / "bronze")
    store.root.mkdir(mode=0o755)
    store.root.chmod(0o755)
    with store.api_lock(on_wait=pytest.fail):
        pass

    # The folder is open to nobody: a 0644 file in it, nobody can hold (as it could before).
    readable = store.root / "readable"
    readable.touch(mode=0o644)
    readable.chmod(0o644)
    assert nobody(f"flock -n -x {readable} true").returncode == 0

    # The lock file it cannot even open; a run takes the lock at once meanwhile.
    holder = subprocess.Popen(
        ["su", "nobody", "-s", "/bin/sh", "-c", f"flock -x {store.root / API_LOCK_FILE} sleep 5"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with store.api_lock(on_wait=pytest.fail, timeout_seconds=2):
            pass
        _, stderr = holder.communicate(timeout=30)
    finally:
        holder.kill()
    assert holder.returncode != 0 and "Permission denied" in stderr, stderr


def nobody(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_wait_names_the_holder_and_ends(tmp_path):
    store = BronzeStore(tmp_path / "bronze")
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.api_lock(holder="run 1234abcd"):
            taken.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10)
        waits: list[str] = []
        waiting = store.api_lock(on_wait=waits.append, timeout_seconds=0.5)
        with pytest.raises(LockTimeout) as raised, waiting:
            pytest.fail("took a lock that another holder had")
    finally:
        release.set()
        thread.join()
    holder = f"pid {os.getpid()} on {socket.gethostname()} since 20"
    (wait,) = waits
    assert holder in wait and "run 1234abcd" in wait and "giving up after 0.5 s" in wait
    message = str(raised.value)
    assert message.startswith("Gave up after 0.5 s waiting") and holder in message
    assert "run 1234abcd" in message and "\n" not in message

    # Released: the next run takes it at once, and the file no longer names anyone.
    with store.api_lock(on_wait=pytest.fail, timeout_seconds=0):
        pass
    assert (store.root / API_LOCK_FILE).read_bytes() == b""


def test_a_holder_that_recorded_nothing_is_named_from_the_kernels_locks(tmp_path):
    if shutil.which("flock") is None:
        pytest.skip("needs flock(1)")
    store = BronzeStore(tmp_path / "bronze")
    with store.api_lock():
        pass
    lock = store.root / API_LOCK_FILE
    holder = subprocess.Popen(["flock", "-x", str(lock), "sleep", "30"])
    try:
        waits: list[str] = []
        for _ in range(100):  # until flock(1) holds it
            try:
                with store.api_lock(on_wait=waits.append, timeout_seconds=0.2):
                    time.sleep(0.05)
            except LockTimeout as error:
                message = str(error)
                break
        else:
            pytest.fail("flock(1) never took the lock")
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid}" in message and "sleep 30" in message, message
