"""Processes that loaded dagster, dbt or pyarrow end without Python's last walk over their
objects (gc_pause.skip_collection_at_exit): a run's process, the CLI and a build's dbt."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Registered first, so it runs last of the exit handlers: what the final collection would see.
PROBE = (
    "import atexit, gc\natexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"
)

ENTRY_POINTS = {
    "the definitions (a run's process)": "import carbon_assets.definitions\n",
    "the carbon-assets command": (
        "from carbon_assets.cli import main\nmain(['backfill', '2024-01-02', '2024-01-01'])\n"
    ),
    "carbon-assets-dbt": (
        "import sys\nsys.argv = ['carbon-assets-dbt', '--help']\n"
        "from carbon_assets.cli.dbt_command import main\nmain()\n"
    ),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_process_ends_with_its_objects_frozen(entry):
    result = subprocess.run(
        [sys.executable, "-c", PROBE + ENTRY_POINTS[entry]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    frozen = [line for line in result.stdout.splitlines() if line.startswith("frozen at exit:")]
    assert frozen, result.stdout[-2000:] + result.stderr[-2000:]
    assert int(frozen[0].split(":")[1]) > 10_000, frozen


def test_a_process_that_never_asks_is_collected_as_usual():
    result = subprocess.run(
        [sys.executable, "-c", PROBE + "import carbon_assets.gc_pause\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "frozen at exit: 0"
