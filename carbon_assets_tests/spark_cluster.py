"""A real standalone Spark cluster for tests: a master and one worker from the pyspark wheel.

`start_spark_cluster` runs `org.apache.spark.deploy.master.Master` and
`org.apache.spark.deploy.worker.Worker` with pyspark's `bin/spark-class`, both bound to
127.0.0.1 on free ports, and yields once the worker has registered with the master. The
worker (2 cores, 2 GiB for executors) runs in `work_dir`, which is also its `--work-dir`: each
application's executor writes its logs to `work_dir/app-*/<executor id>/stderr`. Its executors
and their Python workers inherit the worker's environment, so the AWS variables a lake on
object storage needs go in `env`.

With `user` (as root), the worker and everything it starts run as that user, so the kernel
keeps them out of every folder of the driver's that is private to root (a data folder made by
mkdtemp is 0700). That user still needs the Python installation, the venv, this project (an
editable install), pyspark's jars and Java. Those of them it cannot reach (a pyenv Python under
root's 0700 home) are made reachable for the worker alone: it starts in a mount namespace of
its own where each blocking folder is covered by an empty tmpfs into which only the needed
folders are bind-mounted back. Nothing outside that namespace changes (no mode or ACL), and it
goes away with the worker's processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest

from carbon_assets.spark import find_java_home

REPO = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
WORKER_CORES = 2
WORKER_MEMORY = "2g"
# The daemons only schedule; the executors they start get their own heap (spark.executor.memory).
DAEMON_MEMORY = "512m"
START_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 30
# Run as root, the worker runs as this user, who cannot enter root's 0700 folders.
WORKER_USER = "nobody"


class WorkerUserError(RuntimeError):
    """The worker cannot run as the requested user here (not root, or the user cannot reach
    what the worker needs even through a mount namespace)."""


@dataclass(frozen=True)
class SparkCluster:
    """A running cluster: its master's URL, the worker's folder, the user the worker runs as."""

    url: str
    work_dir: Path
    user: str | None
    web_ui: str
    _wrapper: tuple[str, ...]
    _env: Mapping[str, str]

    def executor_logs(self) -> dict[Path, str]:
        """Each executor's stderr (`work_dir/app-*/<id>/stderr`), by path."""
        return {path: path.read_text(errors="replace") for path in self.executor_log_paths()}

    def executor_log_paths(self) -> list[Path]:
        return sorted(self.work_dir.glob("app-*/*/stderr"))

    def applications(self) -> list[dict]:
        """The master's view of the applications it ran or runs (its JSON API)."""
        state = _master_state(self.web_ui)
        return [*state.get("activeapps", []), *state.get("completedapps", [])]

    def run_as_worker(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """`argv` run as the worker runs: the same user, mount namespace and environment."""
        return subprocess.run(
            [*self._wrapper, *argv],
            env=dict(self._env),
            cwd=self.work_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def needed_folders() -> list[Path]:
    """What the worker, its executors and their Python workers read: the Python installation,
    the venv, this project (imported by the executors' Python), pyspark's jars and Java."""
    folders = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        Path(os.path.realpath(sys.executable)).parent.parent,
        REPO,
        SPARK_HOME,
        Path(find_java_home()).resolve(),
    }
    # A folder inside another one on the list comes with it.
    return sorted(f for f in folders if not any(o != f and o in f.parents for o in folders))


def _as_user(uid: int, gid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def _user_can(user_prefix: list[str], test: str, path: Path) -> bool:
    result = subprocess.run([*user_prefix, "test", test, str(path)], check=False, timeout=30)
    return result.returncode == 0


def _first_blocked(user_prefix: list[str], target: Path) -> Path | None:
    """The topmost folder on the way to `target` (itself included) that the user cannot enter."""
    for folder in [*reversed(target.parents), target]:
        if not _user_can(user_prefix, "-x", folder):
            return folder
    return None


def worker_wrapper(user: str | None, work_dir: Path) -> tuple[list[str], list[str]]:
    """(the command prefix that starts a program as the worker runs, what it makes reachable).

    Without `user`: nothing. With one: setpriv to it, inside a mount namespace when some
    needed folder is out of the user's reach (see the module's docstring).
    """
    if user is None:
        return [], []
    if os.geteuid() != 0:
        raise WorkerUserError(f"running the worker as {user} needs root")
    for tool in ("setpriv", "unshare", "mount"):
        if shutil.which(tool) is None:
            raise WorkerUserError(f"running the worker as {user} needs {tool} (util-linux)")
    entry = pwd.getpwnam(user)
    as_user = _as_user(entry.pw_uid, entry.pw_gid)
    if (blocked := _first_blocked(as_user, work_dir)) is not None:
        raise WorkerUserError(
            f"user {user} cannot reach the worker's folder {work_dir} ({blocked})"
        )
    covered: dict[Path, list[Path]] = {}
    for folder in needed_folders():
        if (blocked := _first_blocked(as_user, folder)) is not None:
            covered.setdefault(blocked, []).append(folder)
    if not covered:
        return as_user, []
    # The bind mounts wait in a folder of root's outside the covered ones while the tmpfs goes
    # over their origin; inside the namespace only, so outside it the folder stays empty.
    stage = work_dir / ".mounts"
    stage.mkdir(mode=0o700, exist_ok=True)
    steps = ["set -e"]
    index = 0
    for blocked, folders in sorted(covered.items()):
        moves = []
        for folder in folders:
            index += 1
            staged = shlex.quote(str(stage / str(index)))
            steps += [f"mkdir -p {staged}", f"mount --bind {shlex.quote(str(folder))} {staged}"]
            moves.append((staged, shlex.quote(str(folder))))
        steps.append(
            f"mount -t tmpfs -o mode=0755,size=1m carbon-spark {shlex.quote(str(blocked))}"
        )
        for staged, folder in moves:
            steps += [f"mkdir -p {folder}", f"mount --move {staged} {folder}"]
    steps.append('exec "$@"')
    namespace = ["unshare", "--mount", "--propagation", "private", "--"]
    shell = ["sh", "-c", "; ".join(steps), "carbon-spark-worker"]
    reachable = [folder for folders in covered.values() for folder in folders]
    return [*namespace, *shell, *as_user], reachable


def _check_worker_python(wrapper: list[str], env: dict, work_dir: Path, user: str) -> None:
    """Fail early, with the reason, when the worker's user cannot run this project's Python."""
    check = [sys.executable, "-c", "import carbon_assets, pyarrow, pyspark"]
    result = subprocess.run(
        [*wrapper, *check],
        env=env,
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise WorkerUserError(f"user {user} cannot run this project's Python: {result.stderr}")


def _master_state(web_ui: str) -> dict:
    with urllib.request.urlopen(f"{web_ui}/json/", timeout=5) as response:
        return json.load(response)


def _alive_workers(web_ui: str) -> int:
    try:
        state = _master_state(web_ui)
    except OSError:
        return 0
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _tail(path: Path, size: int = 4000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """Stop the process's whole group (the worker's executors and their Python workers too)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    # The leader gone, what it started may linger in its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def start_spark_cluster(
    env: Mapping[str, str], work_dir: Path, user: str | None = None
) -> Iterator[SparkCluster]:
    """A master and one worker on 127.0.0.1; yields the cluster (its `url`: spark://...).

    `env` is the worker's whole environment (PATH included) on top of which JAVA_HOME,
    SPARK_HOME, SPARK_LOCAL_IP, HOME (`work_dir`) and the daemon settings are set; the master
    gets the same. `user`: run the worker as this user (see the module's docstring).
    Both are stopped, each with its process group, on the way out.
    """
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "conf").mkdir(exist_ok=True)  # an empty SPARK_CONF_DIR: no stray settings
    if user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(work_dir, entry.pw_uid, entry.pw_gid)
    wrapper, _ = worker_wrapper(user, work_dir)
    if user is not None:
        _check_worker_python(wrapper, dict(env) | {"HOME": str(work_dir)}, work_dir, user)
    master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
    web_ui = f"http://127.0.0.1:{master_ui}"
    url = f"spark://127.0.0.1:{master_port}"
    daemon_env = {
        **env,
        "JAVA_HOME": find_java_home(),
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_CONF_DIR": str(work_dir / "conf"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "SPARK_LOCAL_DIRS": str(work_dir),
        "HOME": str(work_dir),
    }
    master_command = [
        str(SPARK_CLASS), MASTER_CLASS, "--host", "127.0.0.1", "--port", str(master_port),
        "--webui-port", str(master_ui),
    ]  # fmt: skip
    worker_command = [
        *wrapper, str(SPARK_CLASS), WORKER_CLASS, url, "--host", "127.0.0.1",
        "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY, "--work-dir", str(work_dir),
        "--webui-port", str(worker_ui),
    ]  # fmt: skip
    master_log, worker_log = work_dir / "master.log", work_dir / "worker.log"
    processes: list[subprocess.Popen] = []
    try:
        for command, log_path in ((master_command, master_log), (worker_command, worker_log)):
            with open(log_path, "wb") as log:
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=work_dir,
                        env=daemon_env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, stopped whole
                    )
                )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while _alive_workers(web_ui) < 1:
            ended = [p for p in processes if p.poll() is not None]
            if ended or time.monotonic() > deadline:
                raise RuntimeError(
                    "the Spark cluster did not start"
                    + (f" (exit code {ended[0].returncode})" if ended else "")
                    + f":\nmaster:\n{_tail(master_log)}\nworker:\n{_tail(worker_log)}"
                )
            time.sleep(0.5)
        yield SparkCluster(url, work_dir, user, web_ui, tuple(wrapper), daemon_env)
    finally:
        for process in reversed(processes):  # the worker first: it stops its executors
            _stop(process)


def worker_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the project's and Dagster's variables (the worker
    must learn no path of the driver's), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    return env | dict(extra or {})


@pytest.fixture(scope="module")
def spark_cluster(s3_server) -> Iterator[SparkCluster]:
    """A standalone cluster whose worker knows the local S3 server (its AWS variables) and, run
    as root, runs as `nobody` in a folder of its own; as another user, or where that cannot be
    done, as this user in a folder and HOME of its own (`SparkCluster.user` says which)."""
    work_dir = Path(tempfile.mkdtemp(prefix="carbon-spark-worker-"))
    env = worker_environment(s3_server.env)
    try:
        with contextlib.ExitStack() as stack:
            try:
                user = WORKER_USER if os.geteuid() == 0 else None
                cluster = stack.enter_context(start_spark_cluster(env, work_dir, user))
            except WorkerUserError as error:
                warnings.warn(f"the Spark worker runs as this user: {error}", stacklevel=1)
                cluster = stack.enter_context(start_spark_cluster(env, work_dir))
            yield cluster
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
