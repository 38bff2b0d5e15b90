"""A plain (non-editable) install works: `pip install .`, then the CLI and the Dagster code.

The editable install of the development venv reads everything from the checkout, so it hides
what a wheel would be missing (package data such as the SQL migrations, modules that exist
only because the checkout is on sys.path). This test therefore:

1. copies the repository's files (those `git ls-files` lists: tracked, plus untracked ones
   that are not ignored, so it also works before `git add`; in CI's fresh clone that is just
   the tracked files) into a temporary directory, so that the in-tree build leaves no
   `build/` or `*.egg-info` in the checkout;
2. creates a fresh venv whose `.pth` file puts the dev venv's site-packages on sys.path, so
   the heavy dependencies (dagster, pyspark, ...) need not be installed again. A `.pth` line
   only adds a directory: the `.pth` files inside it (the dev venv's editable finder of
   carbon_assets) are not run, which the test checks before installing anything;
3. runs `pip install --no-deps` on the copy. Build isolation stays on: the dev venv has
   neither `wheel` nor the setuptools>=68 that pyproject.toml asks for, so pip fetches the
   build requirements from the package index (a few seconds);
4. from an unrelated working directory, runs `carbon-assets db-init` against a new database
   on the PostgreSQL service and imports `carbon_assets.definitions`, both from the installed
   copy in the fresh venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from carbon_assets_tests.postgres_helpers import query

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# Generous: the install builds one small wheel and may fetch setuptools and wheel for it.
VENV_TIMEOUT = 180
PIP_TIMEOUT = 600
RUN_TIMEOUT = 300


def copy_repository(destination: Path) -> None:
    """Copy the files `git ls-files` lists (symlinks kept as symlinks) to `destination`."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    names = sorted({name for name in listing.stdout.decode().split("\0") if name})
    assert "setup.py" in names, f"git ls-files in {REPO_ROOT} does not list setup.py"
    for name in names:
        source, target = REPO_ROOT / name, destination / name
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the work tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.is_file():
            shutil.copy2(source, target)


def clean_env() -> dict[str, str]:
    """This process's environment without anything that points Python at another tree."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PIP_USER")
        and not key.startswith("CARBON_")
    }
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(args: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run `args`; fail the test with its output unless it exits 0."""
    result = subprocess.run(
        [str(arg) for arg in args],
        check=False,  # the assertion below shows the output
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode} in {cwd}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def fresh_venv(location: Path, workdir: Path) -> tuple[Path, Path]:
    """A new venv at `location` that sees the dev venv's dependencies: (bin dir, purelib)."""
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    run([base_python, "-m", "venv", location], cwd=workdir, timeout=VENV_TIMEOUT)
    bin_dir = location / "bin"
    site_packages = Path(
        run(
            [bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            cwd=workdir,
            timeout=RUN_TIMEOUT,
        ).stdout.strip()
    )
    assert site_packages.is_relative_to(location), site_packages
    dev_paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "zz_dev_dependencies.pth").write_text("".join(f"{p}\n" for p in dev_paths))
    return bin_dir, site_packages


def test_plain_install_runs_db_init_and_loads_definitions(
    tmp_path: Path, service_database_url: str
) -> None:
    source = tmp_path / "source"
    copy_repository(source)
    workdir = tmp_path / "elsewhere"  # neither the checkout nor the copy: nothing on sys.path
    workdir.mkdir()
    bin_dir, site_packages = fresh_venv(tmp_path / "venv", workdir)
    python = bin_dir / "python"

    # The dependencies are visible, the dev venv's editable carbon_assets is not.
    probe = run(
        [
            python,
            "-c",
            (
                "import importlib.util, dagster, sqlalchemy; "
                "print(importlib.util.find_spec('carbon_assets'))"
            ),
        ],
        cwd=workdir,
        timeout=RUN_TIMEOUT,
    )
    assert probe.stdout.strip() == "None", (
        f"carbon_assets importable before the install: {probe.stdout}"
    )

    run(
        [python, "-m", "pip", "install", "--no-deps", source],
        cwd=workdir,
        timeout=PIP_TIMEOUT,
    )

    package = site_packages / "carbon_assets"
    schema_file = package / "warehouse" / "sql" / "001_carbon_data_schema.sql"
    assert schema_file.is_file() and not schema_file.is_symlink(), (
        f"{schema_file} missing from the installed package: "
        f"{sorted(str(p.relative_to(site_packages)) for p in package.rglob('*.sql'))}"
    )

    # The console script of the fresh venv, against a database that has no schema yet.
    assert query(service_database_url, "SELECT to_regclass('carbon_data.schema_migrations')") == [
        (None,)
    ]
    cli = bin_dir / "carbon-assets"
    first = run(
        [cli, "db-init", "--database-url", service_database_url], cwd=workdir, timeout=RUN_TIMEOUT
    )
    assert "Applied 001, 002" in first.stdout, first.stdout
    assert ("001",) in query(
        service_database_url, "SELECT version FROM carbon_data.schema_migrations"
    )
    assert query(
        service_database_url, "SELECT to_regclass('carbon_data.carbon_intensity_daily')::text"
    ) == [("carbon_data.carbon_intensity_daily",)]
    again = run(
        [cli, "db-init", "--database-url", service_database_url], cwd=workdir, timeout=RUN_TIMEOUT
    )
    assert "up to date" in again.stdout, again.stdout

    # The Dagster code location loads from the installed copy, not from the checkout.
    loaded = run(
        [
            python,
            "-c",
            "import carbon_assets.definitions, carbon_assets; print(carbon_assets.__file__)",
        ],
        cwd=workdir,
        timeout=RUN_TIMEOUT,
    )
    installed_file = Path(loaded.stdout.strip().splitlines()[-1]).resolve()
    assert installed_file.is_relative_to(site_packages.resolve()), installed_file
    assert not installed_file.is_relative_to(REPO_ROOT), installed_file

    # The models' builds run the fresh venv's own dbt command (cli/dbt_command.py).
    dbt_command = bin_dir / "carbon-assets-dbt"
    chosen = run(
        [
            python,
            "-c",
            "from carbon_assets.analytics.project import dbt_executable; print(dbt_executable())",
        ],
        cwd=workdir,
        timeout=RUN_TIMEOUT,
    )
    assert chosen.stdout.strip().splitlines()[-1] == str(dbt_command)
    assert "installed:" in run([dbt_command, "--version"], cwd=workdir, timeout=RUN_TIMEOUT).stdout
