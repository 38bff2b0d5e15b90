"""One daemon per instance: a second `carbon-assets dev` on the same DAGSTER_HOME exits at once
with one line naming the first one's pid, and the lock goes with the first one's Dagster."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from bench.dagster_dev import free_port
from carbon_assets.cli import local_stack
from carbon_assets_tests.project_helpers import CARBON_ASSETS, clean_env, fresh_project, stop_group


@pytest.fixture
def project() -> Path:
    with fresh_project("carbon-dev-") as folder:
        yield folder


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while (value := predicate()) is None or value is False:
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


def runs_dagster(dev: subprocess.Popen) -> bool:
    """Whether `carbon-assets dev` has execed into Dagster (`dagster dev` or `dg dev`)."""
    assert dev.poll() is None, f"carbon-assets dev exited with {dev.returncode}"
    command = Path(f"/proc/{dev.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return " dev " in command and "carbon-assets" not in command


@pytest.mark.slow
def test_a_second_dev_on_the_same_instance_exits_with_one_line_naming_the_first(project):
    first = subprocess.Popen(
        [CARBON_ASSETS, "dev", "--port", str(free_port())],
        cwd=project, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    lock_file = project / ".dagster_home" / local_stack.LOCK_FILE
    try:
        # dev has execed into Dagster (same pid), which now holds the lock.
        wait_for(lambda: runs_dagster(first), 120, "dev did not start Dagster")
        assert lock_file.read_text().split()[0] == str(first.pid)
        assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
        second = subprocess.run(
            [CARBON_ASSETS, "dev", "--port", str(free_port())],
            cwd=project, env=clean_env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert second.stdout == ""
        (line,) = second.stderr.splitlines()
        assert f"pid {first.pid}" in line and "carbon-assets dev" in line
    finally:
        stop_group(first)
    # The kernel released the lock with the process.
    os.close(local_stack.instance_lock(project / ".dagster_home", "test"))


@pytest.mark.slow
def test_dev_started_with_sigint_ignored_still_stops_on_sigterm(project):
    """A shell's background job starts with SIGINT ignored; Dagster maps SIGTERM onto SIGINT's
    handler, so without care neither would stop `dg dev`."""
    ignoring_sigint = f'trap "" INT; exec "{CARBON_ASSETS}" dev --port {free_port()}'
    dev = subprocess.Popen(
        ["sh", "-c", ignoring_sigint],
        cwd=project, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: runs_dagster(dev), 120, "dev did not start Dagster")
        time.sleep(5)  # the webserver and the daemon are up
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=45)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dev.pid, signal.SIGKILL)


def test_the_lock_is_refused_while_held_and_free_once_closed(tmp_path):
    holder = local_stack.instance_lock(tmp_path, "carbon-assets dev")
    assert os.get_inheritable(holder)
    with pytest.raises(
        local_stack.InstanceInUse, match=rf"pid {os.getpid()} \(carbon-assets dev\)"
    ):
        local_stack.instance_lock(tmp_path, "carbon-assets dev")
    os.close(holder)
    os.close(local_stack.instance_lock(tmp_path, "again"))
    assert (tmp_path / local_stack.LOCK_FILE).read_text() == f"{os.getpid()} again\n"


def test_a_lock_file_left_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / local_stack.LOCK_FILE
    path.write_text("")
    path.chmod(0o644)
    os.close(local_stack.instance_lock(tmp_path, "dev"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
