"""The lake on disk: where each layer lives, and crash-safe bronze day files.

    {data_dir}/bronze/2024/2024-01-01.json.gz     one gzip JSON day document per UTC day
    {data_dir}/silver/date_recorded=2024-01-01/   Parquet, partitioned by day (Spark)
    {data_dir}/gold/date_recorded=2024-01-01/     Parquet, partitioned by day (Spark)
    {data_dir}/exports/gold_carbon_intensity_daily.csv
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
import tempfile
from pathlib import Path

import msgspec
from dagster import ConfigurableResource

from carbon_assets.bronze_days import DayDocument, Period

TEMP_PREFIX = ".tmp-"
COMPLETE_FLAG = re.compile(rb'^\{"date":"[0-9-]+","complete":(true|false)')
COMPLETE_FLAG_WITHIN = 64


def _period_as_sent(value: object) -> msgspec.Raw:
    """Periods are written as the bytes the API sent them in, not re-encoded."""
    if isinstance(value, Period):
        return msgspec.Raw(value.raw)
    raise TypeError(f"a day document cannot hold a {type(value).__name__}")


_DOCUMENT_ENCODER = msgspec.json.Encoder(enc_hook=_period_as_sent)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part of it.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over the
    target; the folder is fsynced so the rename itself survives a power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_leftovers(root: Path) -> list[Path]:
    """Delete temporary files and Spark staging folders that a killed run left behind."""
    removed: list[Path] = []
    if not root.exists():
        return removed
    for path in list(root.rglob("*")):
        name = path.name
        leftover = name.startswith(TEMP_PREFIX) or name.startswith(".spark-staging") or name == "_temporary"
        if leftover and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class BronzeStore:
    """One gzip-compressed JSON document per UTC day, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, day: dt.date) -> Path:
        return self.root / f"{day.year:04d}" / f"{day.isoformat()}.json.gz"

    def write(self, document: DayDocument) -> int:
        """Store a day document; returns the number of bytes written."""
        day = dt.date.fromisoformat(document["date"])
        raw = _DOCUMENT_ENCODER.encode(document)
        # mtime=0 keeps the gzip bytes a pure function of the document.
        payload = gzip.compress(raw, compresslevel=3, mtime=0)
        atomic_write_bytes(self.path(day), payload)
        return len(payload)

    def read(self, day: dt.date) -> DayDocument | None:
        """The day's file as plain JSON data (its records are dicts), or None if absent."""
        path = self.path(day)
        if not path.exists():
            return None
        with gzip.open(path, "rb") as handle:
            return msgspec.json.decode(handle.read())

    def exists(self, day: dt.date) -> bool:
        return self.path(day).exists()

    def is_complete(self, day: dt.date) -> bool:
        """Read from the head of the file: the flag is the second key of every document we write,
        so checking years of days does not decompress and parse years of records."""
        path = self.path(day)
        if not path.exists():
            return False
        with gzip.open(path, "rb") as handle:
            head = handle.read(COMPLETE_FLAG_WITHIN)
        if match := COMPLETE_FLAG.search(head):
            return match.group(1) == b"true"
        document = self.read(day)
        return bool(document and document.get("complete"))


class LakeResource(ConfigurableResource):
    """The lake's root folder (CARBON_DATA_DIR, default ./data) and its layer folders."""

    data_dir: str

    @property
    def root(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def bronze(self) -> BronzeStore:
        return BronzeStore(self.root / "bronze")

    @property
    def silver_dir(self) -> Path:
        return self.root / "silver"

    @property
    def gold_dir(self) -> Path:
        return self.root / "gold"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"
