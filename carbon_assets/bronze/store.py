"""Bronze day files on disk: {data_dir}/bronze/YYYY/YYYY-MM-DD.json.gz, written atomically."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

from carbon_assets.bronze import day_files
from carbon_assets.bronze.day_files import DayDocument
from carbon_assets.lake import atomic_write_bytes


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

    def is_complete(self, day: dt.date) -> bool:
        path = self.path(day)
        if not path.exists():
            return False
        with gzip.open(path, "rb") as handle:
            flag = day_files.complete_flag(handle.read(day_files.COMPLETE_FLAG_WITHIN))
        if flag is None:
            document = self.read(day)
            return bool(document and document.get("complete"))
        return flag

    def stored_days(self) -> list[dt.date]:
        """Every day that has a file, in order."""
        return sorted(dt.date.fromisoformat(p.name[:10]) for p in self.root.glob("*/*.json.gz"))
