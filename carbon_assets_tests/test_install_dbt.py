"""The analyst layer's dbt installs from the package registries reachable here, and parses our
dbt project with no other network (no dbt Hub, no anonymous statistics).

A fresh venv that does not see the dev venv: pip resolves dagster-dbt, dbt-core 1.11 and
dbt-postgres as setup.py pins them (dbt-core 1.12 would download a parser at install time).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from carbon_assets.analytics.project import PROJECT_DIR
from carbon_assets_tests.test_install import PIP_TIMEOUT, RUN_TIMEOUT, VENV_TIMEOUT, run

pytestmark = pytest.mark.slow

REQUIREMENTS = ["dagster-dbt==0.29.27", "dbt-core>=1.11,<1.12", "dbt-postgres==1.11.0"]


def test_dbt_installs_and_parses_the_project_offline(tmp_path: Path) -> None:
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    venv = tmp_path / "venv"
    run([base_python, "-m", "venv", venv], cwd=tmp_path, timeout=VENV_TIMEOUT)
    bin_dir = venv / "bin"
    run([bin_dir / "python", "-m", "pip", "install", *REQUIREMENTS], tmp_path, PIP_TIMEOUT)

    version = run([bin_dir / "dbt", "--version"], cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert "1.11." in version.stdout and "postgres" in version.stdout, version.stdout

    # A copy: parsing writes nothing into the checkout.
    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    target = tmp_path / "target"
    run(
        [
            "env", "DBT_SEND_ANONYMOUS_USAGE_STATS=false", f"DBT_LOG_PATH={target}",
            bin_dir / "dbt", "parse", "--project-dir", project, "--profiles-dir", project,
            "--target-path", target,
        ],
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert (target / "manifest.json").is_file()
    assert not (project / "target").exists()
