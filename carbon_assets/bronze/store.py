"""Bronze day files on disk: {data_dir}/bronze/YYYY/YYYY-MM-DD.json.gz, written atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

from carbon_assets.bronze import day_files
from carbon_assets.bronze.day_files import DayDocument, DayHead
from carbon_assets.lake_files import atomic_write_bytes

API_LOCK_FILE = ".api.lock"


class BronzeStore:
    """One gzip-compressed JSON day document per UTC day (the format is day_files.py's)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, day: dt.date) -> Path:
        return self.root / f"{day.year:04d}" / f"{day.isoformat()}.json.gz"

    def write(self, document: DayDocument) -> int:
        """Store a day document; returns the number of bytes written."""
        payload = day_files.encode(document)
        atomic_write_bytes(self.path(dt.date.fromisoformat(document["date"])), payload)
        return len(payload)

    def read(self, day: dt.date) -> DayDocument | None:
        """The day's file as plain JSON data (its records are dicts), or None if absent."""
        path = self.path(day)
        return day_files.decode(path.read_bytes()) if path.exists() else None

    def summary(self, day: dt.date) -> DayDocument | None:
        """The day's file without its records (date, completeness, missing and off-grid
        half-hours), or None if absent."""
        path = self.path(day)
        if not path.exists():
            return None
        with gzip.open(path, "rb") as handle:
            return day_files.summary(handle)

    def exists(self, day: dt.date) -> bool:
        return self.path(day).exists()

    def head(self, day: dt.date) -> DayHead | None:
        """Whether the day's file is complete and when it was fetched, read from the head of the
        file; None when there is no file."""
        path = self.path(day)
        if not path.exists():
            return None
        with gzip.open(path, "rb") as handle:
            head = day_files.read_head(handle.read(day_files.HEAD_WITHIN))
        if head is None or head.first_fetched_at is None:
            return day_files.head_of(self.read(day) or {})
        return head

    def is_complete(self, day: dt.date) -> bool:
        head = self.head(day)
        return head is not None and head.complete

    @contextlib.contextmanager
    def api_lock(self, on_wait: Callable[[str], object] = print) -> Iterator[None]:
        """Hold the lake's API lock: one run at a time decides what to fetch and fetches it.

        An flock, so it holds across every process on this machine that writes this lake (the
        CLI, the Python API, runs the daemon launched) and is released if the holder dies.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / API_LOCK_FILE
        with open(path, "a+") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_wait(f"Waiting for another run that is fetching into this lake ({path})")
                fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def stored_days(self) -> list[dt.date]:
        """Every day that has a file, in order."""
        return sorted(dt.date.fromisoformat(p.name[:10]) for p in self.root.glob("*/*.json.gz"))
