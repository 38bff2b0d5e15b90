"""Materialize all four assets and their checks for a partition range; meant to be killed.

    python carbon_assets_tests/faults/run_pipeline.py DATA_DIR API_BASE_URL DATABASE_URL FIRST LAST
        [--days-per-request N] [--max-concurrency N] [--select ASSET[,ASSET...]]
        [--slow-fsync-under DIR --slow-fsync-seconds S]

The test that starts this script watches the lake, the database or this script's output and
sends SIGKILL to its whole process group (Python and the Spark JVM) at the moment it wants.
--slow-fsync-under simulates a slow disk under DIR: every os.fsync of a file or folder below DIR
sleeps S seconds first (the product's code is unchanged; its atomic writes fsync the temporary
file before renaming it, so each day file of a Parquet layer then stays a .tmp- file for S
seconds and the layer's write lasts several seconds: a kill can land in its middle).

Dagster's console log (stderr) shows each event, e.g. `STEP_START - Started execution of step
"silver_carbon_intensity"`. Exit code 0 when the run succeeded, 1 when it failed.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("data_dir", "api_base_url", "database_url", "first", "last"):
        parser.add_argument(name)
    parser.add_argument("--days-per-request", type=int, default=13)
    parser.add_argument("--max-concurrency", type=int, default=2)
    parser.add_argument(
        "--select", default=None, help="asset names (with their checks); default all"
    )
    parser.add_argument("--slow-fsync-under", default=None)
    parser.add_argument("--slow-fsync-seconds", type=float, default=0.5)
    args = parser.parse_args()
    if args.slow_fsync_under:
        slow_down_fsync(args.slow_fsync_under, args.slow_fsync_seconds)

    from dagster import AssetSelection, DagsterInstance, materialize

    from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources

    selection = AssetSelection.assets(*args.select.split(",")) if args.select else None
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=selection,
        resources=build_resources(
            data_dir=args.data_dir,
            api_base_url=args.api_base_url,
            database_url=args.database_url,
            days_per_request=args.days_per_request,
            max_concurrency=args.max_concurrency,
            backoff_base_seconds=0.01,
            backoff_max_seconds=0.05,
        ),
        instance=DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": args.first,
            "dagster/asset_partition_range_end": args.last,
        },
        raise_on_error=False,
    )
    print(f"RESULT {'success' if result.success else 'failure'}", flush=True)
    return 0 if result.success else 1


def slow_down_fsync(under: str, seconds: float) -> None:
    """Make os.fsync sleep `seconds` before syncing any file or folder below `under`."""
    import os
    import time

    root = os.path.realpath(under) + os.sep
    real_fsync = os.fsync

    def slow_fsync(fd) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}")
        except OSError:
            path = ""
        if (path + os.sep).startswith(root):
            time.sleep(seconds)
        real_fsync(fd)

    os.fsync = slow_fsync


if __name__ == "__main__":
    sys.exit(main())
