"""`carbon-assets db-url --tcp` and `carbon-assets stop` on a real embedded server.

The TCP port is on 127.0.0.1 only, lets in one read-only role by its password (printed once,
kept in a 0600 pgpass file) and nobody else, leaves the socket private and trusted, survives
later starts of other commands, and is gone after `--close` or a restart.
"""

from __future__ import annotations

import os
import shutil
import stat
from urllib.parse import urlsplit

import psycopg2
import pytest

from carbon_assets import cli
from carbon_assets.postgres.embedded import (
    SOCKET_NAME,
    TCP_PASSFILE,
    TCP_ROLE,
    embedded_database_url,
    embedded_server,
    stop_embedded_server,
    tcp_port,
)
from carbon_assets_tests.postgres_helpers import discard_server, query, server_data_dir


@pytest.fixture
def data_dir():
    folder = server_data_dir("carbon-test-pg-tcp-") / "data"
    try:
        yield folder
    finally:
        discard_server(folder)
        shutil.rmtree(folder.parent, ignore_errors=True)


def command(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def connect(port: int, **options):
    return psycopg2.connect(host="127.0.0.1", port=port, dbname="carbon", **options)


def server_pid(data_dir) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def test_the_tcp_port_lets_in_the_reader_by_password_only(data_dir, capsys):
    socket_url = embedded_database_url(data_dir, "carbon", driver=None)
    with psycopg2.connect(socket_url) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE readings (value int); INSERT INTO readings VALUES (42)")
    connection.close()

    code, url, note = command(capsys, "db-url", "--tcp", "--data-dir", str(data_dir))
    assert code == 0, note
    parts = urlsplit(url)
    assert (parts.hostname, parts.username, parts.path) == ("127.0.0.1", TCP_ROLE, "/carbon")
    password, port = parts.password, parts.port
    passfile = data_dir / TCP_PASSFILE
    assert str(passfile) in note and "0600" in note
    assert stat.S_IMODE(os.lstat(passfile).st_mode) == 0o600
    assert passfile.read_text() == f"127.0.0.1:{port}:*:{TCP_ROLE}:{password}\n"

    reader = connect(port, user=TCP_ROLE, password=password)
    with reader, reader.cursor() as cursor:
        cursor.execute("SELECT value FROM readings")
        assert cursor.fetchall() == [(42,)]
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone() == ("127.0.0.1",)
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("INSERT INTO readings VALUES (1)")
    reader.close()
    for refused in ({"user": TCP_ROLE}, {"user": TCP_ROLE, "password": "guess"}):
        with pytest.raises(psycopg2.OperationalError):
            connect(port, **refused)
    for password_given in ({}, {"password": password}):  # the superuser: never over TCP
        with pytest.raises(psycopg2.OperationalError, match="pg_hba.conf rejects"):
            connect(port, user="postgres", **password_given)

    # The socket: as private and as trusted as without TCP, under the URLs given out before.
    socket_folder = data_dir / "postgres"
    assert stat.S_IMODE(os.lstat(socket_folder).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(socket_folder / f".s.PGSQL.{port}").st_mode) == 0o700
    assert query(socket_url, "SELECT current_user") == [("postgres",)]

    # Later calls: the same port, the password masked; other commands do not restart it.
    pid = server_pid(data_dir)
    code, again, note = command(capsys, "db-url", "--tcp", "--data-dir", str(data_dir))
    assert code == 0 and again == url.replace(password, "***") and password not in note
    embedded_server(data_dir)
    assert server_pid(data_dir) == pid and tcp_port(data_dir) == port


def test_close_and_any_restart_leave_no_tcp_port(data_dir, capsys):
    code, url, _ = command(capsys, "db-url", "--tcp", "--data-dir", str(data_dir))
    assert code == 0
    port, password = urlsplit(url).port, urlsplit(url).password
    assert command(capsys, "db-url", "--tcp", "--close", "--data-dir", str(data_dir))[0] == 0
    assert tcp_port(data_dir) is None
    with pytest.raises(psycopg2.OperationalError):
        connect(port, user=TCP_ROLE, password=password)
    socket_url = embedded_database_url(data_dir, "carbon", driver=None)
    assert query(socket_url, "SHOW listen_addresses") == [("",)]
    assert not (data_dir / "postgres" / SOCKET_NAME).is_symlink()

    # Opened again: the same password and port. Then a restart by another command: closed.
    code, again, _ = command(capsys, "db-url", "--tcp", "--data-dir", str(data_dir))
    assert code == 0 and again == url.replace(password, "***")
    connect(port, user=TCP_ROLE, password=password).close()
    assert stop_embedded_server(data_dir)
    embedded_server(data_dir)
    assert tcp_port(data_dir) is None
    assert query(socket_url, "SHOW listen_addresses") == [("",)]


def test_stop_stops_the_server_and_says_so(data_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no project here whose instance a `make dev` could hold
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    embedded_server(data_dir)
    code, out, _ = command(capsys, "stop", "--data-dir", str(data_dir))
    assert (code, out) == (0, f"Stopped the embedded PostgreSQL in {data_dir / 'postgres'}")
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    code, out, _ = command(capsys, "stop", "--data-dir", str(data_dir))
    assert (code, out) == (0, f"Not running: {data_dir / 'postgres'}")


def test_stop_refuses_while_a_stack_holds_its_instance(data_dir, capsys, tmp_path, monkeypatch):
    from carbon_assets.cli import local_stack

    embedded_server(data_dir)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    holder = local_stack.instance_lock(tmp_path / "home", "carbon-assets dev")
    try:
        code, _, error = command(capsys, "stop", "--data-dir", str(data_dir))
        assert code == 1 and error.startswith("stop refused: The Dagster instance of ")
        assert f"pid {os.getpid()} (carbon-assets dev)" in error and "--force" in error
        assert tcp_port(data_dir) is None and (data_dir / "postgres" / "postmaster.pid").exists()
    finally:
        os.close(holder)
    code, out, _ = command(capsys, "stop", "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("Stopped")


def test_port_and_close_need_tcp(capsys, tmp_path):
    code, _, error = command(capsys, "db-url", "--close", "--data-dir", str(tmp_path))
    assert code == 2 and "go with --tcp" in error
