"""How a first backfill through the users' command scales with the range: 1, 3 and 8.5 years.

    python -m bench.scaling [--years 1 3 all] [--batch-size 0] [--results-dir bench/results]

Each range ends yesterday (UTC); `all` is every day from 2018-05-11 (8.5 years in 2026).
Each is one run of bench.cli_backfill (`dagster asset materialize --select group:carbon_intensity
--partition-range`, a persistent PostgreSQL instance, fresh databases and lake, the emulator without
latency or faults). Writes scaling.md and scaling.json: wall time, time before RUN_START, the run,
Dagster's cost per event, and peak resident memory (Python tree, JVM, both at once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

from bench.cli_backfill import LOGS_DIR, backfill, range_of
from bench.report import gigabytes, secs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MEMORY_TARGET_BYTES = 3e9


def markdown(rows: list[dict], when: str, load: list[float]) -> str:
    heading = (
        "First backfill through `dagster asset materialize --select group:carbon_intensity` "
        f"on a PostgreSQL instance, {when}, "
        f"load average at the end {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}."
    )
    columns = (
        "| range | days | wall | before RUN_START | run | per materialization event "
        "| per planned event | peak Python | peak JVM | peak both | < 3 GB |"
    )
    lines = [heading, "", columns, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['first']}..{row['last']} | {row['days']:,} | {secs(row['wall_seconds'])} "
            f"| {secs(row['before_run_start_seconds'])} | {secs(row['run_seconds'])} "
            f"| {row['materialization_event_ms']:.1f} ms x {row['materialization_events']:,} "
            f"| {row['planned_event_ms']:.1f} ms x {row['planned_events']:,} "
            f"| {gigabytes(row['peak_rss_python_bytes'])} | {gigabytes(row['peak_rss_jvm_bytes'])} "
            f"| {gigabytes(row['peak_rss_total_bytes'])} "
            f"| {'yes' if row['peak_rss_total_bytes'] < MEMORY_TARGET_BYTES else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", nargs="+", default=["1", "3", "all"])
    parser.add_argument("--batch-size", type=int, default=0, help="DAGSTER_EVENT_BATCH_SIZE")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    rows = []
    for years in args.years:
        first, last = range_of(years, yesterday)
        print(f"[scaling {time.strftime('%H:%M:%S')}] {first}..{last}", flush=True)
        with tempfile.TemporaryDirectory(prefix="carbon-scaling-") as work:
            row = backfill(first, last, args.batch_size, Path(work), LOGS_DIR)
        row["days"] = (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days + 1
        rows.append(row)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = list(os.getloadavg())
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "scaling.json").write_text(json.dumps(rows, indent=1))
    text = markdown(rows, when, load)
    (args.results_dir / "scaling.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
