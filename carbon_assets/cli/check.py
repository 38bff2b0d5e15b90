"""`carbon-assets check`: the definitions load as the code server loads them (`dg check defs`).

Loading the definitions needs no database, but dg opens a Dagster instance first: with
DAGSTER_HOME unset it makes a temporary one configured by ./dagster.yaml, whose storage is
the PostgreSQL of DAGSTER_POSTGRES_URL. So the check runs on a throwaway instance of Dagster's
defaults (files in a temporary folder) and works on a fresh clone with nothing set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`carbon-assets check` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """dg's exit code; dg prints what failed to load, or that everything loaded."""
    from carbon_assets.cli import dagster_commands as dg

    with tempfile.TemporaryDirectory(prefix="carbon-assets-check-") as home:
        (Path(home) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = dg.dg_environment(os.environ | {"DAGSTER_HOME": home})
        command = dg.check_defs_command()
        return subprocess.run(command, env=env, cwd=dg.project_dir(), check=False).returncode
