"""Environment variables the project reads, with their defaults.

Values are read when Definitions are built (never anything slower than os.environ there).
A variable that is set shows in the Dagster UI as an EnvVar; an unset one falls back to its
default, so a fresh clone works with no configuration at all.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import EnvVar

DEFAULT_API_BASE_URL = "https://api.carbonintensity.org.uk"
DEFAULT_DATA_DIR = "data"
DEFAULT_SPARK_MASTER = "local[*]"
DEFAULT_API_MAX_CONCURRENCY = 5

API_BASE_URL = "CARBON_API_BASE_URL"
API_MAX_CONCURRENCY = "CARBON_API_MAX_CONCURRENCY"
DATABASE_URL = "CARBON_DATABASE_URL"
DATA_DIR = "CARBON_DATA_DIR"
SPARK_MASTER = "CARBON_SPARK_MASTER"
# A Spark Connect server (sc://host:15002): Spark then runs there, not in this process.
SPARK_REMOTE = "CARBON_SPARK_REMOTE"
# Extra Spark settings, "key=value" pairs separated by newlines or semicolons.
SPARK_CONF = "CARBON_SPARK_CONF"


def env_or_default(name: str, default: Any) -> Any:
    """An EnvVar when `name` is set (so the UI shows where the value comes from), else `default`."""
    return EnvVar(name) if os.environ.get(name) else default


def env_int_or_default(name: str, default: int) -> Any:
    return EnvVar.int(name) if os.environ.get(name) else default


def data_dir() -> str:
    """CARBON_DATA_DIR, else `data` (relative to the working directory)."""
    return os.environ.get(DATA_DIR) or DEFAULT_DATA_DIR


def spark_conf_from_env() -> dict[str, str]:
    """Parse CARBON_SPARK_CONF ("spark.executor.memory=4g; spark.sql.shuffle.partitions=64")."""
    raw = os.environ.get(SPARK_CONF, "")
    conf: dict[str, str] = {}
    for item in raw.replace("\n", ";").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{SPARK_CONF}: expected key=value, got {item.strip()!r}")
        conf[key.strip()] = value.strip()
    return conf
