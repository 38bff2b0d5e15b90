"""A fresh project folder for the tests that run `carbon-assets` as a newcomer does
(test_demo.py, test_dev_lock.py), and stopping what they started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carbon_assets.postgres.embedded import stop_embedded_server
from carbon_assets_tests.helpers import REPO
from carbon_assets_tests.postgres_helpers import server_data_dir

CARBON_ASSETS = str(Path(sys.executable).parent / "carbon-assets")


@contextmanager
def fresh_project(prefix: str) -> Iterator[Path]:
    """A folder with the project's Dagster files and nothing else (no data, no instance);
    outside pytest's tmp folders, which the embedded server's user cannot rely on
    (postgres_helpers.server_data_dir). Its embedded server is stopped afterwards."""
    folder = server_data_dir(prefix)
    for name in ("dagster.yaml", "workspace.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, folder / name)
    try:
        yield folder
    finally:
        stop_embedded_server(folder / "data")
        shutil.rmtree(folder, ignore_errors=True)


def clean_env() -> dict[str, str]:
    """This environment without any CARBON_ or DAGSTER_ variable, as on a fresh machine."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process started with start_new_session and everything it started: SIGTERM to
    its group, SIGKILL after a minute."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
