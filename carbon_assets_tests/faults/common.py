"""What the fault and bad-input suites share: runs, dumps, lake integrity and the fault matrix."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from dagster import AssetKey

from carbon_assets.definitions import NATIONAL_ASSETS
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets_tests.helpers import REPO
from carbon_assets_tests.postgres_helpers import query

RUN_PIPELINE = Path(__file__).resolve().parent / "run_pipeline.py"

# --- running the pipeline ----------------------------------------------------------------


def _error_text(error) -> str:
    """A SerializableErrorInfo's message, with the messages of its causes and contexts."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause or error.context
    return "\n  caused by: ".join(parts)


def step_failures(result) -> dict[str, str]:
    """{step key: error message with its causes} for every failed step of a run."""
    return {
        event.step_key: _error_text(event.event_specific_data.error)
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    }


# The national series: a fault in the regional one leaves it materializing as usual.
NATIONAL_CHAIN = {key.to_user_string() for asset in NATIONAL_ASSETS for key in asset.keys}


def materialized_assets(result) -> set[str]:
    return {
        event.materialization.asset_key.to_user_string()
        for event in result.get_asset_materialization_events()
    }


def check_results(result) -> dict[str, object]:
    """{check name: AssetCheckEvaluation} of a run."""
    return {
        evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()
    }


def failing_dates(evaluation) -> list[str]:
    return list(evaluation.metadata["failing_dates"].value)


def output_metadata(result, asset: str) -> dict:
    (materialization, *_) = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == AssetKey(asset)
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


@dataclass
class PipelineProcess:
    """run_pipeline.py in its own session (process group), its log in a file."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group at once: the Python driver and the Spark JVM it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)

    def wait_for(
        self, condition: Callable[[], bool], what: str, timeout: float = 240.0, interval=0.005
    ):
        """Poll `condition` until it holds; fail (killing the process) if the run ends or times
        out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the run ended (exit {self.process.returncode}) before {what}:\n"
                    f"{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {what} within {timeout:.0f}s:\n{self.log()[-3000:]}")
            time.sleep(interval)


def start_pipeline_process(
    log_dir: Path,
    data_dir: Path,
    api_base_url: str,
    database_url: str,
    first: str,
    last: str,
    *options: str,
    env: dict | None = None,
) -> PipelineProcess:
    log_path = log_dir / f"run-pipeline-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            str(RUN_PIPELINE),
            str(data_dir),
            api_base_url,
            database_url,
            first,
            last,
            *options,
        ],
        cwd=REPO,
        env=os.environ
        | {"PYTHONPATH": str(REPO), "CARBON_SPARK_CONF": "spark.ui.enabled=false"}
        | (env or {}),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one killpg reaches the JVM too
    )
    return PipelineProcess(process, log_path)


def closed_port_url() -> str:
    """http://127.0.0.1:<port> where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- the warehouse -----------------------------------------------------------------------

# The values only: fetched_at says when they were fetched, which differs between a recovered
# run and a clean one by design.
DAILY_DUMP = (
    f"SELECT {', '.join(c for c in GOLD_COLUMNS if c != 'fetched_at')}"
    " FROM carbon_data.carbon_intensity_daily ORDER BY regionid, date_recorded"
)
REGION_DUMP = "SELECT regionid, shortname, dno FROM carbon_data.dim_region ORDER BY regionid"


def warehouse_dump(url: str) -> dict[str, list[tuple]]:
    """Every row of the warehouse tables, sorted, without loaded_at/updated_at and fetched_at."""
    return {"carbon_intensity_daily": query(url, DAILY_DUMP), "dim_region": query(url, REGION_DUMP)}


def assert_same_dump(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> None:
    """Row by row, naming the first rows that differ."""
    for table, want in expected.items():
        got = actual[table]
        missing = [row for row in want if row not in set(got)]
        extra = [row for row in got if row not in set(want)]
        assert not missing and not extra and len(got) == len(want), (
            f"{table}: {len(got)} rows, expected {len(want)}; "
            f"missing {len(missing)} (e.g. {missing[:2]}), "
            f"unexpected {len(extra)} (e.g. {extra[:2]})"
        )
        assert got == want


def rows_lost(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> int:
    """Rows of `expected` that are not in `actual` (both tables)."""
    return sum(len(set(expected[t]) - set(actual[t])) for t in expected)


@contextlib.contextmanager
def transaction(url: str) -> Iterator:
    """A psycopg2 cursor inside an open transaction, rolled back at the end."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from carbon_assets.warehouse.resource import sqlalchemy_url

    parsed = make_url(sqlalchemy_url(url))
    connection = psycopg2.connect(
        dbname=parsed.database,
        user=parsed.username,
        password=parsed.password,
        host=parsed.query.get("host") or parsed.host,
        port=parsed.port,
    )
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        with contextlib.suppress(Exception):
            connection.rollback()
        with contextlib.suppress(Exception):
            connection.close()


# --- the lake ----------------------------------------------------------------------------

LEFTOVER_NAMES = (".tmp-", ".spark-staging")


def leftovers(data_dir: Path) -> list[Path]:
    """Temporary files and staging folders anywhere in the lake."""
    return sorted(
        path
        for path in Path(data_dir).rglob("*")
        if path.name.startswith(LEFTOVER_NAMES) or path.name == "_temporary"
    )


def assert_lake_whole(data_dir: Path) -> dict[str, int]:
    """No partial file anywhere: no leftovers, every bronze file parses, every Parquet file reads.

    Returns how many files of each kind were checked.
    """
    data_dir = Path(data_dir)
    assert not leftovers(data_dir), f"partial files left in the lake: {leftovers(data_dir)}"
    bronze = sorted((data_dir / "bronze").rglob("*.json.gz"))
    for path in bronze:
        document = json.loads(gzip.decompress(path.read_bytes()))
        assert document["date"] == path.name[:10], path
    parquet = sorted(
        p for layer in ("silver", "gold") for p in (data_dir / layer).rglob("*.parquet")
    )
    for path in parquet:
        pq.read_table(path)
    return {"bronze": len(bronze), "parquet": len(parquet)}


def edit_bronze_day(data_dir: Path, day: str, edit: Callable[[dict], None]) -> None:
    """Rewrite one bronze day file after `edit(document)` changed it in place."""
    path = Path(data_dir) / "bronze" / day[:4] / f"{day}.json.gz"
    document = json.loads(gzip.decompress(path.read_bytes()))
    edit(document)
    path.write_bytes(gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0))


def first_region(document: dict, regionid: int = 1, period: int = 0) -> dict:
    """The record of `regionid` in the `period`-th half-hour of a bronze day document."""
    records = [record for source in document["sources"] for record in source["data"]]
    return next(r for r in records[period]["regions"] if r["regionid"] == regionid)


def file_bytes(folder: Path) -> dict[str, bytes]:
    """{relative path: content} of every file under `folder` (to prove nothing changed)."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --- the fault matrix --------------------------------------------------------------------


@dataclass
class FaultRecord:
    fault: str
    injected: str
    outcome: str
    rows_lost: str


def matrix_table(records: list[FaultRecord]) -> str:
    lines = ["| fault | how injected | outcome | rows lost |", "|---|---|---|---|"]
    lines += [f"| {r.fault} | {r.injected} | {r.outcome} | {r.rows_lost} |" for r in records]
    return "\n".join(lines)


def report_matrix(request, title: str, records: list[FaultRecord]) -> None:
    """Print the matrix at the end of the module, on pytest's terminal (not captured)."""
    if not records:
        return
    text = f"\n{title}\n{matrix_table(records)}\n"
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(text)
        else:  # pragma: no cover - pytest without its terminal plugin
            print(text)
