"""The users' path: `dagster asset materialize --select 'group:carbon_intensity'
--partition-range A...B` (every daily asset, regional and national) on a persistent PostgreSQL
instance, against the emulator, measured from outside.

    python -m bench.cli_backfill --first 2024-01-01 --last 2024-12-31 [--batch-size 0|N]
        [--out result.json]

DAGSTER_HOME is a fresh folder holding the repository's dagster.yaml (instance storage in
PostgreSQL); DAGSTER_POSTGRES_URL and CARBON_DATABASE_URL are fresh databases on the service
(dropped at the end), and the lake a fresh folder: every run is a first backfill. The emulator
answers quickly and without faults, so the numbers are the pipeline's and Dagster's, not the
API's. Reported apart:

- before RUN_START: from the command's start (Python, imports, loading the definitions,
  creating the run, one ASSET_MATERIALIZATION_PLANNED event per asset and day) to RUN_START;
- per-event cost: for each asset step, Dagster writing one ASSET_MATERIALIZATION per day after
  the IO manager returns (first materialization to HANDLED_OUTPUT, as bench.report's per-day
  events), divided by the events written; and the planned events' span divided by their count;
- the whole wall, peak resident memory (Python tree, JVM, both), and per event type the number
  of events and the mean size of each stored event (its JSON, metadata included).

DAGSTER_EVENT_BATCH_SIZE (Dagster's batched event writes) is set to --batch-size in the
command's environment (0: Dagster's default, one write per event).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from bench.emulator_process import FAST_API, EmulatorProcess, EmulatorSettings
from bench.processes import PROJECT_DIR, log_tail, run_measured
from bench.scratch_db import scratch_database
from carbon_assets.partitions import FIRST_FULL_DAY

TIMEOUT_SECONDS = 60 * 60
LOGS_DIR = Path(__file__).resolve().parent / "results" / "logs"
# The event log's names for RUN_START, RUN_SUCCESS and RUN_FAILURE.
RUN_PHASES = {"PIPELINE_START": "start", "PIPELINE_SUCCESS": "end", "PIPELINE_FAILURE": "end"}
# Runs of one range created within this many seconds of the latest were launched together.
LAUNCHED_TOGETHER_SECONDS = 30
STEP_PHASES = {
    "STEP_START": "start",
    "STEP_OUTPUT": "output",
    "ASSET_MATERIALIZATION": "first_materialization",
    "HANDLED_OUTPUT": "output_handled",
    "STEP_SUCCESS": "end",
    "STEP_FAILURE": "end",
}


def dagster_command(first: str, last: str) -> list[str]:
    dagster = str(Path(sys.executable).parent / "dagster")
    return [
        dagster, "asset", "materialize", "-m", "carbon_assets.definitions",
        "--select", "group:carbon_intensity", "--partition-range", f"{first}...{last}",
    ]  # fmt: skip


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def event_log(dagster_url: str) -> tuple[str, list[tuple[str, str | None, float, int]], dict]:
    """The backfill's runs of the daily layers (the latest range run, and the runs of the same
    range launched with it: the CLI starts one per series at once), as the latest one's id,
    their events in time order (type, step key, epoch seconds, stored JSON length), and per
    asset step the metadata entries of its first materialization event with their sizes."""
    with psycopg2.connect(plain_url(dagster_url)) as connection, connection.cursor() as cursor:
        # The dbt models run after them, unpartitioned: no range tag.
        cursor.execute(
            "SELECT r.run_id, r.create_timestamp, t.value FROM runs r"
            " JOIN run_tags t ON t.run_id = r.run_id"
            " WHERE t.key = 'dagster/asset_partition_range_start'"
            " ORDER BY r.create_timestamp DESC LIMIT 1"
        )
        run_id, created, range_start = cursor.fetchone()
        cursor.execute(
            "SELECT r.run_id FROM runs r JOIN run_tags t ON t.run_id = r.run_id"
            " WHERE t.key = 'dagster/asset_partition_range_start' AND t.value = %s"
            " AND r.create_timestamp >= %s - interval %s",
            (range_start, created, f"{LAUNCHED_TOGETHER_SECONDS} seconds"),
        )
        run_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "SELECT dagster_event_type, step_key, "
            "extract(epoch FROM timestamp AT TIME ZONE 'UTC')::float8, length(event) "
            "FROM event_logs WHERE run_id = ANY(%s) ORDER BY timestamp, id",
            (run_ids,),
        )
        events = cursor.fetchall()
        cursor.execute(
            "SELECT DISTINCT ON (step_key) step_key, event FROM event_logs "
            "WHERE run_id = ANY(%s) AND dagster_event_type = 'ASSET_MATERIALIZATION' "
            "ORDER BY step_key, id",
            (run_ids,),
        )
        metadata = {step: metadata_sizes(json.loads(event)) for step, event in cursor.fetchall()}
        return run_id, events, metadata


def metadata_sizes(event: dict) -> dict[str, int]:
    """{metadata entry: bytes of its stored JSON} of a stored materialization event."""
    found = event["dagster_event"]["event_specific_data"]["materialization"]["metadata_entries"]
    return {entry["label"]: len(json.dumps(entry)) for entry in found}


def during(events: list[tuple], moment: float) -> str:
    """The step that last started before `moment` (or "before RUN_START")."""
    started = [step for kind, step, at, _ in events if kind == "STEP_START" and at <= moment]
    if started:
        return started[-1]
    return "before RUN_START"


def analyse(events: list[tuple], started_at: float, wall_seconds: float) -> dict:
    """Time before RUN_START, per-event costs, and what the events are."""
    run: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    materializations: dict[str, int] = {}
    types: dict[str, list[int]] = {}
    planned: list[float] = []
    for kind, step, at, size in events:
        kind = kind or "LOG_MESSAGE"
        types.setdefault(kind, []).append(size)
        if kind in RUN_PHASES:  # runs side by side: from the first start to the last end
            phase = RUN_PHASES[kind]
            run[phase] = at if phase == "end" else run.get(phase, at)
        if kind == "ASSET_MATERIALIZATION_PLANNED":
            planned.append(at)
        if step and kind in STEP_PHASES:
            steps.setdefault(step, {}).setdefault(STEP_PHASES[kind], at)
        if step and kind == "ASSET_MATERIALIZATION":
            materializations[step] = materializations.get(step, 0) + 1
    events_seconds = {
        step: steps[step]["output_handled"] - steps[step]["first_materialization"]
        for step in materializations
        if {"output_handled", "first_materialization"} <= steps[step].keys()
    }
    written = sum(materializations[step] for step in events_seconds)
    planned_span = (planned[-1] - planned[0]) if len(planned) > 1 else 0.0
    return {
        "wall_seconds": round(wall_seconds, 2),
        "before_run_start_seconds": round(run["start"] - started_at, 2) if run else None,
        "run_seconds": round(run["end"] - run["start"], 2) if len(run) == 2 else None,
        "after_run_end_seconds": (
            round(started_at + wall_seconds - run["end"], 2) if "end" in run else None
        ),
        "planned_events": len(planned),
        "planned_events_seconds": round(planned_span, 2),
        "planned_event_ms": round(1000 * planned_span / len(planned), 3) if planned else None,
        "materialization_events": written,
        "materialization_events_seconds": round(sum(events_seconds.values()), 2),
        "materialization_event_ms": (
            round(1000 * sum(events_seconds.values()) / written, 3) if written else None
        ),
        "materialization_events_by_step": {
            step: {"events": materializations[step], "seconds": round(seconds, 2)}
            for step, seconds in events_seconds.items()
        },
        "step_seconds": {
            step: round(phases["end"] - phases["start"], 2)
            for step, phases in steps.items()
            if {"start", "end"} <= phases.keys()
        },
        "events_by_type": {
            kind: {"count": len(sizes), "mean_bytes": round(sum(sizes) / len(sizes))}
            for kind, sizes in sorted(types.items(), key=lambda item: -len(item[1]))
        },
    }


def backfill(
    first: str,
    last: str,
    batch_size: int,
    work_dir: Path,
    logs_dir: Path,
    extra_env: dict[str, str] | None = None,
    api: EmulatorSettings = FAST_API,
) -> dict:
    """One first backfill of first..last through the CLI, in fresh databases and lake, against
    an emulator with `api`'s settings (`extra_env`: more environment variables for the
    command, e.g. other Dagster levers)."""
    home, data_dir = work_dir / "dagster_home", work_dir / "data"
    home.mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    with (
        EmulatorProcess(api, logs_dir / "emulator.log") as emulator,
        scratch_database() as warehouse_url,
        scratch_database(prefix="carbon_bench_dagster") as dagster_url,
    ):
        variables = {
            "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": plain_url(dagster_url),
            "CARBON_DATABASE_URL": warehouse_url, "CARBON_DATA_DIR": str(data_dir),
            "CARBON_API_BASE_URL": emulator.base_url,
            "DAGSTER_EVENT_BATCH_SIZE": str(batch_size), **(extra_env or {}),
        }  # fmt: skip
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)  # run_measured passes this process's environment on
        try:
            started_at = time.time()
            measured = run_measured(
                dagster_command(first, last),
                logs_dir / f"cli_{first}_{last}_batch{batch_size}.log",
                PROJECT_DIR,
                TIMEOUT_SECONDS,
            )
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        if measured.returncode != 0:
            raise RuntimeError(f"the CLI backfill failed:\n{log_tail(measured.log)}")
        run_id, events, metadata = event_log(dagster_url)
    return {
        "first": first,
        "last": last,
        "batch_size": batch_size,
        "extra_env": extra_env or {},
        "run_id": run_id,
        **analyse(events, started_at, measured.wall_seconds),
        "materialization_metadata_bytes": metadata,
        "peak_rss_python_bytes": measured.peak_rss_python_bytes,
        "peak_rss_jvm_bytes": measured.peak_rss_jvm_bytes,
        "peak_rss_total_bytes": measured.peak_rss_total_bytes,
        "peak_rss_python_during": during(events, measured.peak_rss_python_at),
        "peak_rss_jvm_during": during(events, measured.peak_rss_jvm_at),
        "peak_rss_by_process": dict(
            sorted(measured.peak_rss_by_process.items(), key=lambda item: -item[1])[:6]
        ),
        "cpu_seconds_python": measured.cpu_seconds_python,
        "cpu_seconds_jvm": measured.cpu_seconds_jvm,
    }


def range_of(years: str, yesterday: dt.date) -> tuple[str, str]:
    """The last `years` years up to yesterday, or every day of data for "all"."""
    first = FIRST_FULL_DAY
    if years != "all":
        first = max(first, yesterday - dt.timedelta(days=round(365.25 * float(years)) - 1))
    return first.isoformat(), yesterday.isoformat()


def add_range_arguments(parser: argparse.ArgumentParser, years: str) -> None:
    """--first, --last, --years and --out, as every backfill benchmark takes them."""
    parser.add_argument("--first", help="first day (default: from --years)")
    parser.add_argument("--last", help="last day (default: yesterday, UTC)")
    parser.add_argument("--years", default=years, help='a number of years, or "all"')
    parser.add_argument("--out", type=Path, help="also write the JSON result here")


def chosen_range(args: argparse.Namespace) -> tuple[str, str]:
    """--first/--last as given, the rest from --years up to --last or yesterday (UTC)."""
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    last = dt.date.fromisoformat(args.last) if args.last else yesterday
    default_first, default_last = range_of(args.years, last)
    return args.first or default_first, default_last


def write_result(result: dict, out: Path | None) -> None:
    text = json.dumps(result, indent=1)
    if out:
        out.write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_range_arguments(parser, years="1")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the command")
    args = parser.parse_args(argv)
    first, last = chosen_range(args)
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="carbon-cli-bench-") as work:
        result = backfill(first, last, args.batch_size, Path(work), LOGS_DIR, extra_env)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
