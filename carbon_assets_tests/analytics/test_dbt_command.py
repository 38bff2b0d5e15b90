"""`carbon-assets-dbt`, the dbt command of the models' builds: dbt itself, except that the
`--version` dagster-dbt asks before every build needs neither dbt's import nor pypi.org."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from carbon_assets.analytics import dbt_resource
from carbon_assets.analytics.project import dbt_core_script, dbt_executable
from carbon_assets.cli.dbt_command import COMMAND_NAME

# How dagster-dbt reads the version (DbtCliResource: the first x.y.z in the output).
VERSION = re.compile(r"(\d+\.\d+\.\d+)")


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_builds_run_carbon_assets_dbt_installed_beside_the_interpreter():
    command = Path(sys.executable).parent / COMMAND_NAME
    assert dbt_executable() == str(command)
    assert dbt_resource().dbt_executable == str(command)


def test_without_it_the_builds_run_dbt_cores_own_script(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    assert dbt_executable() == dbt_core_script()
    assert Path(dbt_core_script()).name == "dbt"


def test_its_version_is_dbts_without_importing_dbt_or_asking_pypi():
    probe = (
        "import sys; sys.argv = ['carbon-assets-dbt', '--version']\n"
        "from carbon_assets.cli.dbt_command import main\n"
        "main()\n"
        "print('imported:', sorted(name for name in sys.modules "
        "if name.split('.')[0] in ('dbt', 'dbt_common', 'requests', 'urllib3')))\n"
    )
    ours = run([sys.executable, "-c", probe])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.rstrip().endswith("imported: []")
    dbts = run([dbt_core_script(), "--version"])
    assert dbts.returncode == 0, dbts.stderr
    assert VERSION.search(ours.stdout).group(1) == VERSION.search(dbts.stdout).group(1)
    installed = run([dbt_executable(), "--version"])
    assert installed.stdout == ours.stdout.split("imported:")[0]


def test_every_other_command_is_dbts():
    ours, dbts = (
        run([dbt_executable(), "no-such-command"]),
        run([dbt_core_script(), "no-such-command"]),
    )
    assert (ours.returncode, ours.stderr) == (dbts.returncode, dbts.stderr)
    assert "No such command 'no-such-command'" in ours.stderr
