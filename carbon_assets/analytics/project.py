"""The dbt project shipped in this package, and its manifest, prepared once per content.

`@dbt_assets` needs manifest.json when the definitions are imported, and a fresh clone or an
installed wheel has none. So `prepare_manifest` runs `dbt parse` (offline, no database, no
anonymous statistics) into a per-user cache folder named after a hash of the project's files
and of the dbt versions: a changed model gets a new folder, an unchanged one is parsed once.
The folder is outside the package, which may be read-only when installed. Several processes
import the definitions at once (webserver, daemon, run workers): a file lock lets one parse
while the others wait, and the result is renamed into place whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import distribution, version
from pathlib import Path

from carbon_assets.cli.dbt_command import COMMAND_NAME
from carbon_assets.storage import atomic_write_bytes

PROJECT_DIR = Path(__file__).resolve().parent / "dbt_project"
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "tests", "macros")
PARSE_TIMEOUT_SECONDS = 300
BUILDS_KEPT = 3
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def dbt_executable() -> str:
    """The dbt command this project runs: `carbon-assets-dbt` (cli/dbt_command.py: dbt, with a
    `--version` that neither imports dbt nor asks pypi.org) when it is installed beside this
    interpreter, else the `dbt` script installed with the dbt-core this interpreter imports."""
    beside = Path(sys.executable).parent / COMMAND_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return dbt_core_script()


def dbt_core_script() -> str:
    """dbt-core's own `dbt` script: PATH may not include an unactivated venv, and dbt-core may
    come from another environment's packages."""
    for file in distribution("dbt-core").files or ():
        if file.name == "dbt" and file.parent.name == "bin":
            script = Path(file.locate()).resolve()
            if script.exists():
                return str(script)
    return shutil.which("dbt") or "dbt"


def project_hash() -> str:
    """A hash of the project's files and of the dbt packages that read them."""
    digest = hashlib.sha256()
    for package in ("dbt-core", "dbt-postgres", "dagster-dbt"):
        digest.update(f"{package}={version(package)}\n".encode())
    for name in PROJECT_FILES:
        root = PROJECT_DIR / name
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(PROJECT_DIR)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Per-user: $XDG_CACHE_HOME or ~/.cache, else a private folder of ours in the temp dir."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "carbon-assets" / "dbt"
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    # Never a folder another user could have made for us in a shared temp dir.
    root = Path(tempfile.gettempdir()) / f"carbon-assets-dbt-{os.geteuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(root)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(f"{root} is not private to this user: remove it")
    return root


def prune_builds(target: Path, keep: int = BUILDS_KEPT) -> None:
    """Remove all but the newest `keep` build folders dagster-dbt made under `target` (one per
    `dbt build`, a few MB each, with the logs and run results worth reading after a failure):
    the models are rebuilt after every warehouse change, so they would pile up for ever."""
    builds = sorted(
        (path for path in target.iterdir() if path.is_dir()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in builds[keep:]:
        shutil.rmtree(path, ignore_errors=True)


def keep_partial_parse(build: Path, target: Path) -> None:
    """Keep the partial parse a build wrote in `build` as the one the next build starts from.

    `dbt parse` ran offline, with no warehouse named, so dbt finds the profile changed at every
    build and parses the whole project again; the build's own file names its warehouse, and
    the next build against the same warehouse reads it back. Replaced whole (builds of other
    warehouses may do the same at once); a build that wrote none leaves the old one."""
    written = build / PARTIAL_PARSE_FILE
    if written.is_file():
        atomic_write_bytes(target / PARTIAL_PARSE_FILE, written.read_bytes())


def dbt_env(target_path: Path) -> dict[str, str]:
    """The environment of a dbt command: offline, its logs with its artifacts."""
    return {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(target_path),
        "DBT_LOG_PATH": str(target_path),
    }


def prepare_manifest() -> Path:
    """The folder holding manifest.json for this project's content, parsed if missing."""
    root = cache_root()
    target = root / project_hash()
    if (target / "manifest.json").exists():
        return target
    with open(root / "parse.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if (target / "manifest.json").exists():
            return target  # another process parsed it while we waited
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            subprocess.run(
                [
                    dbt_executable(), "parse", "--quiet",
                    "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                    "--target-path", str(partial),
                ],
                cwd=partial,
                env=dbt_env(partial),
                check=True,
                capture_output=True,
                text=True,
                timeout=PARSE_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.CalledProcessError as error:
            shutil.rmtree(partial, ignore_errors=True)
            output = (error.stdout or "") + (error.stderr or "")
            raise RuntimeError(f"dbt parse of {PROJECT_DIR} failed:\n{output[-4000:]}") from None
        os.rename(partial, target)
    return target
