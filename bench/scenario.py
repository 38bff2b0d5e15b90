"""Facts about the machine and software a benchmark ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

import psutil


def java_version() -> str:
    """The version of the Java the pipeline's Spark uses (as carbon_assets.spark finds it)."""
    from carbon_assets.spark import find_java_home

    java = Path(find_java_home()) / "bin" / "java"
    try:
        output = subprocess.run(
            [str(java), "-version"], check=False, capture_output=True, text=True, timeout=30
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r'version "([^"]+)"', output)
    return match.group(1) if match else output.splitlines()[0] if output else "unknown"


def postgres_version(admin_dsn: str) -> str:
    import psycopg2

    with psycopg2.connect(admin_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0].split()[0]


def machine_facts(admin_dsn: str) -> dict:
    """nproc, RAM, versions and the load average when the benchmark started."""
    import dagster
    import pyspark

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "java": java_version(),
        "spark": pyspark.__version__,
        "dagster": dagster.__version__,
        "postgres": postgres_version(admin_dsn),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
