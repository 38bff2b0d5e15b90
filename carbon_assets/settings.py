"""Environment variables the project reads, with their defaults.

Resources leave a field unset (None) to mean "from the environment", and read the variable
when a run uses them. So a run config that sets one field of a resource keeps the others'
environment values, and a code server picks up the environment it runs in. An unset variable
falls back to its default, so a fresh clone works with no configuration at all. Each reader
below turns a bad value into a one-line error naming the variable.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

DEFAULT_API_BASE_URL = "https://api.carbonintensity.org.uk"
DEFAULT_DATA_DIR = "data"
DEFAULT_SPARK_MASTER = "local[*]"
DEFAULT_API_MAX_CONCURRENCY = 5
# The API revises values for at least 24 hours after a period ends
# (docs/api-contract.md, section 5).
DEFAULT_SETTLE_HOURS = 36.0
DEFAULT_SETTLE_DAYS = 3
DEFAULT_HEAL_DAYS = 30

API_BASE_URL = "CARBON_API_BASE_URL"
API_MAX_CONCURRENCY = "CARBON_API_MAX_CONCURRENCY"
DATABASE_URL = "CARBON_DATABASE_URL"
DATA_DIR = "CARBON_DATA_DIR"
# Where the lake is, when not under CARBON_DATA_DIR (which still holds the embedded PostgreSQL).
LAKE_URL = "CARBON_LAKE_URL"
SPARK_MASTER = "CARBON_SPARK_MASTER"
# A Spark Connect server (sc://host:15002): Spark then runs there, not in this process.
SPARK_REMOTE = "CARBON_SPARK_REMOTE"
# Extra Spark settings, "key=value" pairs separated by newlines or semicolons.
SPARK_CONF = "CARBON_SPARK_CONF"
# How long after a day's end its values are final; a day fetched earlier is fetched again.
SETTLE_HOURS = "CARBON_SETTLE_HOURS"
# How many complete days each daily run re-materializes (so revisions arrive).
SETTLE_DAYS = "CARBON_SETTLE_DAYS"
# How long after a day's end an incomplete day is still fetched again.
HEAL_DAYS = "CARBON_HEAL_DAYS"


class SettingError(ValueError):
    """An environment variable holds a value the project cannot use."""


def _number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingError(f"{name}={raw!r} is not {what}; unset it or fix it") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r} must be at least {minimum}")
    return value


def api_base_url() -> str:
    return os.environ.get(API_BASE_URL, "").strip() or DEFAULT_API_BASE_URL


def api_max_concurrency() -> int:
    return int(_number(API_MAX_CONCURRENCY, DEFAULT_API_MAX_CONCURRENCY, int, 1))


def database_url() -> str | None:
    """CARBON_DATABASE_URL, or None for the embedded PostgreSQL."""
    return os.environ.get(DATABASE_URL, "").strip() or None


def data_dir() -> str:
    """CARBON_DATA_DIR, else `data` (relative to the working directory)."""
    return os.environ.get(DATA_DIR, "").strip() or DEFAULT_DATA_DIR


def lake_url() -> str:
    """CARBON_LAKE_URL, else CARBON_DATA_DIR (else `data`): the lake's root.

    A local path, a `file://` URL (a local path too), or an object-store URL such as
    s3://bucket/prefix (any scheme fsspec knows whose package is installed: gs:// with gcsfs,
    abfs:// with adlfs). An object-store URL names no credentials: they come from the store's
    standard variables (AWS_ACCESS_KEY_ID...), so one in the URL is refused, unquoted.
    """
    raw = os.environ.get(LAKE_URL, "").strip()
    if not raw:
        return data_dir()
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return raw
    scheme = scheme.lower()
    if scheme == "file" and rest.startswith("/"):
        return unquote(rest)
    if "@" in rest.partition("/")[0] or "?" in rest:
        # Only the scheme is quoted: the URL carries credentials or options.
        raise SettingError(
            f"{LAKE_URL} is a {scheme}:// URL with credentials or options in it: give only "
            f"{scheme}://bucket/prefix and put credentials in the store's own variables "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for S3)"
        )
    if not rest.strip("/"):
        raise SettingError(f"{LAKE_URL}={raw!r} names no bucket: use {scheme}://bucket/prefix")
    _check_object_store(scheme)
    return f"{scheme}://{rest.strip('/')}"


def _check_object_store(scheme: str) -> None:
    import fsspec

    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise SettingError(
            f"{LAKE_URL} is a {scheme}:// URL, which no installed filesystem serves: use a "
            "local path, s3://bucket/prefix, or install the fsspec package for that scheme"
        ) from None
    except ImportError as error:
        raise SettingError(
            f"{LAKE_URL} is a {scheme}:// URL: {error} (install that package)"
        ) from None


def settle_hours() -> float:
    return _number(SETTLE_HOURS, DEFAULT_SETTLE_HOURS, float, 0)


def settle_days() -> int:
    return int(_number(SETTLE_DAYS, DEFAULT_SETTLE_DAYS, int, 1))


def heal_days() -> int:
    return int(_number(HEAL_DAYS, DEFAULT_HEAL_DAYS, int, 0))


def spark_conf_from_env() -> dict[str, str]:
    """Parse CARBON_SPARK_CONF ("spark.executor.memory=4g; spark.sql.shuffle.partitions=64")."""
    raw = os.environ.get(SPARK_CONF, "")
    conf: dict[str, str] = {}
    items = [item for item in raw.replace("\n", ";").split(";") if item.strip()]
    for position, item in enumerate(items, start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # The item is not echoed: a secret typed without its key would be printed.
            raise ValueError(f"{SPARK_CONF}: setting {position} is not key=value")
        conf[key.strip()] = value.strip()
    return conf
