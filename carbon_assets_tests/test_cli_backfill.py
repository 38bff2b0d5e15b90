"""`carbon-assets backfill FIRST LAST` from a fresh environment, as the README prints it.

No DAGSTER_POSTGRES_URL or CARBON_DATABASE_URL, a data directory and DAGSTER_HOME of its own,
the emulator as the API: the command starts the embedded PostgreSQL, runs `dg launch` and
prints a line per step and the summary, with no traceback and none of Dagster's superseded-
command or beta notices on screen.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_assets.cli import dagster_commands
from carbon_assets_tests.postgres_helpers import discard_server, server_data_dir

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
FIRST, LAST = "2024-01-01", "2024-01-03"


@pytest.fixture
def fresh_environment(emulator, tmp_path):
    """The environment of a new clone: nothing of this project's set, the emulator as API."""
    data_dir = server_data_dir("carbon-test-backfill-") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    env.pop("VIRTUAL_ENV", None)  # as when started by path (make, .venv/bin/carbon-assets)
    env.update(
        CARBON_DATA_DIR=str(data_dir),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        CARBON_API_BASE_URL=emulator.base_url,
        CARBON_SPARK_MASTER="local[2]",
    )
    try:
        yield env, data_dir
    finally:
        discard_server(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def backfill(env: dict[str, str], first: str, last: str) -> subprocess.CompletedProcess:
    """The README's `carbon-assets backfill FIRST LAST`, run in the project folder."""
    return subprocess.run(
        [sys.executable, "-m", "carbon_assets.cli", "backfill", first, last],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_backfill_runs_every_asset_and_prints_a_summary(fresh_environment):
    env, data_dir = fresh_environment
    result = backfill(env, FIRST, LAST)
    screen = result.stdout + result.stderr
    log = data_dir / "logs" / f"backfill_{FIRST}_{LAST}.log"
    assert result.returncode == 0, screen + (log.read_text() if log.exists() else "")
    for noise in ("Traceback", "SupersessionWarning", "BetaWarning", "will not be used"):
        assert noise not in screen, screen
        assert noise not in log.read_text(), noise
    # The whole range and the dbt models after it, in one run.
    assert log.read_text().count(" - RUN_START - ") == 1
    assert (
        "Running:        dg launch --assets 'group:carbon_intensity or group:analytics'"
        " --partition-range 2024-01-01...2024-01-03" in screen
    )
    steps = ("bronze_carbon_intensity", "silver_carbon_intensity", "carbon_intensity_daily")
    for step in (*steps, "analytics_models"):
        assert re.search(rf"^\s+[0-9.]+s  {step} done", screen, re.MULTILINE), screen
    assert screen.index("carbon_intensity_daily done") < screen.index("analytics_models ...")
    assert "dbt build" in log.read_text()
    rows = dict(re.findall(r"^  ([a-z -]+?)\s{2,}([0-9,]+)", result.stdout, re.MULTILINE))
    assert rows["days in range"] == "3" and rows["bronze complete days"] == "3", screen
    assert rows["silver rows"] == rows["warehouse half-hour rows"] == f"{3 * 48 * 18:,}"
    assert rows["gold rows"] == rows["warehouse daily rows"] == f"{3 * 18:,}"
    assert re.search(r"checks\s+(\d+)  \(\1 passed, 0 did not pass\)", result.stdout), screen

    # Again, with nothing new: every layer says so, and the models are not built again.
    lake_files = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*.parquet")}
    again = backfill(env, FIRST, LAST)
    screen = again.stdout + again.stderr
    assert again.returncode == 0, screen + log.read_text()
    assert "analytics_models not built: the models are current" in screen
    assert log.read_text().count(" - RUN_START - ") == 1
    assert "dbt build" not in log.read_text()
    assert log.read_text().count("3 of 3 day(s) left as they were") == 4  # silver, gold (x2)
    assert log.read_text().count("was loaded from this same input: left as it is") == 4
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*.parquet")} == lake_files
    summary = dict(re.findall(r"^  ([a-z -]+?)\s{2,}([0-9,]+)", again.stdout, re.MULTILINE))
    counted = [name for name in rows if name.strip() and name != "checks"]  # not step lines
    assert {name: summary.get(name) for name in counted} == {name: rows[name] for name in counted}
    assert "silver_carbon_intensity done in" in screen


def test_a_year_backfills_as_a_run_per_series_side_by_side(fresh_environment):
    env, data_dir = fresh_environment
    first, last = "2023-01-01", "2024-01-01"  # 366 days: SIDE_BY_SIDE_MIN_DAYS
    result = backfill(env, first, last)
    screen = result.stdout + result.stderr
    log = (data_dir / "logs" / f"backfill_{first}_{last}.log").read_text()
    assert result.returncode == 0, screen + log[-5000:]
    assert log.count(" - RUN_START - ") == 3  # the two series side by side, then the models
    assert "Running:        dg launch --assets group:analytics\n" in screen
    for series in dagster_commands.SERIES:
        assert f"Running:        dg launch --assets '{series}' --partition-range" in screen
    assert screen.index("bronze_carbon_intensity ...") < screen.index("bronze_national_intensity")
    rows = dict(re.findall(r"^  ([a-z -]+?)\s{2,}([0-9,]+)", result.stdout, re.MULTILINE))
    assert rows["bronze complete days"] == rows["national settled days"] == "366", screen
    assert rows["warehouse half-hour rows"] == f"{366 * 48 * 18:,}"
    assert rows["national half-hour rows"] == rows["national actuals"] == f"{366 * 48:,}"
    assert re.search(r"checks\s+(\d+)  \(\1 passed, 0 did not pass\)", result.stdout), screen


def test_a_range_that_is_not_one_is_refused_in_one_line(capsys):
    from carbon_assets import cli

    assert cli.main(["backfill", LAST, FIRST]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"backfill failed: LAST ({FIRST}) is before FIRST ({LAST})"
    assert cli.main(["backfill", "2010-01-01", LAST]) == 2
    assert "is not a partition of these assets" in capsys.readouterr().err


def test_the_runs_of_a_month_a_longer_range_and_a_year():
    first = dt.date(2024, 1, 1)

    def stages(days):
        return dagster_commands.backfill_commands(first, first + dt.timedelta(days=days - 1))

    month, longer, year = stages(31), stages(365), stages(366)
    assert [len(stage) for stage in month] == [1]  # the days and then the models, one run
    assert [command[3] for command in month[0]] == ["group:carbon_intensity or group:analytics"]
    assert [len(stage) for stage in stages(32)] == [len(stage) for stage in longer] == [1, 1]
    assert [command[3] for command in longer[0]] == ["group:carbon_intensity"]
    assert [len(stage) for stage in year] == [2, 1]
    assert [command[3] for command in year[0]] == list(dagster_commands.SERIES)
    assert year[1] == longer[1] == [dagster_commands.analytics_command()]


def test_the_series_split_covers_every_daily_asset_once():
    from dagster import AssetSelection

    from carbon_assets.definitions import ALL_ASSETS, defs

    graph = defs.resolve_asset_graph()
    chosen = [AssetSelection.from_string(s).resolve(graph) for s in dagster_commands.SERIES]
    keys = {key for asset in ALL_ASSETS for key in asset.keys}
    regional, national = chosen
    assert regional | national == keys and not regional & national
    assert all("national" in key.to_user_string() for key in national)
    assert not any("national" in key.to_user_string() for key in regional)


def test_a_step_line_for_each_step_and_the_checks_counted():
    progress = dagster_commands.RunProgress(started=0)
    prefix = "2024-01-01 00:00:00 +0000 - dagster - DEBUG - __ASSET_JOB - run - 1 - "
    lines = [
        prefix + 'silver - STEP_START - Started execution of step "silver".',
        prefix + 'silver - STEP_SUCCESS - Finished execution of step "silver" in 1m13s.',
        prefix + "checks - ASSET_CHECK_EVALUATION - Asset check 'a' on 'silver' passed.",
        prefix + "checks - ASSET_CHECK_EVALUATION - Asset check 'b' on 'silver' did not pass.",
        "2024-01-01 00:00:00 +0000 - dagster - INFO - __ASSET_JOB - run - silver - Loaded 3 days",
        "2024-01-01 00:00:00 +0000 - dagster - INFO - __ASSET_JOB - run - dbt - Not built: current",
    ]
    shown = [progress.line_for(line) for line in lines]
    assert [line and line.split("s  ", 1)[1] for line in shown] == [
        "silver ...",
        "silver done in 1m13s",
        None,
        "check did not pass: silver: b",
        None,
        "dbt not built: current",
    ]
    assert (progress.checks_passed, progress.checks_failed) == (["silver: a"], ["silver: b"])


def test_dg_runs_quietly_in_this_environment():
    env = dagster_commands.dg_environment({"PYTHONWARNINGS": "error::ResourceWarning"})
    assert env["VIRTUAL_ENV"] == sys.prefix
    assert env["PYTHONWARNINGS"].startswith("error::ResourceWarning,ignore:Parameter")
    assert dagster_commands.dev_command("127.0.0.1", 3001)[1:] == [
        *("dev", "-w", str(Path.cwd() / "workspace.yaml"), "--host", "127.0.0.1"),
        *("--port", "3001"),
    ]


def test_a_failed_step_is_shown_with_its_cause_and_the_closing_line_uses_it(tmp_path):
    progress = dagster_commands.RunProgress(started=0)
    prefix = "2024-01-01 00:00:00 +0000 - dagster - ERROR - __ASSET_JOB - run - 1 - "
    cause = "The lake /data holds data from http://a/ but this run fetches from http://b/; " * 7
    lines = [
        prefix + 'bronze - STEP_FAILURE - Execution of step "bronze" failed.',
        "",
        f"dagster._core.definitions.events.Failure: {cause}",
        "",
        "Stack Trace:",
        '  File "x.py", line 1, in bronze',
        prefix
        + "RUN_FAILURE - Execution of run for \"__ASSET_JOB\" failed. Steps failed: ['bronze'].",
        f"dagster._core.definitions.events.Failure: {cause}",
    ]
    shown = [line for line in map(progress.line_for, lines) if line]
    expected = f"bronze failed: {cause[: dagster_commands.MAX_SHOWN_ERROR]}"
    assert len(expected) > 300
    assert [line.split("s  ", 1)[1] for line in shown] == [expected, "run failed"]
    assert dagster_commands.failure_line(progress, tmp_path / "run.log") == expected
    assert progress.finish() is None


def test_a_cause_that_lists_its_days_shows_the_first_and_how_many_more():
    """Bronze's lost days come as a line ending in ":" and one indented line a day: the screen
    gets the first day's cause (a DNS failure, say), not a sentence that stops at the colon."""
    progress = dagster_commands.RunProgress(started=0)
    prefix = "2024-01-01 00:00:00 +0000 - dagster - ERROR - __ASSET_JOB - run - 1 - "
    lines = [
        prefix + 'bronze - STEP_FAILURE - Execution of step "bronze" failed.',
        "",
        (
            "dagster._core.definitions.events.Failure: 3 day(s) could not be fetched; no day was"
            " stored. Re-run the same range to fetch only these:"
        ),
        "  2024-01-01: dns: the host api.example could not be resolved",
        "  2024-01-02: dns: the host api.example could not be resolved",
        "  2024-01-03: dns: the host api.example could not be resolved",
        "",
        "Stack Trace:",
    ]
    shown = [line for line in map(progress.line_for, lines) if line]
    assert [line.split("s  ", 1)[1] for line in shown] == [
        (
            "bronze failed: 3 day(s) could not be fetched; no day was stored. Re-run the same range"
            " to fetch only these: 2024-01-01: dns: the host api.example could not be resolved"
            " (and 2 more)"
        )
    ]
    assert progress.finish() is None


def test_a_step_failing_in_its_own_process_is_named_from_the_run_failure():
    progress = dagster_commands.RunProgress(started=0)
    prefix = "2024-01-01 00:00:00 +0000 - dagster - ERROR - __ASSET_JOB - run - 1 - "
    lines = [
        prefix
        + "RUN_FAILURE - Execution of run for \"__ASSET_JOB\" failed. Steps failed: ['gold'].",
        "",
        (
            "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while"
            ' executing op "gold":'
        ),
        "Stack Trace:",
        "The above exception was caused by the following exception:",
        "ValueError: gold has no silver rows for 2024-01-02",
    ]
    shown = [line for line in map(progress.line_for, lines) if line]
    assert [line.split("s  ", 1)[1] for line in shown] == [
        "gold failed: gold has no silver rows for 2024-01-02"
    ]


def test_without_a_failed_step_the_closing_line_is_the_logs_last_error(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("2024 - dagster - DEBUG - x\nError: could not load carbon_assets.definitions\n")
    progress = dagster_commands.RunProgress(started=0)
    assert dagster_commands.failure_line(progress, log) == (
        "Error: could not load carbon_assets.definitions"
    )


def _step_command(
    step: str, meets: Path, leaves: Path, exit_code: int = 0, finds: Path | None = None
) -> list[str]:
    """A command that leaves `leaves`, prints a step's start, waits (up to 60 s) for `meets` to
    exist, prints the step's end and exits with `exit_code`; with `finds`, it exits with 4 at
    once unless that file exists when it starts."""
    prefix = "2024-01-01 00:00:00 +0000 - dagster - DEBUG - __ASSET_JOB - run - 1 - "
    end = (
        f'STEP_SUCCESS - Finished execution of step "{step}".'
        if exit_code == 0
        else f'STEP_FAILURE - Execution of step "{step}" failed.'
    )
    script = (
        "import pathlib, sys, time\n"
        + (f"if not pathlib.Path({str(finds)!r}).exists(): sys.exit(4)\n" if finds else "")
        + f"pathlib.Path({str(leaves)!r}).touch()\n"
        f"print({prefix!r} + '{step} - STEP_START - Started execution of step \"{step}\".')\n"
        "sys.stdout.flush()\n"
        "deadline = time.monotonic() + 60\n"
        f"while not pathlib.Path({str(meets)!r}).exists():\n"
        "    if time.monotonic() > deadline: sys.exit(3)\n"
        "    time.sleep(0.05)\n"
        f"print({prefix!r} + {f'{step} - {end}'!r})\n"
        + ("print('Failure: the API is down')\n" if exit_code else "")
        + f"sys.exit({exit_code})\n"
    )
    return [sys.executable, "-c", script]


def test_the_commands_of_a_stage_run_side_by_side_and_a_failed_stage_ends_the_backfill(
    tmp_path, capsys
):
    # Each of the first stage's commands waits for the other's file, so they end only together;
    # the second starts only once the first has begun its step (it finds the first's file).
    regional, national, models = (tmp_path / name for name in ("regional", "national", "models"))
    first = _step_command("bronze_carbon_intensity", meets=national, leaves=regional)
    second = _step_command(
        "bronze_national_intensity", meets=regional, leaves=national, exit_code=1, finds=regional
    )
    stages = [[first, second], [_step_command("dbt_models", meets=models, leaves=models)]]
    log = tmp_path / "backfill.log"
    returncode, progress = dagster_commands.run_with_progress(stages, dict(os.environ), log)
    screen = capsys.readouterr().out
    assert returncode == 1, screen
    assert "bronze_carbon_intensity done" in screen and "bronze_carbon_intensity ..." in screen
    assert "bronze_national_intensity failed: the API is down" in screen, screen
    assert progress.failure == "bronze_national_intensity failed: the API is down"
    assert progress.failed_steps == ["bronze_national_intensity"]
    assert not models.exists()  # the stage after a failed one is not run
    written = log.read_text()
    assert written.count("STEP_START") == 2 and "Failure: the API is down" in written


def test_a_command_that_fails_before_its_first_step_leaves_the_rest_of_its_stage_unstarted(
    tmp_path, capsys
):
    never = tmp_path / "never"
    failing = [sys.executable, "-c", "import sys; print('no definitions'); sys.exit(2)"]
    stages = [[failing, _step_command("bronze_national_intensity", meets=never, leaves=never)]]
    log = tmp_path / "backfill.log"
    returncode, progress = dagster_commands.run_with_progress(stages, dict(os.environ), log)
    assert returncode == 2 and not never.exists()
    assert dagster_commands.failure_line(progress, log) == "no definitions"
