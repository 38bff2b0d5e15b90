"""`dg dev` as a subprocess for the UI benchmark (bench.ui_backfill) and the tests that drive
the UI (carbon_assets_tests/ui/dagster_dev.py imports it): start, wait, talk GraphQL, stop.

The command is the one `carbon-assets dev` runs (cli/dagster_commands.py: dev_command, in the
environment of dg_environment). Everything it starts (webserver, daemon, code server, run
workers and their Spark JVMs) runs in the process group of the `dg dev` process and carries a
marker environment variable; stopping sends SIGTERM to the group, then SIGKILL, then kills by
pid any process that still carries the marker (a child that made its own group). Nothing is
matched by name.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from carbon_assets.cli.dagster_commands import dev_command, dg_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER_VARIABLE = "CARBON_DAGSTER_DEV_MARKER"

TERMINAL_BACKFILL_STATUSES = {
    "COMPLETED",
    "COMPLETED_SUCCESS",
    "COMPLETED_FAILED",
    "FAILED",
    "CANCELED",
}
MAX_PROBLEM_LINES = 150
FINISHED_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_with_marker(marker: str) -> list[int]:
    """Pids of processes whose environment holds MARKER_VARIABLE=marker."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class GraphQLError(RuntimeError):
    pass


class DagsterDev:
    """One `dg dev -w workspace.yaml` on 127.0.0.1:port with the given environment."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.marker = uuid.uuid4().hex
        self.env = dg_environment({**env, MARKER_VARIABLE: self.marker, "PYTHONUNBUFFERED": "1"})
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.process = subprocess.Popen(
            dev_command("127.0.0.1", self.port, REPO_ROOT),
            cwd=REPO_ROOT,  # where workspace.yaml is, whose working_directory is "."
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole in stop()
        )

    def stop(self, grace_seconds: float = 20) -> list[int]:
        """Stop everything started; return pids that had to be killed after the group."""
        leftovers: list[int] = []
        if self.process is not None:
            pgid = self.process.pid
            for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    try:
                        os.killpg(pgid, 0)  # anyone left in the group?
                    except ProcessLookupError:
                        break
                    self.process.poll()  # reap the leader so it does not linger as a zombie
                    time.sleep(0.2)
                else:
                    continue
                break
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # Anything that left the group (its own session) but inherited our environment.
            for _ in range(3):
                pids = _processes_with_marker(self.marker)
                if not pids:
                    break
                leftovers.extend(pids)
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.5)
            self.process = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        return leftovers

    def remaining_processes(self) -> list[int]:
        return _processes_with_marker(self.marker)

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- HTTP -----------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"], indent=2)[:4000])
        return payload["data"]

    def wait_until_ready(self, asset_keys: Iterable[str], timeout: float = 120) -> float:
        """Wait until the webserver answers and the code location shows every asset key."""
        started = time.monotonic()
        expected = set(asset_keys)
        last_problem = "no answer yet"
        while time.monotonic() - started < timeout:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"dg dev exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/server_info", timeout=5):
                    pass
                data = self.graphql("{ assetNodes { assetKey { path } } }", timeout=10)
                seen = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
                if expected <= seen:
                    return time.monotonic() - started
                last_problem = f"assets so far: {sorted(seen)}"
            except (OSError, urllib.error.URLError, GraphQLError, ValueError) as error:
                last_problem = f"{type(error).__name__}: {error}"
            time.sleep(1)
        raise TimeoutError(
            f"dg dev not ready after {timeout:.0f} s ({last_problem}):\n{self.log_tail()}"
        )

    def wait_for_daemon(self, timeout: float = 60) -> None:
        """Wait until the daemon's backfill and run-queue loops report healthy."""
        query = """{ instance { daemonHealth { allDaemonStatuses {
            daemonType healthy required } } } }"""
        wanted = {"BACKFILL", "QUEUED_RUN_COORDINATOR"}
        deadline = time.monotonic() + timeout
        statuses: list = []
        while time.monotonic() < deadline:
            statuses = self.graphql(query)["instance"]["daemonHealth"]["allDaemonStatuses"]
            healthy = {s["daemonType"] for s in statuses if s["healthy"]}
            if wanted <= healthy:
                return
            time.sleep(1)
        raise TimeoutError(
            f"daemon not healthy after {timeout:.0f} s: {statuses}\n{self.log_tail()}"
        )

    # --- backfills ------------------------------------------------------------------------

    def launch_backfill(
        self, asset_keys: Iterable[str], partition_names: list[str], title: str = "backfill"
    ) -> str:
        mutation = """
        mutation Launch($params: LaunchBackfillParams!) {
          launchPartitionBackfill(backfillParams: $params) {
            __typename
            ... on LaunchBackfillSuccess { backfillId }
            ... on Error { message }
            ... on PythonError { stack }
          }
        }"""
        params = {
            "assetSelection": [{"path": [key]} for key in asset_keys],
            "partitionNames": partition_names,
            "title": title,
        }
        result = self.graphql(mutation, {"params": params})["launchPartitionBackfill"]
        if result["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"launchPartitionBackfill failed: {json.dumps(result, indent=2)}")
        return result["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        query = """
        query Backfill($id: String!) {
          partitionBackfillOrError(backfillId: $id) {
            __typename
            ... on PartitionBackfill {
              id status numPartitions
              runs { runId status }
              error { message stack }
            }
            ... on Error { message }
          }
        }"""
        result = self.graphql(query, {"id": backfill_id})["partitionBackfillOrError"]
        if result["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"partitionBackfillOrError: {json.dumps(result)}")
        return result

    def wait_for_backfill(
        self, backfill_id: str, timeout: float = 300, runs_only: bool = False
    ) -> dict:
        """Poll until the backfill is finished and none of its runs is still going.

        runs_only: return as soon as the backfill has runs and all of them have finished, without
        waiting for the backfill daemon's next tick (every 30 s) to mark the backfill itself
        completed.
        """
        deadline = time.monotonic() + timeout
        backfill: dict = {}
        while time.monotonic() < deadline:
            backfill = self.backfill(backfill_id)
            runs_done = all(run["status"] in FINISHED_RUN_STATUSES for run in backfill["runs"])
            if backfill["status"] in TERMINAL_BACKFILL_STATUSES and runs_done:
                return backfill
            if runs_only and backfill["runs"] and runs_done:
                return backfill
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"dg dev exited during the backfill:\n{self.log_tail()}")
            time.sleep(2)
        raise TimeoutError(
            f"backfill {backfill_id} not finished after {timeout:.0f} s: {json.dumps(backfill)}\n"
            + "\n".join(self.run_problems(run["runId"]) for run in backfill.get("runs", []))
        )

    def run_problems(self, run_id: str) -> str:
        """The error and warning events of a run, as text, for failure messages."""
        query = """
        query Logs($runId: ID!) {
          logsForRun(runId: $runId) {
            __typename
            ... on EventConnection {
              events {
                __typename
                ... on MessageEvent { level stepKey message }
                ... on ErrorEvent { error { message stack cause { message stack } } }
              }
            }
            ... on Error { message }
          }
        }"""
        try:
            logs = self.graphql(query, {"runId": run_id})["logsForRun"]
        except Exception as error:  # noqa: BLE001 - diagnostics must not hide the real failure
            return f"(could not read the events of run {run_id}: {error})"
        if logs["__typename"] != "EventConnection":
            return f"(no events for run {run_id}: {logs})"
        lines = [f"--- run {run_id}: errors and warnings ---"]
        seen: set[str] = set()
        for event in logs["events"]:
            error = event.get("error")
            if event.get("level") not in {"ERROR", "CRITICAL", "WARNING"} and not error:
                continue
            message = (event.get("message") or "").strip().splitlines() or [""]
            lines.append(
                f"[{event.get('level')}] {event.get('stepKey') or '-'} {event['__typename']}: "
                f"{message[0][:500]}"
            )
            while error:
                text = error["message"].strip()
                if text in seen:
                    lines.append("    (the same error as above)")
                    break
                seen.add(text)
                lines.append("    " + text[:2000])
                for frame in (error.get("stack") or [])[-6:]:
                    parts = [p.strip() for p in frame.splitlines() if p.strip(" ^~\n")]
                    lines.append("      " + " | ".join(parts))
                error = error.get("cause")
        if len(lines) > MAX_PROBLEM_LINES:
            lines = lines[:MAX_PROBLEM_LINES] + [f"... {len(lines) - MAX_PROBLEM_LINES} more lines"]
        return "\n".join(lines)
