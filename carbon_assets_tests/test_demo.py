"""`make demo` as a newcomer runs it: `carbon-assets demo` in a fresh project folder, offline.

It must finish with every layer filled for January 2024, print one line per step and a
summary rather than Dagster's event stream, keep the full log in a file it names, and write
the two charts the README shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_assets.warehouse.embedded import stop_embedded_server
from carbon_assets_tests.helpers import REPO
from carbon_assets_tests.postgres_helpers import server_data_dir

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DAYS, HALF_HOURS, REGIONS = 31, 48, 18


@pytest.fixture
def fresh_project() -> Path:
    """A folder with the project's Dagster files and nothing else (no data, no instance);
    outside pytest's tmp folders, which the embedded server's user cannot rely on."""
    folder = server_data_dir("carbon-demo-")
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, folder / name)
    yield folder
    stop_embedded_server(folder / "data")
    shutil.rmtree(folder, ignore_errors=True)


def test_make_demo_fills_every_layer_and_says_so_briefly(fresh_project):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    env["CARBON_SPARK_CONF"] = "spark.ui.enabled=false"
    command = [str(Path(sys.executable).parent / "carbon-assets"), "demo"]
    done = subprocess.run(
        command, cwd=fresh_project, env=env, capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    counts = {
        line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1].replace(",", ""))
        for line in done.stdout.splitlines()
        if line.startswith("  ") and line.rsplit(None, 1)[-1].replace(",", "").isdigit()
    }
    assert counts["bronze day files"] == DAYS
    assert counts["silver rows"] == DAYS * HALF_HOURS * REGIONS
    assert counts["warehouse daily rows"] == counts["gold rows"] == DAYS * REGIONS
    assert counts["warehouse half-hour rows"] == DAYS * HALF_HOURS * REGIONS
    # A step per line (started and done), no event stream.
    assert "carbon_intensity_halfhourly done" in done.stdout
    assert "DEBUG" not in done.stdout and len(done.stdout.splitlines()) < 80
    log = fresh_project / "data" / "demo.log"
    assert str(log) in done.stdout and "STEP_SUCCESS" in log.read_text()
    for chart in ("intensity_heatmap.png", "gb_fuel_mix.png"):
        assert (fresh_project / "data" / "exports" / chart).read_bytes().startswith(b"\x89PNG")
