"""Bronze day files: {lake}/bronze/YYYY/YYYY-MM-DD.json.gz, written atomically.

A day file that cannot be read whole (a bad or truncated gzip, content that is not one whole
JSON document: an interrupted copy of the lake, a disk error) is never taken for a day's data:
the store moves it to {lake}/bronze/_damaged/YYYY/YYYY-MM-DD.json.gz.<UTC time>, kept for
inspection and read by nobody, says so through `on_damaged`, and answers as if the day had no
file, so bronze fetches the day again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import io
import json
import logging
import os
import re
import socket
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from carbon_assets.bronze import day_files
from carbon_assets.bronze.day_files import DayDocument, DayHead
from carbon_assets.bronze.records import AnyPeriod, Period
from carbon_assets.locks import LockError, LockTimeout
from carbon_assets.storage import Storage, storage_at

API_LOCK_FILE = ".api.lock"
# Longer than any run holds the lock for (a whole-history backfill fetches for minutes); a run
# that waits longer fails naming the holder rather than queueing forever behind it.
API_LOCK_TIMEOUT_SECONDS = 3600.0
DAMAGED_FOLDER = "_damaged"
DAY_FILE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}\.json\.gz$")
_GZIP = zlib.MAX_WBITS | 16  # zlib's gzip mode checks the trailer: the CRC and the length
# Compressed bytes that always hold a day file's head (day_files.HEAD_WITHIN bytes of content).
PEEK_BYTES = 4096

logger = logging.getLogger(__name__)


class DamagedDayFile(ValueError):
    """A day file's bytes are not one whole gzip holding one whole JSON object."""


def whole_content(raw: bytes) -> bytes:
    """The decompressed content of a day file's bytes, verified whole: every gzip member ends
    with a matching CRC and length, and the content is one complete JSON object (checked
    without building it). DamagedDayFile otherwise."""
    if not raw:
        raise DamagedDayFile("empty file")
    content: list[bytes] = []
    rest = raw
    while True:
        inflater = zlib.decompressobj(_GZIP)
        try:
            content.append(inflater.decompress(rest))
        except zlib.error as error:
            what = "not a gzip file" if "header check" in str(error) else "damaged gzip"
            raise DamagedDayFile(f"{what}: {error}") from None
        if not inflater.eof:
            raise DamagedDayFile("truncated gzip: the file ends inside its compressed data")
        rest = inflater.unused_data.lstrip(b"\0")  # zero padding, as gzip.decompress allows
        if not rest:
            break
    text = b"".join(content)
    try:
        msgspec.json.decode(text, type=dict[str, msgspec.Raw])
    except msgspec.DecodeError as error:
        raise DamagedDayFile(f"not one whole JSON object ({error})") from None
    return text


class BronzeStore:
    """One gzip-compressed JSON day document per UTC day (the format is day_files.py's)."""

    def __init__(
        self,
        folder: Storage | str | os.PathLike,
        on_damaged: Callable[[str], object] | None = None,
        period_type: type[AnyPeriod] = Period,
    ):
        self.folder = storage_at(folder)
        self.on_damaged = on_damaged or logger.warning
        self.period_type = period_type  # the records its files hold (regional or national)

    @property
    def root(self) -> Path:
        """The folder on local disk (a lake in an object store has none)."""
        if self.folder.local_path is None:
            raise ValueError(f"{self.folder.url} is not a folder on this machine")
        return self.folder.local_path

    @staticmethod
    def key(day: dt.date) -> str:
        return f"{day.year:04d}/{day.isoformat()}.json.gz"

    def location(self, day: dt.date) -> str:
        """The day file's full path or URL."""
        return self.folder.location(self.key(day))

    def path(self, day: dt.date) -> Path:
        """The day file's path on local disk."""
        return self.root / self.key(day)

    def write(self, document: DayDocument) -> int:
        """Store a day document; returns the number of bytes written."""
        payload = day_files.encode(document)
        self.folder.write_bytes(self.key(dt.date.fromisoformat(document["date"])), payload)
        return len(payload)

    def _content(self, day: dt.date) -> bytes | None:
        """The day file's decompressed content, verified whole; None when there is no file or
        it was damaged (then it has been moved aside and reported)."""
        key = self.key(day)
        for _ in range(3):  # a file replaced while it was read is read again
            try:
                raw, version = self.folder.read_versioned(key)
            except FileNotFoundError:
                return None
            try:
                return whole_content(raw)
            except DamagedDayFile as damage:
                if self._set_aside(key, version, str(damage)):
                    return None
        return None

    def _set_aside(self, key: str, version: object, damage: str) -> bool:
        """Move a damaged file under _damaged/ and report it; False when the file was replaced
        since it was read (a run stored the day meanwhile), True once it is gone."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        year, _, name = key.partition("/")
        target = f"{DAMAGED_FOLDER}/{year}/{name}.{stamp}"
        location = self.folder.location(key)
        try:
            if not self.folder.move_unless_replaced(key, target, version):
                return False
        except OSError as error:
            raise DamagedDayFile(
                f"Damaged bronze day file {location} ({damage}) could not be moved aside "
                f"({error.strerror or error}): move or delete it, then run bronze for its day"
            ) from error
        self.on_damaged(
            f"Damaged bronze day file {location} ({damage}): moved to "
            f"{self.folder.location(target)}; the day counts as not stored, so bronze fetches "
            "it again"
        )
        return True

    def read(self, day: dt.date) -> DayDocument | None:
        """The day's file as plain JSON data (its records are dicts), or None if absent or
        damaged.

        A record that plain JSON data cannot hold in Python (a number such as 1e309) stays a
        Period, its bytes as the API sent them: bronze keeps such a record on purpose (its day
        is invalid, never complete), so the file is whole and the tools that show why a day is
        invalid must be able to read it.
        """
        content = self._content(day)
        if content is None:
            return None
        try:
            return msgspec.json.decode(content)
        except msgspec.ValidationError:
            document = day_files.decode_periods(content, self.period_type)
            for source in document.get("sources", ()):
                source["data"] = [_plain(period) for period in source.get("data", ())]
            return document

    def read_periods(self, day: dt.date) -> DayDocument | None:
        """The day's file with its records as Periods, as the API sent them
        (day_files.decode_periods), verified whole; None if absent or damaged."""
        content = self._content(day)
        return None if content is None else day_files.decode_periods(content, self.period_type)

    def summary(self, day: dt.date) -> DayDocument | None:
        """The day's file without its records (date, completeness, missing and off-grid
        half-hours), or None if absent or damaged."""
        content = self._content(day)
        return None if content is None else day_files.summary(io.BytesIO(content))

    def exists(self, day: dt.date) -> bool:
        return self.folder.exists(self.key(day))

    def sizes(self, days: list[dt.date]) -> dict[dt.date, int]:
        """{day: bytes} of the days of `days` that have a file (a listing per year)."""
        found: dict[str, int] = {}
        for year in sorted({day.year for day in days}):
            found |= self.folder.sizes(f"{year:04d}")
        return {day: found[self.key(day)] for day in days if self.key(day) in found}

    def head(self, day: dt.date) -> DayHead | None:
        """Whether the day's file is complete and when it was fetched, from the head of the
        file once the whole file has been verified (a truncated file must not pass for
        complete); None when there is no file or it was damaged."""
        content = self._content(day)
        if content is None:
            return None
        head = day_files.read_head(content[: day_files.HEAD_WITHIN])
        if head is None or head.first_fetched_at is None:
            return day_files.head_of(msgspec.json.decode(content))
        return head

    def peek_complete(self, day: dt.date) -> bool | None:
        """Whether the day's file says it is complete, from its first bytes alone: for a look
        over years of days (the file is not verified whole; head() is the answer to act on).
        None when there is no file or its start does not show it."""
        try:
            start = self.folder.read_start(self.key(day), PEEK_BYTES)
        except FileNotFoundError:
            return None
        try:
            text = zlib.decompressobj(_GZIP).decompress(start, day_files.HEAD_WITHIN)
        except zlib.error:
            return None
        head = day_files.read_head(text)
        return None if head is None else head.complete

    def is_complete(self, day: dt.date) -> bool:
        head = self.head(day)
        return head is not None and head.complete

    @contextlib.contextmanager
    def api_lock(
        self,
        on_wait: Callable[[str], object] = print,
        timeout_seconds: float = API_LOCK_TIMEOUT_SECONDS,
        holder: str | None = None,
    ) -> Iterator[None]:
        """Hold the lake's API lock: one run at a time decides what to fetch and fetches it.

        An flock, so it holds across every process on this machine that writes this lake (the
        CLI, the Python API, runs the daemon launched) and is released if the holder dies. A
        lake in an object store has no file to lock: bronze takes a PostgreSQL advisory lock
        there instead (locks.py). The
        lock file is the owner's alone (0600): flock needs only a descriptor, so a file others
        can open is a lock others can hold. The holder writes who it is (pid, host, since and
        `holder`, e.g. a run id) into the file, so a run that waits can say whom it waits
        for; after `timeout_seconds` it fails (LockTimeout) naming the holder.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / API_LOCK_FILE
        fd = _open_lock_file(path)
        try:
            if not _try_lock(fd):
                on_wait(
                    f"Waiting for the lake's API lock ({path}), held by {_holder(fd, path)}; "
                    f"giving up after {timeout_seconds:g} s"
                )
                _wait_for_lock(fd, path, timeout_seconds)
            try:
                _record_holder(fd, holder)
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def stored_days(self) -> list[dt.date]:
        """Every day that has a file, in order (never a file set aside under _damaged/)."""
        names = (key.rpartition("/")[2] for key in self.folder.glob("[0-9][0-9][0-9][0-9]/*"))
        return sorted(
            dt.date.fromisoformat(name[:10]) for name in names if DAY_FILE_NAME.match(name)
        )


def _plain(period: AnyPeriod) -> dict | AnyPeriod:
    """A record as plain JSON data, or the Period itself when plain JSON cannot hold it."""
    try:
        return msgspec.json.decode(period.raw)
    except msgspec.ValidationError:
        return period


# --- the API lock ------------------------------------------------------------------------


def _open_lock_file(path: Path) -> int:
    """The lock file, created 0600 if absent (never through a symlink); one of another mode is
    made 0600, one of another owner or not a regular file is refused."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise LockError(
            f"Cannot open the lake's API lock {path}: {error.strerror or error} (a symlink or a "
            "file of another user?): remove it and re-run"
        ) from error
    info = os.fstat(fd)
    try:
        if not stat.S_ISREG(info.st_mode):
            raise LockError(f"The lake's API lock {path} is not a regular file: remove it")
        if info.st_uid != os.geteuid():
            raise LockError(
                f"The lake's API lock {path} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}): another user could hold it; remove it and re-run"
            )
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for_lock(fd: int, path: Path, timeout_seconds: float) -> None:
    """Poll for the lock (a blocking flock cannot time out in a thread) until the deadline."""
    deadline = time.monotonic() + timeout_seconds
    pause = 0.05
    while not _try_lock(fd):
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(
                f"Gave up after {timeout_seconds:g} s waiting for the lake's API lock "
                f"({path}), held by {_holder(fd, path)}: let that run end (or stop it), "
                "then re-run"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, 1.0)


def _record_holder(fd: int, holder: str | None) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if holder:
        record["holder"] = holder
    with contextlib.suppress(OSError):  # a full disk costs the waiters' message, not the run
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)


def _holder(fd: int, path: Path) -> str:
    """Who holds the lock, as its holder recorded it, checked against this machine's locks:
    a recorded holder that has ended (killed) is not named as if it were still there."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
    except ValueError:
        record = None
    locker = _flock_pid(path)
    if isinstance(record, dict) and "pid" in record:
        named = f"pid {record['pid']} on {record.get('host', '?')} since {record.get('since', '?')}"
        if record.get("holder"):
            named += f" ({record['holder']})"
        if record.get("host") != socket.gethostname() or locker in (None, record["pid"]):
            return named
    if locker is not None:
        return f"pid {locker} (a process that recorded no holder: {_command(locker)})"
    return "another process (it recorded no holder)"


def _flock_pid(path: Path) -> int | None:
    """The pid that holds an flock on `path`, from /proc/locks (Linux), or None."""
    try:
        info = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"; a waiter's line has "->" after "1:".
    # By inode alone: on an overlay filesystem the kernel names the device underneath.
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{info.st_ino}"):
            with contextlib.suppress(ValueError):
                return int(fields[4])
    return None


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "unknown command"
