"""The demo's stack is its own (lake, warehouse, instance, DAGSTER_HOME) and the real one is the
environment's; `dev --demo` opens only a lake the demo filled; a readable .env holding a secret
is named in one line. The whole demo-then-another-API sequence is in test_demo.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from carbon_assets import settings
from carbon_assets.cli import local_stack
from carbon_assets.lake import LakeResource

CARBON_ASSETS = str(Path(sys.executable).parent / "carbon-assets")


@pytest.fixture
def environ(monkeypatch) -> dict[str, str]:
    """os.environ as a throw-away copy without the project's variables (load_dotenv and the
    environment functions write into it)."""
    copy = {k: v for k, v in os.environ.items() if not k.startswith(("CARBON_", "DAGSTER_"))}
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_the_real_stack_is_the_environments(tmp_path, environ):
    (tmp_path / ".env").write_text(f"{settings.DATABASE_URL}=postgresql://u@db.example/carbon\n")
    assert local_stack.project_environment(tmp_path) == []
    assert environ["DAGSTER_HOME"] == str(tmp_path / ".dagster_home")
    assert environ[settings.DATABASE_URL] == "postgresql://u@db.example/carbon"
    assert settings.LAKE_URL not in environ
    assert LakeResource().storage.local_path == tmp_path / "data"


def test_the_demo_stack_is_its_own_whatever_the_environment_says(tmp_path, environ):
    (tmp_path / ".env").write_text(f"{settings.DATABASE_URL}=postgresql://u@db.example/carbon\n")
    environ[settings.LAKE_URL] = str(tmp_path / "real-lake")
    environ["DAGSTER_HOME"] = str(tmp_path / "real-home")
    set_aside = local_stack.project_environment(tmp_path, demo=True)
    assert set_aside == [settings.LAKE_URL, settings.DATABASE_URL, "DAGSTER_HOME"]
    assert LakeResource().storage.local_path == tmp_path / "data" / "demo"
    assert environ["DAGSTER_HOME"] == str(tmp_path / ".dagster_home" / "demo")
    assert settings.DATABASE_URL not in environ  # connect_environment sets carbon_demo's


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("CARBON_DATABASE_URL=postgresql://carbon:hush@db.example:5432/carbon", True),
        ("PGPASSWORD=hush", True),
        ("MY_API_TOKEN=hush", True),
        ("CARBON_SPARK_CONF=spark.executor.memory=4g; spark.authenticate.secret=hush", True),
        ("CARBON_SPARK_REMOTE=sc://spark.example:15002/;token=hush", True),
        ("CARBON_DATABASE_URL=postgresql://carbon@db.example:5432/carbon", False),
        ("CARBON_SETTLE_DAYS=3", False),
    ],
)
def test_a_readable_env_file_with_a_secret_is_named_in_one_line(tmp_path, line, secret):
    env_file = tmp_path / ".env"
    env_file.write_text(line + "\n")
    env_file.chmod(0o644)
    warning = local_stack.env_file_warning(env_file)
    if not secret:
        assert warning is None
        return
    key = line.split("=", 1)[0]
    assert warning == (
        f"warning: {env_file} holds a password or secret ({key}) and is readable by others "
        f"(mode 0644): chmod 600 {env_file}"
    )
    env_file.chmod(0o600)
    assert local_stack.env_file_warning(env_file) is None


def test_dev_says_so_when_it_reads_a_readable_env_file_with_a_password(tmp_path, environ):
    env_file = tmp_path / ".env"
    env_file.write_text("CARBON_DATABASE_URL=postgresql://carbon:hush@db.example/carbon\n")
    env_file.chmod(0o640)
    done = subprocess.run(
        [CARBON_ASSETS, "dev", "--demo"], cwd=tmp_path, env=environ, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    warning, refusal = done.stderr.splitlines()
    assert warning.startswith(f"warning: {env_file} holds a password") and "hush" not in warning
    # An empty demo lake would take the real API as its source: dev --demo refuses it.
    assert refusal == (
        f"The demo's lake {tmp_path / 'data' / 'demo'} is empty: run `carbon-assets demo` "
        "(make demo) first"
    )


def test_the_demo_summary_counts_the_checks_and_names_those_that_did_not_pass():
    from carbon_assets.cli.dagster_commands import RunProgress
    from carbon_assets.cli.demo import checks_summary, warning_checks

    progress = RunProgress()
    events = [
        ("silver_known_regions", "silver_carbon_intensity", "passed."),
        ("silver_fuel_mix_sums_to_100", "silver_carbon_intensity", "did not pass."),
        ("bronze_days_complete", "bronze_carbon_intensity", "did not pass."),
    ]
    for check, asset, outcome in events:
        progress.line_for(
            "2024-01-01 - dagster - DEBUG - __ASSET_JOB - 1a2b - checks - ASSET_CHECK_EVALUATION"
            f" - Asset check '{check}' on '{asset}' {outcome}"
        )
    assert checks_summary(progress, warning_checks()) == [
        "Asset checks: 1 passed, 1 failed, 1 warning",
        "  failed:  silver_carbon_intensity: silver_fuel_mix_sums_to_100",
        "  warning: bronze_carbon_intensity: bronze_days_complete",
    ]
