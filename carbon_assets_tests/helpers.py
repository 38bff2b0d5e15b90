"""What the tests share: runs over a partition range, fast API options,
bronze day files from the real recorded 2019 response, synthetic gold rows, filesystems that
fill up or cannot hold ACLs."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from dagster import DagsterInstance, materialize

from bench import bench_warehouse_load
from carbon_assets.automation import range_tags
from carbon_assets.bronze.day_files import build_document
from carbon_assets.bronze.records import Period
from carbon_assets.bronze.store import BronzeStore
from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
# Retries without the production backoff, so fault tests take seconds.
FAST_API = {
    "backoff_base_seconds": 0.01,
    "empty_backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
}
CENT = Decimal("0.01")


# --- runs --------------------------------------------------------------------------------


def materialize_range(
    resources, first: str, last: str, selection=None, run_config=None, raise_on_error=False
):
    """All the assets and their checks (or `selection`) for first..last, in this process."""
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources=resources,
        selection=selection,
        instance=DagsterInstance.ephemeral(),
        tags=range_tags(first, last),
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


# --- bronze day files --------------------------------------------------------------------

REAL_2019 = FIXTURES / "regional_intensity_2019-08-25T1230Z_to_2019-08-26T1230Z_48periods.json"
FETCHED_AT = "2024-01-01T00:00:00+00:00"


def real_periods() -> list[dict]:
    """The real 2019 response: 48 periods from 2019-08-25T12:30Z (24 of them start on the 25th)."""
    return json.loads(REAL_2019.read_text())["data"]


def source(records: list[dict], fetched_at: str | None = FETCHED_AT) -> dict:
    return {
        "url": "test",
        "status": 200,
        "attempts": 1,
        "fetched_at": fetched_at,
        "data": [Period.from_record(record) for record in records],
    }


def write_days(tmp_path: Path, periods: list[dict], fetched_at: str = FETCHED_AT) -> list[str]:
    """Bronze day files from API period records, split by the UTC date of their start."""
    store = BronzeStore(tmp_path / "bronze")
    by_day: dict[str, list] = {}
    for period in periods:
        by_day.setdefault(period["from"][:10], []).append(period)
    paths = []
    for day, records in sorted(by_day.items()):
        store.write(build_document(dt.date.fromisoformat(day), [source(records, fetched_at)]))
        paths.append(str(store.path(dt.date.fromisoformat(day))))
    return paths


def dated(bronze_paths: list[str]) -> dict[str, str]:
    """{date: bronze day file} of the paths write_days returns (as bronze's IO manager gives)."""
    return {Path(path).name.removesuffix(".json.gz"): path for path in bronze_paths}


# --- gold rows ---------------------------------------------------------------------------

# One generator of gold rows for the warehouse tests and the load benchmark; it lives with the
# benchmark, which must not import from the tests.
synthetic_gold_rows = bench_warehouse_load.synthetic_gold_rows


# --- filesystems mounted for a test -----------------------------------------------------


@contextlib.contextmanager
def mounted(folder: Path, fstype: str, options: str) -> Iterator[Path]:
    """A fresh filesystem of `fstype` mounted at `folder` (created if missing; what it held is
    hidden meanwhile), unmounted afterwards. Skips the calling test (with the reason) when this
    process may not mount one."""
    import pytest

    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        pytest.skip(f"mounting a {fstype} needs root and mount(8)")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mount, "-t", fstype, "-o", options, f"carbon-test-{fstype}", str(folder)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a {fstype} here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run([umount, str(folder)], check=True)


def small_filesystem(folder: Path, size_bytes: int):
    """A tmpfs of `size_bytes` at `folder`: a real filesystem that runs out of space."""
    return mounted(folder, "tmpfs", f"size={size_bytes},mode=0755")


def filesystem_without_acls(folder: Path):
    """A ramfs at `folder`, mode 0700: a real filesystem that cannot hold POSIX ACLs."""
    return mounted(folder, "ramfs", "mode=0700")


def pages(size: int, page: int = 4096) -> int:
    """Bytes a file of `size` bytes takes on a tmpfs (whole pages)."""
    return -(-size // page) * page
