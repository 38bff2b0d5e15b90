"""The one place that builds the `dg` commands the CLI runs, and reads what they print.

`carbon-assets backfill`, `demo`, `check` and `dev` run Dagster through `dg`
(dagster-dg-cli). `dg launch` and `dg check defs` find the project from `[tool.dg]` in
pyproject.toml, so they run in the project folder; `dg dev` is given workspace.yaml's path.
`dagster asset materialize`, `dagster dev` and `dagster definitions validate` still work but
print a SupersessionWarning pointing at `dg launch`, `dg dev` and `dg check defs`.

What a run prints goes whole to a log file; the screen gets one line per step as it starts
and ends (`run_with_progress`), the cause of a step that failed, and, at the end, what the run
left in each layer (`layer_counts`) and how its checks went (`RunProgress`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WORKSPACE_FILE = "workspace.yaml"

# Notices about Dagster's own maturity labels, printed on every load of the definitions, that nobody
# running this project can act on: BackfillPolicy (one run per backfill, on every asset) is beta;
# dagster itself passes the beta `include_sources` of AssetSelection.all and .groups when it parses
# the selections `*` and `group:...`; dg's YAML check instantiates a preview scaffolder this project
# does not use. In Python's -W syntax (a message prefix, nothing imported), so only these are
# hidden, in dg and in every process it starts.
QUIET_WARNINGS = (
    "ignore:Parameter `backfill_policy` of function `asset` is currently in beta",
    "ignore:Parameter `include_sources` of function `AssetSelection.all` is currently in beta",
    "ignore:Parameter `include_sources` of function `AssetSelection.groups` is currently in beta",
    "ignore:Class `SparkDeclarativePipelineScaffolder` is currently in preview",
)


def dg_executable() -> str:
    """The `dg` of this Python environment (not whichever one PATH finds first)."""
    return str(Path(sys.executable).parent / "dg")


def dg_environment(env: dict[str, str]) -> dict[str, str]:
    """`env` for running dg: this environment named as the active one, QUIET_WARNINGS off.

    dg compares $VIRTUAL_ENV with the project's .venv and warns when they differ; a command
    started by path (`.venv/bin/carbon-assets`, make) has no $VIRTUAL_ENV although it runs in
    that very environment.
    """
    warnings_filters = [env["PYTHONWARNINGS"]] if env.get("PYTHONWARNINGS") else []
    return env | {
        "VIRTUAL_ENV": sys.prefix,
        "PYTHONWARNINGS": ",".join([*warnings_filters, *QUIET_WARNINGS]),
    }


# The daily-partitioned layers, regional and national; the analyst layer (dbt) follows them.
DAILY_LAYERS = "group:carbon_intensity"
# The two series share no asset, so a long backfill runs them as two runs side by side, the
# national one started once the regional one fetches: its start (process, planned events) and
# then its own fetch overlap the regional run's work, and its steps take the second core. Its
# bronze waits for the regional one (the carbon_api pool and the lake's API lock), so the API
# never sees both series at once.
SERIES = (
    f"{DAILY_LAYERS} and not key:*national*",
    f"{DAILY_LAYERS} and key:*national*",
)
# From this many days on; a shorter range has less to overlap than a second run costs (its
# process's start on the same cores): docs/performance.md.
SIDE_BY_SIDE_MIN_DAYS = 366
ANALYTICS = "group:analytics"
# Up to this many days the models join the days' run, after them, instead of a run of their own
# (its process and its start, saved). Dagster plans an unpartitioned asset in a range's run once
# per day of the range (a planned event per model, a check row per dbt test), which from about
# a month on costs more than the run saved: docs/performance.md.
MODELS_IN_THE_RUN_MAX_DAYS = 31


def launch_command(selection: str, first: dt.date, last: dt.date) -> list[str]:
    """The assets of `selection` for the days first..last, as one run (the assets'
    single-run backfill policy), executed in the dg process itself."""
    return [
        dg_executable(),
        "launch",
        "--assets",
        selection,
        "--partition-range",
        f"{first}...{last}",
    ]


def analytics_command() -> list[str]:
    """The dbt models (unpartitioned: they read whole tables), as one run: what the analytics
    sensor would launch after the warehouse changed, at once."""
    return [dg_executable(), "launch", "--assets", ANALYTICS]


def backfill_commands(first: dt.date, last: dt.date) -> list[list[list[str]]]:
    """The runs of a backfill, as stages run one after the other, the commands of a stage side
    by side: up to MODELS_IN_THE_RUN_MAX_DAYS days, one run, the daily layers for the range and
    the models after them; longer, the daily layers (a run per series side by side from
    SIDE_BY_SIDE_MIN_DAYS days), then the models' run."""
    days = (last - first).days + 1
    if days <= MODELS_IN_THE_RUN_MAX_DAYS:
        return [[launch_command(f"{DAILY_LAYERS} or {ANALYTICS}", first, last)]]
    if days >= SIDE_BY_SIDE_MIN_DAYS:
        daily = [launch_command(series, first, last) for series in SERIES]
    else:
        daily = [launch_command(DAILY_LAYERS, first, last)]
    return [daily, [analytics_command()]]


def shown_command(command: list[str]) -> str:
    """A command as a user would type it: `dg` by name, the selections quoted."""
    return shlex.join([Path(command[0]).name, *command[1:]])


def dev_command(host: str, port: int, project: Path | None = None) -> list[str]:
    """`dg dev`: webserver, daemon (schedules, sensors, backfills) and a code server.

    It loads the code location from the project's workspace.yaml, the file a deployment's
    webserver reads too, so there is one description of it and the location keeps its name.
    The path is absolute: `carbon-assets dev` starts it in DAGSTER_HOME (dev.py says why).
    """
    workspace = str((project or project_dir()) / WORKSPACE_FILE)
    return [dg_executable(), "dev", "-w", workspace, "--host", host, "--port", str(port)]


def check_defs_command() -> list[str]:
    """Load the definitions as the code server does and report any error (`dg check defs`)."""
    return [dg_executable(), "check", "defs"]


# --- reading a run's output ------------------------------------------------------------------

# Lines of Dagster's event log as the CLI prints them, e.g.
#   ... - 4242 - silver_carbon_intensity - STEP_SUCCESS - Finished execution of step
#   "silver_carbon_intensity" in 12.3s.
#   ... - 4242 - silver_checks - ASSET_CHECK_EVALUATION - Asset check 'silver_known_regions'
#   on 'silver_carbon_intensity' passed.
EVENT = re.compile(
    r" - (?P<event>STEP_START|STEP_SUCCESS|STEP_FAILURE|STEP_SKIPPED|ASSET_CHECK_EVALUATION"
    r"|RUN_FAILURE) - (?P<text>.*)"
)
STEP_NAME = re.compile(r'step "(?P<step>[^"]+)"(?: in (?P<took>[0-9][0-9.hms]*?)\.?$)?')
CHECK_RESULT = re.compile(r"Asset check '(?P<check>[^']+)' on '(?P<asset>[^']+)' (?P<result>.*)")
FAILED_STEPS = re.compile(r"Steps failed: \[(?P<steps>[^\]]*)\]")
# Any line of Dagster's log (an event or a message logged by an asset), as opposed to the lines
# of an error printed under an event.
LOG_LINE = re.compile(r" - dagster - (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
# A step's message saying why it left its assets alone, e.g. "... - dagster - INFO - ... -
# analytics_models - Not built: the models are current (...)": shown, as the step's own line.
NOT_BUILT = re.compile(r" - dagster - INFO - .* - (?P<step>[\w.]+) - Not built: (?P<why>.*)")
# The class of an exception as Dagster prints it, e.g. "dagster._core.definitions.events.Failure: ".
EXCEPTION_CLASS = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Failure): ")
# Lines of an error that say nothing about its cause: Dagster's wrapper of the asset's own
# exception and the traceback's headings.
NOT_A_CAUSE = re.compile(
    r"^(?:Error occurred while executing|Stack Trace:|The above exception|During handling of)"
)
MAX_SHOWN_ERROR = 500


def failure_cause(line: str) -> str | None:
    """The cause an error line under a failure event gives, without its exception's class
    path (a Failure's description, an exception's message), or None for a line that gives
    none (blank, a traceback's, Dagster's wrapper, another log line)."""
    if LOG_LINE.search(line) or line[:1].isspace() or not line.strip():
        return None
    cause = EXCEPTION_CLASS.sub("", line.strip())
    if not cause or NOT_A_CAUSE.match(cause):
        return None
    return cause[:MAX_SHOWN_ERROR]


@dataclass
class RunProgress:
    """What the screen was told about one run: its steps as they went, its checks, and why it
    failed (`failure`, the first failed step's cause, "{step} failed: {cause}")."""

    started: float = field(default_factory=time.monotonic)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    failed_steps: list[str] = field(default_factory=list)
    failure: str | None = None
    # The step whose cause the next error line gives (Dagster prints it under the event).
    _awaiting_cause: str | None = None
    # A cause that ends in ":" lists its details on the indented lines under it (the days
    # bronze could not fetch and why): (step, cause) and the items seen so far.
    _listing: tuple[str, str] | None = None
    _listed: list[str] = field(default_factory=list)

    def line_for(self, log_line: str) -> str | None:
        """The line to print for one line of Dagster's output, or None (most lines)."""
        if (event := EVENT.search(log_line)) is None:
            if not (self._listing or self._awaiting_cause) and (
                not_built := NOT_BUILT.search(log_line)
            ):
                return f"  {self.elapsed()}  {not_built['step']} not built: {not_built['why']}"
            if self._listing and log_line[:1].isspace() and log_line.strip():
                self._listed.append(log_line.strip())
                return None
            if self._listing:
                return self._listed_failure()
            if self._awaiting_cause and (cause := failure_cause(log_line)):
                if cause.endswith(":"):
                    self._listing, self._awaiting_cause = (self._awaiting_cause, cause), None
                    return None
                return self._failed(self._awaiting_cause, cause)
            if self._awaiting_cause and LOG_LINE.search(log_line):
                return self._failed(self._awaiting_cause, None)
            return None
        shown = self._failed(self._awaiting_cause, None) if self._awaiting_cause else None
        if self._listing:
            shown = self._listed_failure()
        kind, text = event["event"], event["text"].strip()
        if kind == "ASSET_CHECK_EVALUATION":
            if result := CHECK_RESULT.search(text):
                name = f"{result['asset']}: {result['check']}"
                passed = result["result"].startswith("passed")
                (self.checks_passed if passed else self.checks_failed).append(name)
                if not passed:
                    shown = self._joined(shown, f"check did not pass: {name}")
            return shown
        if kind == "RUN_FAILURE":
            # A step that failed in a process of its own may have logged no STEP_FAILURE: the
            # run's failure names it, and prints its error under it.
            steps = FAILED_STEPS.search(text)
            if steps and (self.failure is None or self.failure.endswith(" failed")):
                self._awaiting_cause = steps["steps"].replace("'", "") or "run"
                return shown
            return self._joined(shown, "run failed" if self.failure else f"run failed: {text}")
        step = STEP_NAME.search(text)
        name = step["step"] if step else text
        if kind == "STEP_START":
            return self._joined(shown, f"{name} ...")
        if kind == "STEP_SUCCESS":
            took = f" in {step['took']}" if step and step["took"] else ""
            return self._joined(shown, f"{name} done{took}")
        if kind == "STEP_FAILURE":
            self.failed_steps.append(name)
            self._awaiting_cause = name
            return shown
        return self._joined(shown, f"{name} skipped")

    @classmethod
    def combined(cls, parts: list[RunProgress], started: float) -> RunProgress:
        """What runs side by side showed, as one: their checks and failed steps, and the
        first failure."""
        whole = cls(started=started)
        for part in parts:
            whole.checks_passed += part.checks_passed
            whole.checks_failed += part.checks_failed
            whole.failed_steps += part.failed_steps
            whole.failure = whole.failure or part.failure
        return whole

    def finish(self) -> str | None:
        """The line still owed at the end of the output: a failure whose cause never came, or
        whose list of details was the last thing printed."""
        if self._listing:
            return self._listed_failure()
        return self._failed(self._awaiting_cause, None) if self._awaiting_cause else None

    def _listed_failure(self) -> str:
        """A listing cause in one line: the cause, its first item and how many more."""
        (step, cause), items = self._listing, self._listed
        self._listing, self._listed = None, []
        if items:
            more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
            cause = f"{cause} {items[0]}{more}"
        return self._failed(step, cause[:MAX_SHOWN_ERROR])

    def _failed(self, step: str, cause: str | None) -> str:
        self._awaiting_cause = None
        line = f"{step} failed" + (f": {cause}" if cause else "")
        if self.failure is None or (cause and self.failure == f"{step} failed"):
            self.failure = line
        return f"  {self.elapsed()}  {line}"

    def _joined(self, shown: str | None, line: str) -> str:
        return "\n".join([*([shown] if shown else []), f"  {self.elapsed()}  {line}"])

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"


def run_with_progress(
    stages: list[list[list[str]]],
    env: dict[str, str],
    log_path: Path,
    cwd: Path | None = None,
    skip: Callable[[list[str]], str | None] | None = None,
) -> tuple[int, RunProgress]:
    """Run each stage's commands side by side, stage after stage until one fails, the whole
    output going to `log_path` line by line as it comes, printing one line per step as it
    starts and ends; the exit code (a failed command's, else 0) and what was seen. A command
    for which `skip` (asked just before its stage starts) gives a reason is not run: the
    reason is printed instead."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    seen: list[RunProgress] = []
    returncode = 0
    with log_path.open("w") as log:
        for stage in stages:
            followed = []
            for command in stage:
                if skip is not None and (reason := skip(command)):
                    elapsed = RunProgress(started=started).elapsed()
                    print(f"  {elapsed}  not run: {shown_command(command)}: {reason}")
                else:
                    followed.append((command, RunProgress(started=started)))
            seen += [progress for _, progress in followed]
            returncode = _follow(followed, env, log, cwd)
            if returncode != 0:
                break
    return returncode, RunProgress.combined(seen, started)


def _follow(
    followed: list[tuple[list[str], RunProgress]], env: dict[str, str], log, cwd: Path | None
) -> int:
    """Run the commands side by side, each read by a thread of its own into its progress, and
    each but the first started once the one before it has begun its first step: the runs'
    first steps (bronze, at the API) then come in the commands' order, and a run's start (its
    process, its planned events) overlaps the fetch of the one before. The first non-zero exit
    code, else 0, once all have ended; a command that failed before its first step leaves the
    rest unstarted, one that failed later leaves the others be (what they store is kept)."""
    screen_and_log = threading.Lock()

    def read(process: subprocess.Popen, progress: RunProgress, stepped: threading.Event) -> None:
        for line in process.stdout:
            with screen_and_log:
                log.write(line)
                if shown := progress.line_for(line):
                    print(shown, flush=True)
            if " - STEP_START - " in line:
                stepped.set()
        process.wait()
        with screen_and_log:
            if shown := progress.finish():
                print(shown, flush=True)
        stepped.set()

    processes: list[subprocess.Popen] = []
    readers: list[threading.Thread] = []
    with contextlib.ExitStack() as stack:
        for command, progress in followed:
            if processes and processes[-1].poll() not in (None, 0):
                break
            process = stack.enter_context(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            stepped = threading.Event()
            reader = threading.Thread(target=read, args=(process, progress, stepped), daemon=True)
            reader.start()
            processes.append(process)
            readers.append(reader)
            stepped.wait()
        for reader in readers:
            reader.join()
    return next((process.returncode for process in processes if process.returncode), 0)


def failure_line(progress: RunProgress, log_path: Path) -> str:
    """Why a run failed, in one line: its failed step's cause, else the last line of its log
    that is not Dagster's event stream (dg's own error, e.g. definitions that do not load)."""
    if progress.failure:
        return progress.failure
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    for line in reversed(lines):
        if line.strip() and not LOG_LINE.search(line):
            return line.strip()[:MAX_SHOWN_ERROR]
    return "(no output)"


def report_failure(returncode: int, progress: RunProgress, log_path: Path) -> None:
    """The closing lines of a failed run, on stderr: its exit code and cause, and its log."""
    print(
        f"The run failed (exit {returncode}): {failure_line(progress, log_path)}\n"
        f"The full log is {log_path}",
        file=sys.stderr,
    )


# --- what a run left behind ------------------------------------------------------------------


def layer_counts(lake_url: str, first: dt.date, last: dt.date, database_url: str) -> dict[str, int]:
    """Days and rows of first..last in each layer: bronze day files (and how many are
    complete), silver and gold rows (from the Parquet files' footers) and warehouse rows; the
    regional series, then the national one."""
    import sqlalchemy

    from carbon_assets.bronze.store import BronzeStore
    from carbon_assets.lake import day_files
    from carbon_assets.lake_files import day_file_rows
    from carbon_assets.partitions import DayRange
    from carbon_assets.storage import storage_at

    days = DayRange(first, last)
    lake = storage_at(lake_url)
    store = BronzeStore(lake / "bronze")
    summaries = [summary for day in days.days() if (summary := store.summary(day)) is not None]
    national = BronzeStore(lake / "bronze_national")
    national_heads = [head for day in days.days() if (head := national.head(day)) is not None]

    def parquet_rows(layer: str) -> int:
        return sum(day_file_rows(path) for path in day_files(lake / layer, days).values())

    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            warehouse = {
                table: connection.execute(
                    sqlalchemy.text(
                        f"SELECT count(*) FROM carbon_data.{table} "
                        "WHERE date_recorded BETWEEN :first AND :last"
                    ),
                    {"first": first, "last": last},
                ).scalar_one()
                for table in (
                    "carbon_intensity_daily",
                    "carbon_intensity_halfhourly",
                    "carbon_intensity_national_daily",
                    "carbon_intensity_national_halfhourly",
                )
            }
            national_actuals = connection.execute(
                sqlalchemy.text(
                    "SELECT count(intensity_actual) FROM "
                    "carbon_data.carbon_intensity_national_halfhourly "
                    "WHERE date_recorded BETWEEN :first AND :last"
                ),
                {"first": first, "last": last},
            ).scalar_one()
    finally:
        engine.dispose()
    return {
        "days in range": len(days),
        "bronze day files": len(summaries),
        "bronze complete days": sum(bool(summary.get("complete")) for summary in summaries),
        "bronze region-records": sum(summary.get("region_records", 0) for summary in summaries),
        "silver rows": parquet_rows("silver"),
        "gold rows": parquet_rows("gold"),
        "warehouse daily rows": warehouse["carbon_intensity_daily"],
        "warehouse half-hour rows": warehouse["carbon_intensity_halfhourly"],
        "national bronze days": len(national_heads),
        "national settled days": sum(h.complete and not h.actuals_pending for h in national_heads),
        "national silver rows": parquet_rows("silver_national"),
        "national warehouse days": warehouse["carbon_intensity_national_daily"],
        "national half-hour rows": warehouse["carbon_intensity_national_halfhourly"],
        "national actuals": national_actuals,
    }


def summary_lines(counts: dict[str, int], progress: RunProgress) -> list[str]:
    """The summary printed after a run: rows per layer, then the checks."""
    lines = [f"  {layer:<26} {count:>10,}" for layer, count in counts.items()]
    checks = len(progress.checks_passed) + len(progress.checks_failed)
    lines.append(
        f"  {'checks':<26} {checks:>10,}  ({len(progress.checks_passed)} passed, "
        f"{len(progress.checks_failed)} did not pass)"
    )
    lines += [f"    did not pass: {name}" for name in progress.checks_failed]
    return lines


def environment_summary(env: dict[str, str], warehouse_url: str) -> list[str]:
    """Where a command's run goes: the API, the lake, the warehouse and Dagster's instance,
    passwords masked."""
    from carbon_assets import settings
    from carbon_assets.postgres.secrets import mask_url

    api = env.get(settings.API_BASE_URL) or settings.DEFAULT_API_BASE_URL
    lake = env.get(settings.LAKE_URL) or env.get(settings.DATA_DIR) or settings.DEFAULT_DATA_DIR
    instance = mask_url(env.get("DAGSTER_POSTGRES_URL", ""))
    return [
        f"API:            {api}",
        f"Lake:           {lake}",
        f"Warehouse:      {mask_url(warehouse_url)}",
        f"Dagster home:   {env.get('DAGSTER_HOME', '')} (instance on {instance})",
    ]


def project_dir() -> Path:
    """The project folder: the working directory, as for `make dev` (it holds
    pyproject.toml's [tool.dg] and workspace.yaml)."""
    return Path(os.getcwd()).resolve()
