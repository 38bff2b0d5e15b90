"""The warehouse database: URLs and secrets, the embedded PostgreSQL, the schema in sql/.

Runs against real PostgreSQL servers: the service on 127.0.0.1:5432 (each test gets its own
throw-away database, dropped WITH (FORCE) afterwards) and an embedded pgserver in a temporary
data directory, stopped when the session ends. The helpers at the top are shared with
test_warehouse_load.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from carbon_assets import cli
from carbon_assets.postgres.embedded import (
    embedded_database_url,
    embedded_server,
    stop_embedded_server,
)
from carbon_assets.postgres.secrets import mask_secrets, mask_url
from carbon_assets.warehouse.migrations import (
    SQL_DIR,
    applied_migrations,
    apply_schema,
    discover_migrations,
)
from carbon_assets.warehouse.resource import (
    create_warehouse_engine,
    resolve_warehouse_url,
    sqlalchemy_url,
)
from carbon_assets_tests.postgres_helpers import (
    SERVERS,
    create_database,
    discard_server,
    drop_database,
    query,
    role_with_password,
    server_data_dir,
)


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database(server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh database on `server`, dropped after the test."""
    data_dir = request.getfixturevalue("embedded_dir") if server == "embedded" else None
    name, url = create_database(server, data_dir)
    yield url
    drop_database(server, data_dir, name)


@pytest.fixture
def service_database() -> Iterator[str]:
    name, url = create_database("service", None)
    yield url
    drop_database("service", None, name)


@pytest.fixture
def password_role() -> Iterator[tuple[str, str]]:
    with role_with_password() as url_and_password:
        yield url_and_password


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://carbon:hunter2@db.example:5432/carbon",
            "postgresql://carbon:***@db.example:5432/carbon",
        ),
        (
            "postgresql+psycopg2://u:p%40ss%2Fword@h/db?sslmode=require",
            "postgresql+psycopg2://u:***@h/db?sslmode=require",
        ),
        (
            "postgresql://u@h/db?password=hunter2&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        (
            "postgresql://postgres@/carbon?host=/data/postgres",
            "postgresql://postgres@/carbon?host=/data/postgres",
        ),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_secrets_scrubs_the_password_from_any_text() -> None:
    url = "postgresql://carbon:p%40ss@db.example/carbon"
    text = f"could not connect to {url}: password p@ss (encoded p%40ss) rejected; dsn password=p@ss"
    scrubbed = mask_secrets(text, url)
    assert "p@ss" not in scrubbed and "p%40ss" not in scrubbed
    assert "postgresql://carbon:***@db.example/carbon" in scrubbed
    # Without the URL, anything shaped like user:password@ or password= is still masked.
    assert (
        mask_secrets("x postgresql://a:zz9@h/d y password=zz9")
        == "x postgresql://a:***@h/d y password=***"
    )


def test_mask_secrets_keeps_words_that_merely_contain_the_password() -> None:
    url = "postgresql://postgres:postgres@db.example/carbon"
    text = f"connection to {url} failed; user postgres, password 'postgres'"
    # The user name equals the password here, so it is masked too; "postgresql" is not.
    assert mask_secrets(text, url) == (
        "connection to postgresql://***:***@db.example/carbon failed; user ***, password '***'"
    )


def test_sqlalchemy_url_makes_psycopg2_explicit_and_refuses_other_drivers() -> None:
    assert sqlalchemy_url("postgresql://u@h/db").startswith("postgresql+psycopg2://")
    assert sqlalchemy_url("postgres://u@h/db").startswith("postgresql+psycopg2://")
    with pytest.raises(ValueError, match="uses the scheme .mysql.") as raised:
        sqlalchemy_url("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(raised.value)


def test_create_warehouse_engine_caches_one_pre_pinging_engine_per_url(
    service_database: str,
) -> None:
    engine = create_warehouse_engine(service_database)
    assert create_warehouse_engine(service_database) is engine
    assert engine.pool._pre_ping


def test_resolve_warehouse_url_prefers_the_given_url(embedded_dir: Path) -> None:
    assert resolve_warehouse_url("postgresql://u@h/db", embedded_dir) == "postgresql://u@h/db"
    url = resolve_warehouse_url(None, embedded_dir)
    assert url.startswith("postgresql+psycopg2://postgres@/carbon?host=")
    assert query(url, "SELECT current_database()") == [("carbon",)]


# --- migrations ------------------------------------------------------------------------------


def test_discover_migrations_reads_numbered_files_and_rejects_misnamed_ones(tmp_path: Path) -> None:
    versions = [m.version for m in discover_migrations()]
    assert versions[0] == "001" and versions == sorted(versions)
    (tmp_path / "001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "2_bad_name.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNN_lowercase_words.sql"):
        discover_migrations(tmp_path)


def test_sql_files_never_drop_anything() -> None:
    for path in SQL_DIR.glob("*.sql"):
        code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
        assert "drop " not in code.lower(), path.name


def test_apply_schema_creates_the_tables_and_records_the_version(database: str) -> None:
    engine = create_warehouse_engine(database)
    assert apply_schema(engine) == ["001", "002", "003", "004", "005"]
    tables = query(
        database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'carbon_data'"
        " ORDER BY 1",
    )
    assert tables == [
        ("analytics_builds",),
        ("carbon_intensity_daily",),
        ("carbon_intensity_halfhourly",),
        ("carbon_intensity_national_daily",),
        ("carbon_intensity_national_halfhourly",),
        ("dim_region",),
        ("fetch_source",),
        ("loaded_days",),
        ("schema_migrations",),
    ]
    assert set(applied_migrations(engine)) == {"001", "002", "003", "004", "005"}
    columns = query(
        database,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'carbon_data' AND table_name = 'carbon_intensity_daily'"
        " ORDER BY ordinal_position",
    )
    assert [c[0] for c in columns][:16] == [
        "regionid",
        "date_recorded",
        "shortname",
        "dno",
        "intensity_avg",
        "index_mode",
        "fuel_biomass",
        "fuel_coal",
        "fuel_imports",
        "fuel_gas",
        "fuel_nuclear",
        "fuel_other",
        "fuel_hydro",
        "fuel_solar",
        "fuel_wind",
        "half_hours",
    ]
    assert {c[0]: c[2] for c in columns}["fuel_wind"] == "YES"  # a missing fuel is NULL


def catalog_snapshot(url: str) -> dict[str, list[tuple]]:
    """Everything the DDL defines in carbon_data, plus row counts, as comparable lists."""
    return {
        "columns": query(
            url,
            "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale,"
            " is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'carbon_data' ORDER BY 1, 2",
        ),
        "constraints": query(
            url,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'carbon_data'::regnamespace ORDER BY 1, 2",
        ),
        "indexes": query(
            url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'carbon_data'"
            " ORDER BY 1",
        ),
        "comments": query(
            url,
            "SELECT c.relname, d.objsubid, d.description FROM pg_description d"
            " JOIN pg_class c ON c.oid = d.objoid"
            " WHERE c.relnamespace = 'carbon_data'::regnamespace ORDER BY 1, 2",
        ),
        "table_oids": query(
            url,
            "SELECT relname, oid::int FROM pg_class"
            " WHERE relnamespace = 'carbon_data'::regnamespace ORDER BY 1",
        ),
        "rows": query(
            url,
            "SELECT (SELECT count(*) FROM carbon_data.dim_region),"
            " (SELECT count(*) FROM carbon_data.carbon_intensity_daily),"
            " (SELECT count(*) FROM carbon_data.schema_migrations)",
        ),
    }


def test_applying_the_ddl_again_changes_nothing_and_keeps_rows(database: str) -> None:
    engine = create_warehouse_engine(database)
    apply_schema(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO carbon_data.dim_region VALUES (1, 'North Scotland', 'SSEN', now())"
        )
        connection.exec_driver_sql(
            "INSERT INTO carbon_data.carbon_intensity_daily"
            " (regionid, date_recorded, shortname, dno, intensity_avg, half_hours)"
            " VALUES (1, '2024-01-01', 'North Scotland', 'SSEN', 12.5, 48)"
        )
    before = catalog_snapshot(database)

    assert apply_schema(engine) == []  # the runner: nothing pending
    # The files themselves run again in order, as `psql -f` would: every statement is
    # idempotent.
    with engine.begin() as connection:
        for path in sorted(SQL_DIR.glob("*.sql")):
            connection.connection.cursor().execute(path.read_text())

    assert catalog_snapshot(database) == before
    assert before["rows"] == [(1, 1, 5)]  # a region, a daily row, five applied files


def test_two_processes_applying_at_once_apply_each_file_once(database: str) -> None:
    # Separate engines = separate sessions, as two processes would have.
    engines = [
        sqlalchemy.create_engine(sqlalchemy_url(database), poolclass=NullPool) for _ in range(2)
    ]
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def apply(engine: sqlalchemy.Engine) -> None:
        barrier.wait()
        try:
            results.append(apply_schema(engine))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=apply, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    # Each file once, by whichever process got to it first.
    assert sorted(version for applied in results for version in applied) == [
        "001",
        "002",
        "003",
        "004",
        "005",
    ]
    assert query(database, "SELECT version FROM carbon_data.schema_migrations ORDER BY 1") == [
        ("001",),
        ("002",),
        ("003",),
        ("004",),
        ("005",),
    ]


def test_a_failing_migration_leaves_nothing_behind(database: str, tmp_path: Path) -> None:
    shutil.copy(SQL_DIR / "001_carbon_data_schema.sql", tmp_path)
    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE carbon_data.half_done (x int);\nSELECT 1 / 0;\n"
    )
    engine = create_warehouse_engine(database)
    with pytest.raises(RuntimeError, match="002_broken.sql failed"):
        apply_schema(engine, tmp_path)
    assert set(applied_migrations(engine)) == {"001"}
    assert query(database, "SELECT to_regclass('carbon_data.half_done')") == [(None,)]

    (tmp_path / "002_broken.sql").write_text(
        "CREATE TABLE IF NOT EXISTS carbon_data.half_done (x int);\n"
    )
    assert apply_schema(engine, tmp_path) == ["002"]
    assert apply_schema(engine, tmp_path) == []


# --- the CLI ---------------------------------------------------------------------------------


def test_db_init_applies_once_and_never_prints_the_password(
    password_role: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, password = password_role
    assert cli.main(["db-init", "--database-url", url]) == 0
    first = capsys.readouterr()
    assert cli.main(["db-init", "--database-url", url]) == 0
    second = capsys.readouterr()
    assert "Applied 001, 002" in first.out and "up to date" in second.out
    assert ":***@127.0.0.1" in first.out
    for output in (first.out, first.err, second.out, second.err):
        assert password not in output


def test_db_init_failure_is_reported_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://nobody:Hunter2-secret@127.0.0.1:5432/no_such_database_here"
    assert cli.main(["db-init", "--database-url", url]) == 1
    captured = capsys.readouterr()
    assert "db-init failed" in captured.err
    assert "Hunter2-secret" not in captured.out + captured.err


def test_db_url_prints_a_url_that_psycopg2_sqlalchemy_and_dagster_postgres_accept(
    embedded_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster_postgres import PostgresRunStorage

    assert cli.main(["db-url", "--data-dir", str(embedded_dir), "--database", "dagster_test"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("postgresql://postgres@/dagster_test?host=/")
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("dagster_test",)
    finally:
        connection.close()
    assert query(url, "SELECT 1") == [(1,)]
    storage = PostgresRunStorage(postgres_url=url)  # what dagster.yaml's postgres_url does
    assert storage.get_runs() == []
    storage.dispose()

    assert (
        cli.main(
            [
                "db-url",
                "--data-dir",
                str(embedded_dir),
                "--database",
                "dagster_test",
                "--driver",
                "psycopg2",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == url.replace("postgresql://", "postgresql+psycopg2://")


# --- the embedded server ---------------------------------------------------------------------


def test_embedded_server_is_idempotent_and_restarts_after_a_stop(embedded_dir: Path) -> None:
    first = embedded_server(embedded_dir)
    assert embedded_server(embedded_dir) is first
    url = embedded_database_url(embedded_dir, "carbon")
    assert stop_embedded_server(embedded_dir) is True
    assert stop_embedded_server(embedded_dir) is False  # already stopped
    with pytest.raises(sqlalchemy.exc.OperationalError):
        query(url, "SELECT 1")
    embedded_server(embedded_dir)
    assert query(url, "SELECT 1") == [(1,)]


def test_two_processes_starting_one_embedded_server_share_it() -> None:
    data_dir = server_data_dir("carbon-test-pg-race-") / "data"  # not created yet: both race
    command = [sys.executable, "-m", "carbon_assets.cli", "db-url", "--data-dir", str(data_dir)]
    try:
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=60) for process in processes]
        assert [process.returncode for process in processes] == [0, 0], outputs
        urls = {out.strip() for out, _ in outputs}
        assert len(urls) == 1
        url = urls.pop()
        assert query(url, "SELECT current_database()") == [("carbon",)]
        # The warehouse's schema is there before any load: the README's queries answer.
        assert query(url, "SELECT count(*) FROM carbon_data.carbon_intensity_daily") == [(0,)]
    finally:
        discard_server(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_a_data_dir_too_long_for_a_unix_socket_still_gets_a_working_url() -> None:
    base = server_data_dir("carbon-test-pg-long-")
    data_dir = base / ("very_long_directory_name_" * 4) / "data"  # socket path > 107 bytes
    socket_dir: Path | None = None
    try:
        url = embedded_database_url(data_dir, "carbon", driver=None)
        socket_dir = Path(url.split("?host=", 1)[1])
        assert len(str(data_dir / "postgres" / ".s.PGSQL.5432")) > 107
        assert not str(socket_dir).startswith(str(data_dir))  # moved to a short private folder
        assert query(url, "SELECT current_database()") == [("carbon",)]
    finally:
        discard_server(data_dir)
        shutil.rmtree(base, ignore_errors=True)
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)


def test_the_models_are_current_only_when_built_from_the_same_models_after_the_last_load(
    service_database: str,
) -> None:
    from carbon_assets.analytics.builds import database_now, models_current, record_build

    engine = create_warehouse_engine(service_database)
    apply_schema(engine)
    assert not models_current(engine, "v1")  # never built, never loaded
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO carbon_data.loaded_days (table_name, date_recorded, input_sha256,"
            " row_count) VALUES ('carbon_intensity_daily', '2024-01-01', 'x', 18)"
        )
    assert not models_current(engine, "v1")  # loaded, never built
    record_build(engine, database_now(engine), "v1")
    assert models_current(engine, "v1")
    assert not models_current(engine, "v2")  # a model changed since
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE carbon_data.loaded_days SET loaded_at = now()")
    assert not models_current(engine, "v1")  # a day loaded since
    record_build(engine, database_now(engine), "v2")
    assert models_current(engine, "v2") and not models_current(engine, "v1")
