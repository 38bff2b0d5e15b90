"""The README's CLI backfill with the lake on a local S3 server next to the lake on local disk,
or the local-disk backfill of two checkouts of the code, run alternately.

    python -m bench.object_store --years 3 --api slow [--rounds 2] [--out r.json]
    python -m bench.object_store --years 1 --api fast --before DIR [--code-dir DIR] [--rerun]
    python -m bench.object_store --years 0.5 --api fast --local-only --rerun --increment --daily

Each run is `.venv/bin/carbon-assets backfill FIRST LAST` started in the code's folder (the
project folder unless --code-dir names another checkout), measured from outside by
bench.processes.run_measured, with a fresh warehouse database, Dagster instance database,
DAGSTER_HOME and data folder on the PostgreSQL service, and its own emulator (bench.side_by_side's
API profiles). Every run is a first backfill. Per run: the wall time, the Dagster steps' times
and the Dagster bookkeeping (bench.cli_backfill.analyse over the run's event log), the API's
requests, peak memory of the command's process tree, the load average before and after (the
machine may be shared), and the summary the command prints (days and rows per layer).

- Lakes (default): "local", the lake in CARBON_DATA_DIR; "s3", CARBON_LAKE_URL=s3://BUCKET/lake
  on moto's server (the tests' carbon_assets_tests/s3_server.py: a process on loopback, one
  fresh server per run, its own peak memory sampled too), through the standard AWS variables.
  The S3 run also records the objects the bucket holds and the files written in the data folder.
- Code (--before DIR): the local-disk run of the checkout DIR (e.g. a `git worktree` of an older
  commit) against the one of --code-dir. Another checkout is run with PYTHONPATH naming it,
  which wins over the project's editable install; the run checks that `import carbon_assets`
  resolves there before it starts.

Runs alternate (local, s3, local, s3...) so that a noisy machine weighs on both sides alike.
With --rerun, each backfill is followed by the same command on the same stores (nothing new to
fetch): its wall time, steps and requests are the run's "rerun"; with --increment, then by the
backfill of the day after the range alone (the one-day increment), the run's "increment";
with --daily, then by the run the daily schedule asks for (the daily_refresh job over the
last day of the range and the two after it, one of them new), launched at once with `dg
launch`, the run's "daily".
--local-only runs the local-disk side alone (with --before, the --code-dir side): `make bench`
measures the re-run of six months with nothing new, the day after and the daily run so. With
any follow-up the range ends, unless --last says otherwise, before the days the daily schedule
still refetches (CARBON_SETTLE_DAYS), so that the re-run has nothing new to fetch.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from bench import processes
from bench.cli_backfill import (
    LOGS_DIR,
    TIMEOUT_SECONDS,
    add_range_arguments,
    analyse,
    chosen_range,
    during,
    event_log,
    plain_url,
    write_result,
)
from bench.emulator_process import APIS, EmulatorProcess
from bench.processes import PROJECT_DIR, PeakRssSampler, log_tail, run_measured
from bench.scratch_db import scratch_database
from carbon_assets.settings import DEFAULT_SETTLE_DAYS
from carbon_assets_tests.s3_server import S3Server, start_s3_server

BUCKET = "lake"  # and a random suffix
# Variables of the benchmark's own environment that must not reach a run: each run names its
# lake, databases and instance itself, and PYTHONPATH chooses the code.
CLEARED_PREFIXES = ("CARBON_", "DAGSTER_", "AWS_")
STEPS = {
    "bronze": ("bronze_carbon_intensity",),
    "silver": ("silver_carbon_intensity",),
    "gold": ("gold_carbon_intensity_daily",),
    "loads": ("carbon_intensity_halfhourly", "carbon_intensity_daily"),
    # The national series' five steps (none before it was added).
    "national": (
        "bronze_national_intensity",
        "silver_national_intensity",
        "gold_national_daily",
        "carbon_intensity_national_halfhourly",
        "carbon_intensity_national_daily",
    ),
}
# Lines of the command's summary: "  silver rows        945,216".
SUMMARY_LINE = r"^  ([a-z -]+?)\s{2,}([0-9,]+)"


def bucket_contents(server: S3Server, bucket: str) -> dict[str, dict[str, int]]:
    """{top-level folder of the lake: {"objects", "bytes"}} of what the bucket holds."""
    found: dict[str, dict[str, int]] = {}
    for page in server.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            parts = item["Key"].split("/")
            layer = parts[1] if len(parts) > 2 else "/".join(parts[1:])
            entry = found.setdefault(layer, {"objects": 0, "bytes": 0})
            entry["objects"] += 1
            entry["bytes"] += item["Size"]
    return dict(sorted(found.items()))


def local_files(data_dir: Path) -> dict[str, int]:
    """{top-level entry of the data folder: files under it} (where a run wrote locally)."""
    if not data_dir.is_dir():
        return {}
    return {
        entry.name: sum(1 for path in entry.rglob("*") if path.is_file()) if entry.is_dir() else 1
        for entry in sorted(data_dir.iterdir())
    }


def resolved_package(code_dir: Path) -> Path:
    """Where `import carbon_assets` resolves for a run of `code_dir` (its folder)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(code_dir)}
    found = subprocess.run(
        [sys.executable, "-c", "import carbon_assets; print(carbon_assets.__file__)"],
        cwd=code_dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(found.stdout.strip()).parent


def step_groups(step_seconds: dict[str, float]) -> dict[str, float | None]:
    """bronze, silver, gold, loads (both warehouse tables), national (its five steps) and
    checks (every check step)."""
    grouped: dict[str, float | None] = {}
    for name, steps in STEPS.items():
        found = [step_seconds.get(step) for step in steps]
        grouped[name] = round(sum(found), 2) if None not in found else None
    checks = [seconds for step, seconds in step_seconds.items() if step.endswith("_checks")]
    grouped["checks"] = round(sum(checks), 2)
    return grouped


def summary_rows(log: str) -> dict[str, int]:
    """The command's summary: {"silver rows": 945216, ...}."""
    text = Path(log).read_text(errors="replace")
    return {
        name: int(value.replace(",", ""))
        for name, value in re.findall(SUMMARY_LINE, text, re.MULTILINE)
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def one_backfill(
    first: str,
    last: str,
    api: str,
    lake: str,
    code_dir: Path,
    work_dir: Path,
    label: str,
    follow_ups: dict[str, list[str]] | None = None,
) -> dict:
    """One first backfill of first..last through `carbon-assets backfill` run in `code_dir`,
    the lake "local" (in the data folder) or "s3" (on a fresh moto server); then each of
    `follow_ups` (name: command) in order on the same lake, warehouse and instance, measured
    alike."""
    follow_ups = follow_ups or {}
    home, data_dir = work_dir / "dagster_home", work_dir / "data"
    logs = LOGS_DIR / "object_store"
    command = backfill_command(first, last)
    load_before = load_average()
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(EmulatorProcess(APIS[api], logs / f"emulator_{label}.log"))
        warehouse_url = stack.enter_context(scratch_database())
        dagster_url = stack.enter_context(scratch_database(prefix="carbon_bench_dagster"))
        variables = {
            "DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": plain_url(dagster_url),
            "CARBON_DATABASE_URL": warehouse_url, "CARBON_DATA_DIR": str(data_dir),
            "CARBON_API_BASE_URL": emulator.base_url,
            # What the CLI sets when unset, for the follow-ups that run dg directly too.
            "DAGSTER_EVENT_BATCH_SIZE": "100",
        }  # fmt: skip
        moto_sampler = server = bucket = None
        if (
            lake == "s3"
        ):  # a fresh server per run: the tests' own (carbon_assets_tests/s3_server.py)
            server = stack.enter_context(start_s3_server())
            bucket = server.create_bucket(BUCKET)
            variables |= server.env | {"CARBON_LAKE_URL": f"s3://{bucket}/lake"}
            moto_sampler = PeakRssSampler(server.pid)
            moto_sampler.start()
        saved = dict(os.environ)
        for name in list(os.environ):
            if name.startswith(CLEARED_PREFIXES) or name == "PYTHONPATH":
                del os.environ[name]
        os.environ.update(variables)  # run_measured passes this process's environment on
        later: dict[str, dict] = {}
        first_run = None
        try:
            # bench_env puts the project folder first on PYTHONPATH: here, the code's folder.
            with mock.patch.object(processes, "PROJECT_DIR", code_dir):
                started_at = time.time()
                measured = run_measured(
                    command, logs / f"cli_{label}.log", code_dir, TIMEOUT_SECONDS
                )
                if measured.returncode == 0:
                    # The first run's events, before a later run's become the latest.
                    first_run = event_log(dagster_url)
                    for name, later_command in follow_ups.items():
                        later[name] = follow_up(
                            name, later_command, emulator, dagster_url, code_dir,
                            logs / f"cli_{label}_{name}.log",
                        )  # fmt: skip
        finally:
            os.environ.clear()
            os.environ.update(saved)
            if moto_sampler is not None:
                moto_sampler.stop()
        for run_log in (data_dir / "logs").glob("*.log"):  # the temporary folder goes
            shutil.copy(run_log, logs / f"run_{label}.log")
        if measured.returncode != 0:
            raise RuntimeError(f"the CLI backfill failed:\n{log_tail(measured.log)}")
        api_stats = emulator.stats()
        run_id, events, _ = first_run or event_log(dagster_url)
        objects = bucket_contents(server, bucket) if server else None
    result = analyse(events, started_at, measured.wall_seconds)
    return {
        "label": label,
        "lake": lake,
        "code_dir": str(code_dir),
        "first": first,
        "last": last,
        "api": api,
        "started": dt.datetime.fromtimestamp(started_at, dt.UTC).isoformat(timespec="seconds"),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "wall_seconds": result["wall_seconds"],
        "steps_seconds": step_groups(result["step_seconds"]),
        "api_requests": api_stats.get("requests_total")
        - sum(run["api_requests"] for run in later.values()),
        "api_by_status": api_stats.get("by_status"),
        "peak_rss_python_bytes": measured.peak_rss_python_bytes,
        "peak_rss_jvm_bytes": measured.peak_rss_jvm_bytes,
        "peak_rss_total_bytes": measured.peak_rss_total_bytes,
        "peak_rss_python_during": during(events, measured.peak_rss_python_at),
        "peak_rss_moto_bytes": moto_sampler.peak_total if moto_sampler else None,
        "cpu_seconds_python": measured.cpu_seconds_python,
        "cpu_seconds_jvm": measured.cpu_seconds_jvm,
        "summary": summary_rows(measured.log),
        **{name: later.get(name) for name in follow_ups},
        "bucket": objects,
        "data_dir_files": local_files(data_dir),
        "run_id": run_id,
        "analysis": result,
    }


def backfill_command(first: str, last: str) -> list[str]:
    """The README's `carbon-assets backfill FIRST LAST`."""
    return [str(Path(sys.executable).parent / "carbon-assets"), "backfill", first, last]


def daily_refresh_command(first: str, last: str) -> list[str]:
    """The run the daily schedule asks for (the daily_refresh job over the settle window),
    launched at once by `dg launch` rather than by the daemon's next tick."""
    dg = str(Path(sys.executable).parent / "dg")
    return [dg, "launch", "--job", "daily_refresh", "--partition-range", f"{first}...{last}"]


def follow_up(
    name: str,
    command: list[str],
    emulator: EmulatorProcess,
    dagster_url: str,
    code_dir: Path,
    log: Path,
) -> dict:
    """`command` run once more on the stores of a first backfill: its wall time, steps and
    requests."""
    requests_before = emulator.stats().get("requests_total")
    started_at = time.time()
    measured = run_measured(command, log, code_dir, TIMEOUT_SECONDS)
    if measured.returncode != 0:
        raise RuntimeError(f"the {name} failed:\n{log_tail(measured.log)}")
    _, events, _ = event_log(dagster_url)
    result = analyse(events, started_at, measured.wall_seconds)
    return {
        "command": shlex.join([Path(command[0]).name, *command[1:]]),
        "wall_seconds": result["wall_seconds"],
        "before_run_start_seconds": result["before_run_start_seconds"],
        "steps_seconds": step_groups(result["step_seconds"]),
        "api_requests": emulator.stats().get("requests_total") - requests_before,
        "summary": summary_rows(measured.log),
    }


def compare(runs: list[dict], key: str, numerator: str, denominator: str) -> dict:
    """Best and mean wall time per side, and numerator / denominator of each."""
    sides: dict[str, list[float]] = {}
    for run in runs:
        sides.setdefault(run[key], []).append(run["wall_seconds"])
    best = {side: min(walls) for side, walls in sides.items()}
    mean = {side: round(sum(walls) / len(walls), 2) for side, walls in sides.items()}
    ratio = {}
    if numerator in sides and denominator in sides:
        ratio = {
            "best": round(best[numerator] / best[denominator], 3),
            "mean": round(mean[numerator] / mean[denominator], 3),
        }
    return {
        "walls": sides,
        "best": best,
        "mean": mean,
        f"ratio_{numerator}_to_{denominator}": ratio,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_range_arguments(parser, years="1")
    parser.add_argument("--api", choices=sorted(APIS), default="slow")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side, alternately")
    parser.add_argument("--code-dir", type=Path, default=PROJECT_DIR, help="the code to run")
    parser.add_argument(
        "--before", type=Path, help="compare local-disk runs of this checkout with --code-dir's"
    )
    parser.add_argument(
        "--rerun", action="store_true", help="then run the same backfill again, measured alike"
    )
    parser.add_argument(
        "--increment",
        action="store_true",
        help="then back fill the day after the range alone (the one-day increment), measured alike",
    )
    parser.add_argument(
        "--daily",
        action="store_true",
        help="then the daily schedule's run over the next settle window, measured alike",
    )
    parser.add_argument(
        "--local-only", action="store_true", help="only the lake on local disk (no comparison)"
    )
    args = parser.parse_args(argv)
    if (args.rerun or args.increment or args.daily) and not args.last:
        # Days the daily schedule no longer refetches, the day after included: a re-run then
        # has nothing new to fetch, and the increment fetches one day of its own.
        today = dt.datetime.now(dt.UTC).date()
        args.last = str(today - dt.timedelta(days=DEFAULT_SETTLE_DAYS + 2))
    first, last = chosen_range(args)
    follow_ups = {"rerun": backfill_command(first, last)} if args.rerun else {}
    day_after = dt.date.fromisoformat(last) + dt.timedelta(days=1)
    if args.increment:
        follow_ups["increment"] = backfill_command(str(day_after), str(day_after))
    if args.daily:
        # A tick's settle window: the last day of the range, the day after (fetched by
        # --increment, if given) and one more, new.
        follow_ups["daily"] = daily_refresh_command(last, str(day_after + dt.timedelta(days=1)))
    code_dir = args.code_dir.resolve()
    if args.before:
        sides = [("before", "local", args.before.resolve()), ("after", "local", code_dir)]
    else:
        sides = [("local", "local", code_dir), ("s3", "s3", code_dir)]
    if args.local_only:
        sides = sides[-1:] if args.before else sides[:1]
    for _, _, folder in sides:
        if (package := resolved_package(folder)) != folder / "carbon_assets":
            raise RuntimeError(f"carbon_assets of {folder} resolves to {package}")
    runs = []
    for round_number in range(1, args.rounds + 1):
        for side, lake, folder in sides:
            label = f"{side}_{first}_{last}_{round_number}"
            with tempfile.TemporaryDirectory(prefix="carbon-object-store-bench-") as work:
                run = one_backfill(
                    first, last, args.api, lake, folder, Path(work), label, follow_ups
                )
            run["side"] = side
            print(
                f"{label}: {run['wall_seconds']} s, steps {run['steps_seconds']}, "
                f"load {run['load_average_before']}, "
                + ", ".join(f"{name} {run[name]}" for name in follow_ups),
                file=sys.stderr,
                flush=True,
            )
            runs.append(run)
    numerator, denominator = ("after", "before") if args.before else ("s3", "local")
    result = {
        "first": first,
        "last": last,
        "api": args.api,
        "machine": {"nproc": os.cpu_count(), "platform": sys.platform},
        "comparison": None if args.local_only else compare(runs, "side", numerator, denominator),
        "runs": runs,
    }
    write_result(result, args.out)


if __name__ == "__main__":
    main()
