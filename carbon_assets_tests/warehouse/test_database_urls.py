"""Malformed database URLs in every entry point: refused before anything connects, reported in
one line that says what to do and never echoes the URL or any part of its password.

Entry points: the URL helpers (parse, sqlalchemy_url, create_warehouse_engine,
resolve_warehouse_url), the WarehouseDatabase resource behind the IO manager and the checks,
and the commands db-init, dev and backfill. A run of the warehouse asset with such a URL is in
test_bad_inputs.py.
"""

from __future__ import annotations

import pandas as pd
import pytest

from carbon_assets import cli
from carbon_assets.postgres.secrets import (
    DatabaseUrlError,
    describe_error,
    mask_secrets,
    mask_url,
    parse_database_url,
)
from carbon_assets.warehouse.io_manager import PostgresWarehouseIOManager, WarehouseError
from carbon_assets.warehouse.resource import (
    WarehouseDatabase,
    create_warehouse_engine,
    resolve_warehouse_url,
    sqlalchemy_url,
)
from carbon_assets_tests.helpers import synthetic_gold_rows

# name -> (URL, the secret fragments that must never show, a phrase the message must hold)
MALFORMED_URLS = {
    "unescaped @ in the password": (
        "postgresql://postgres:Real7x@Pw0rdX9@127.0.0.1:5432/carbon",
        ("Real7x", "Pw0rdX9"),
        "percent-encode special characters",
    ),
    "libpq key=value string": (
        "host=127.0.0.1 user=postgres password=Sup3rS3cret dbname=carbon",
        ("Sup3rS3cret",),
        "libpq key=value string, not a URL",
    ),
    "port not a number": (
        "postgresql://carbon:Sup3rS3cret@127.0.0.1:fivefourthreetwo/carbon",
        ("Sup3rS3cret", "fivefourthreetwo"),
        "check the port is a number",
    ),
    "another database's scheme": (
        "mysql://carbon:Sup3rS3cret@127.0.0.1/carbon",
        ("Sup3rS3cret",),
        "use postgresql://",
    ),
    "empty": ("   ", (), "is empty"),
}
CASES = list(MALFORMED_URLS)
# An empty CARBON_DATABASE_URL / --database-url means the embedded server, by design.
NON_EMPTY_CASES = [case for case in CASES if MALFORMED_URLS[case][0].strip()]


def assert_reported_safely(message: str, name: str) -> None:
    url, secrets, phrase = MALFORMED_URLS[name]
    assert "\n" not in message.strip(), message
    assert phrase in message, message
    for secret in secrets:
        assert secret not in message, message
    if url.strip():
        assert url not in message


@pytest.mark.parametrize("name", CASES)
def test_the_url_helpers_refuse_a_malformed_url_without_echoing_it(name: str, tmp_path) -> None:
    url = MALFORMED_URLS[name][0]
    attempts = [
        lambda: parse_database_url(url, "CARBON_DATABASE_URL"),
        lambda: sqlalchemy_url(url),
        lambda: create_warehouse_engine(url),
    ]
    if name in NON_EMPTY_CASES:
        attempts.append(lambda: resolve_warehouse_url(url, tmp_path / "never-used"))
    for attempt in attempts:
        with pytest.raises(DatabaseUrlError) as raised:
            attempt()
        assert_reported_safely(str(raised.value), name)
        # Nothing chained that a traceback would print (SQLAlchemy's error may quote the URL).
        error = raised.value
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_the_message_names_where_the_url_came_from(tmp_path) -> None:
    url = MALFORMED_URLS["unescaped @ in the password"][0]
    with pytest.raises(DatabaseUrlError, match="^CARBON_DATABASE_URL has more than one '@'"):
        resolve_warehouse_url(url, tmp_path / "never-used")
    with pytest.raises(DatabaseUrlError, match="^DAGSTER_POSTGRES_URL has"):
        parse_database_url(url, "DAGSTER_POSTGRES_URL")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://carbon:p%40ss%2Fw%3Ard@db.example:5432/carbon?sslmode=require",
        "postgresql+psycopg2://postgres@/carbon?host=/data/with@sign/postgres",
        "postgres://u:p/ss@h/db",
        "postgresql://u@h/db?password=x&sslmode=require",
    ],
)
def test_well_formed_urls_are_accepted(url: str) -> None:
    assert parse_database_url(url).drivername.startswith("postgres")


def test_mask_url_hides_every_part_of_a_password_with_an_unescaped_at() -> None:
    url = MALFORMED_URLS["unescaped @ in the password"][0]
    assert mask_url(url) == "postgresql://postgres:***@127.0.0.1:5432/carbon"
    # What libpq said when such a URL was used before it was parsed first.
    driver_error = 'could not translate host name "Pw0rdX9@127.0.0.1" to address'
    scrubbed = mask_secrets(f"{driver_error} ({url})", url)
    assert "Real7x" not in scrubbed and "Pw0rdX9" not in scrubbed, scrubbed
    # No URL given: anything shaped like user:password@ is masked to its last '@'.
    assert (
        mask_secrets(f"see {url} now") == "see postgresql://postgres:***@127.0.0.1:5432/carbon now"
    )


def test_describe_error_is_one_masked_line_with_what_to_check() -> None:
    import psycopg2

    url = "postgresql://carbon:Sup3rS3cret@no-such-host.invalid/carbon"
    with pytest.raises(psycopg2.OperationalError) as raised:
        psycopg2.connect(url, connect_timeout=5)
    line = describe_error(raised.value, url)
    assert line.startswith("OperationalError: ") and "\n" not in line
    assert "check the URL's host, port, user and password" in line
    assert "Sup3rS3cret" not in line


@pytest.mark.parametrize("name", NON_EMPTY_CASES)
def test_the_warehouse_resource_and_io_manager_refuse_it_without_echoing_it(name: str) -> None:
    url = MALFORMED_URLS[name][0]
    warehouse = WarehouseDatabase(database_url=url)
    with pytest.raises(DatabaseUrlError) as raised:
        warehouse.engine()  # what the warehouse checks call
    assert_reported_safely(str(raised.value), name)

    from dagster import AssetKey, build_output_context

    manager = PostgresWarehouseIOManager(warehouse=warehouse)
    rows: pd.DataFrame = synthetic_gold_rows("2024-01-01", 1)
    context_of_the_daily_table = build_output_context(asset_key=AssetKey("carbon_intensity_daily"))
    with context_of_the_daily_table as context, pytest.raises(WarehouseError) as raised:
        manager.handle_output(context, rows)
    assert "the table is unchanged" in str(raised.value)
    assert_reported_safely(str(raised.value), name)


@pytest.mark.parametrize("name", NON_EMPTY_CASES)
def test_db_init_reports_a_malformed_url_in_one_line(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = MALFORMED_URLS[name][0]
    assert cli.main(["db-init", "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("db-init failed: --database-url (or $CARBON_DATABASE_URL) ")
    assert_reported_safely(captured.err, name)


@pytest.fixture
def local_stack_env(tmp_path, monkeypatch):
    """A project folder for `dev`/`demo`, with the variables they set restored afterwards."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("CARBON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    return monkeypatch


# The demo is not here: it sets both variables itself, whatever the environment says.
@pytest.mark.parametrize("command", [["dev"], ["backfill", "2024-01-01", "2024-01-02"]])
@pytest.mark.parametrize("variable", ["CARBON_DATABASE_URL", "DAGSTER_POSTGRES_URL"])
@pytest.mark.parametrize("name", NON_EMPTY_CASES)
def test_dev_and_backfill_report_a_malformed_url_in_one_line_before_starting_anything(
    command: list[str], variable: str, name: str, local_stack_env, capsys, tmp_path
) -> None:
    url = MALFORMED_URLS[name][0]
    if variable == "DAGSTER_POSTGRES_URL":
        # A valid warehouse URL (never connected to: the instance URL is refused first).
        local_stack_env.setenv("CARBON_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    local_stack_env.setenv(variable, url)
    assert cli.main(command) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{command[0]} failed: {variable} ")
    assert_reported_safely(captured.err, name)
    assert not (tmp_path / "data").exists()  # no embedded server was started


def test_dev_reports_an_unreachable_server_in_one_masked_line(local_stack_env, capsys) -> None:
    local_stack_env.setenv(
        "CARBON_DATABASE_URL", "postgresql://carbon:Sup3rS3cret@no-such-host.invalid:5432/carbon"
    )
    assert cli.main(["dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dev failed: OperationalError: could not translate host name")
    assert err.count("\n") == 1 and "Sup3rS3cret" not in err
    assert "check the URL's host, port, user and password" in err
