"""Where the lake's files live: a local folder or an object store, behind one small interface.

A `Storage` is a folder of the lake: `storage / "silver"` is its silver folder, and files are
named by keys relative to it ("date_recorded=2024-01-01/part-0.parquet"). Every layer reads
and writes the lake through it, so none of them knows whether the lake is on disk or in a
bucket:

    LocalStorage    a folder (CARBON_LAKE_URL unset, a path or file:///path)
    ObjectStorage   s3://bucket/prefix, or any fsspec scheme whose package is installed
                    (gs:// with gcsfs, abfs:// with adlfs)

Writes are atomic in both: a reader sees a file's old content or its new one, never a part.
On disk a staged file is fsynced and renamed over the target (and the folder fsynced); in an
object store a file is written as one PUT, which is atomic. A range written all or nothing
(silver's and gold's day files) is staged first (`StagingArea`) and published once every day
is staged: a rename on disk, a server-side copy in an object store. Staged files live under a
name starting with TEMP_PREFIX that no reader lists.

Credentials never pass through here: fsspec's S3 filesystem takes the endpoint and the keys
from the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION) or the machine's role, so a Storage is picklable and shows only its URL.
No Dagster: Spark's Python workers use it to read bronze and write day files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fnmatch
import os
import secrets
import shutil
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"
STAGING_PREFIX = f"{TEMP_PREFIX}stage-"
# Longer than any run lives (the runs' dagster/max_runtime tag, automation.py): a staging
# area older than this belongs to no live run, wherever that run was.
STAGING_AREA_MAX_AGE = dt.timedelta(hours=6)


class LakeWriteError(OSError):
    """A lake file could not be written; the message names the file and says what to do (the
    operating system's own message names no file when a disk is full)."""

    def __str__(self) -> str:
        return self.strerror


class StagingAreaGone(RuntimeError):
    """A worker staged a file after its write had failed and its area was discarded."""


def _join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part and part.strip("/"))


def _file_version(info: os.stat_result) -> object:
    """A local file's version: a replaced file (written aside, renamed over) is a new inode."""
    return (info.st_dev, info.st_ino, info.st_mtime_ns)


def _object_version(info: dict) -> object:
    """An object's version from what the store lists of it."""
    return info.get("ETag") or info.get("LastModified") or info.get("size")


class Storage(ABC):
    """A folder of the lake. Keys are '/'-separated and relative to it."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The folder as shown to people: a local path or an object-store URL."""

    def location(self, key: str = "") -> str:
        """A file's full path or URL (messages, metadata, {date: file} maps)."""
        return _join(self.url, key) if key else self.url

    @property
    def local_path(self) -> Path | None:
        """The folder on this machine's disk, or None for an object store."""
        return None

    @abstractmethod
    def __truediv__(self, name: str) -> Storage:
        """The subfolder `name`."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """A file's bytes; FileNotFoundError naming it when there is none."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A file open for reading (seekable: Parquet readers read the footer first)."""

    @abstractmethod
    def read_start(self, key: str, size: int) -> bytes:
        """A file's first `size` bytes (fewer if it is shorter); FileNotFoundError if none."""

    @abstractmethod
    def write_bytes(self, key: str, payload: bytes) -> None:
        """Write a file atomically: readers see the old content or the new, never a part."""

    @abstractmethod
    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary file to write `key` through, in place atomically when the block ends
        without an error (left as it was otherwise): for files too big to build in memory."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def sizes(self, prefix: str = "") -> dict[str, int]:
        """{key: size in bytes} of every file under `prefix` (all of them for "")."""

    @abstractmethod
    def versions(self, prefix: str = "") -> dict[str, object]:
        """{key: version (see `version`)} of every file under `prefix`, from one listing."""

    def files(self, prefix: str = "") -> list[str]:
        """The keys of every file under `prefix` (all of them for ""), sorted."""
        return sorted(self.sizes(prefix))

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, object]:
        """A file's bytes and its version (see `version`); FileNotFoundError if none."""

    def move_unless_replaced(self, key: str, new_key: str, version: object) -> bool:
        """Move a file read at `version` to `new_key`; False when it has been replaced since
        (someone stored a new one), True once it is gone (moved, or moved by another)."""
        current = self.version(key)
        if current is None:
            return True
        if current != version:
            return False
        try:
            self.move(key, new_key)
        except FileNotFoundError:  # another reader moved it first
            return True
        return True

    def existing(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` name a file."""
        return {key for key in keys if self.exists(key)}

    def glob(self, pattern: str, prefix: str = "") -> list[str]:
        """The keys under `prefix` matching `pattern` (fnmatch on the whole key), sorted."""
        return [key for key in self.files(prefix) if fnmatch.fnmatchcase(key, pattern)]

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete a file or a folder with all it holds; True if there was one."""

    @abstractmethod
    def version(self, key: str) -> object | None:
        """What changes whenever the file is replaced (None when there is none)."""

    @abstractmethod
    def move(self, key: str, new_key: str) -> None:
        """Move a file to another key of this folder (a damaged file set aside)."""

    @abstractmethod
    def staging_area(self) -> StagingArea:
        """A new, empty area to stage files in before publishing them (`publish`)."""

    @abstractmethod
    def publish(self, staged_key: str, key: str) -> None:
        """A staged file takes `key`'s place atomically."""

    def remove_leftovers(self) -> list[str]:
        """Delete what interrupted writes left (staged files, and the staging areas of runs
        that have ended: stale_area); returns their keys. Another live run's area stays."""
        leftovers = [
            key
            for key in self.files()
            if any(_is_leftover(part) for part in PurePosixPath(key).parts)
        ]
        for key in leftovers:
            self.delete(key)
        return leftovers

    def read_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """{key: bytes} of several files (FileNotFoundError if one is missing)."""
        return {key: self.read_bytes(key) for key in keys}


class StagingArea:
    """Files staged by one write (the workers of a Spark job put them here), published by the
    driver once all are staged or discarded. Picklable: it is sent to Spark's workers.

    On disk the area is a folder the driver creates and workers only write into: once it is
    discarded, a worker still running (a task of a failed job that Spark has not yet stopped)
    can no longer stage anything, so a failed write leaves nothing behind."""

    def __init__(self, storage: Storage, key: str):
        self.storage = storage
        self.key = key

    def put(self, destination: str, payload: bytes) -> str:
        """Stage the file meant to take `destination`'s place (a key of the storage; errors
        name it, not the area); returns the staged file's key (for `Storage.publish`)."""
        key = _join(self.key, destination.replace("/", "__"))
        self.storage._put_staged(key, payload, destination)
        return key

    def discard(self) -> None:
        self.storage.delete(self.key)


class LocalStorage(Storage):
    """A folder on this machine (or a mount every process sees at the same path)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def url(self) -> str:
        return str(self.root)

    @property
    def local_path(self) -> Path:
        return self.root

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def location(self, key: str = "") -> str:
        return str(self.path(key))

    def __truediv__(self, name: str) -> LocalStorage:
        return LocalStorage(self.root / name)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def read_start(self, key: str, size: int) -> bytes:
        with open(self.path(key), "rb") as handle:
            return handle.read(size)

    def write_bytes(self, key: str, payload: bytes) -> None:
        atomic_write_bytes(self.path(key), payload)

    def writer(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return atomic_writer(self.path(key))

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def sizes(self, prefix: str = "") -> dict[str, int]:
        return {key: info.st_size for key, info in self._stats(prefix)}

    def versions(self, prefix: str = "") -> dict[str, object]:
        return {key: _file_version(info) for key, info in self._stats(prefix)}

    def _stats(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        base = self.path(prefix)
        if not base.is_dir():
            return
        for folder, _, names in os.walk(base):
            relative = Path(folder).relative_to(self.root).as_posix()
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # removed while listed
                    info = os.stat(os.path.join(folder, name))
                    yield _join(relative if relative != "." else "", name), info

    def files(self, prefix: str = "") -> list[str]:
        base = self.path(prefix)
        if not base.is_dir():
            return []
        found = []
        for folder, _, names in os.walk(base):
            relative = Path(folder).relative_to(self.root).as_posix()
            found.extend(_join(relative if relative != "." else "", name) for name in names)
        return sorted(found)

    def read_versioned(self, key: str) -> tuple[bytes, object]:
        with open(self.path(key), "rb") as handle:
            info = os.fstat(handle.fileno())
            return handle.read(), _file_version(info)

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            return True
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def version(self, key: str) -> object | None:
        try:
            info = os.stat(self.path(key))
        except FileNotFoundError:
            return None
        return _file_version(info)

    def move(self, key: str, new_key: str) -> None:
        target = self.path(new_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path(key), target)

    def staging_area(self) -> StagingArea:
        key = new_area_name()
        self.path(key).mkdir(parents=True)
        return StagingArea(self, key)

    def _put_staged(self, key: str, payload: bytes, destination: str) -> None:
        # No mkdir: the area exists until it is published or discarded (StagingArea), and
        # nobody reads a file in it before the driver publishes it.
        path = self.path(key)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            with os.fdopen(os.open(path, flags, 0o666), "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        except FileNotFoundError:
            raise StagingAreaGone(f"{path.parent} was discarded: its write failed") from None
        except OSError as error:
            raise _write_error(self.path(destination), len(payload), error) from error

    def remove_leftovers(self) -> list[str]:
        found = sorted(self.root.rglob(f"{TEMP_PREFIX}*")) if self.root.is_dir() else []
        leftovers = [path for path in found if _is_leftover(path.name)]
        for path in leftovers:
            self.delete(str(path.relative_to(self.root)))
        return [str(path) for path in leftovers]

    def publish(self, staged_key: str, key: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        publish(self.path(staged_key), target)


class ObjectStorage(Storage):
    """A prefix of an object store, through fsspec (s3fs for s3://)."""

    def __init__(self, url: str):
        scheme, _, rest = url.partition("://")
        self.scheme = scheme.lower()
        self.prefix = rest.strip("/")  # bucket/prefix

    def __repr__(self) -> str:
        return f"ObjectStorage({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectStorage) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict:
        return {"scheme": self.scheme, "prefix": self.prefix}  # never the filesystem

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.prefix}"

    @cached_property
    def fs(self):
        import fsspec  # an optional scheme's package is imported only when the lake uses it

        # No listings cache: other processes (Spark's workers, other runs) write the lake.
        return fsspec.filesystem(self.scheme, use_listings_cache=False)

    def _path(self, key: str) -> str:
        return _join(self.prefix, key)

    def __truediv__(self, name: str) -> ObjectStorage:
        return ObjectStorage(_join(self.url, name) if name else self.url)

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def open(self, key: str) -> BinaryIO:
        return self.fs.open(self._path(key), "rb")

    def read_start(self, key: str, size: int) -> bytes:
        return self.fs.cat_file(self._path(key), start=0, end=size)

    def write_bytes(self, key: str, payload: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(key), payload)
        except OSError as error:
            raise LakeWriteError(
                error.errno or errno.EIO,
                f"Writing {self.location(key)} failed: {error}; the object is unchanged",
                self.location(key),
            ) from error

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        # Spooled to a local temporary file, then uploaded whole: the object appears only
        # once it is complete (a multipart upload is committed at its end).
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            try:
                with self.fs.open(self._path(key), "wb") as target:
                    shutil.copyfileobj(spool, target, 8 << 20)
            except OSError as error:
                raise LakeWriteError(
                    error.errno or errno.EIO,
                    f"Writing {self.location(key)} failed: {error}; the object is unchanged",
                    self.location(key),
                ) from error

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        return {key: info.get("size", 0) for key, info in self._infos(prefix)}

    def versions(self, prefix: str = "") -> dict[str, object]:
        return {key: _object_version(info) for key, info in self._infos(prefix)}

    def _infos(self, prefix: str) -> list[tuple[str, dict]]:
        base = self._path(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        # find() of a file's own key lists that file: a prefix here is a folder.
        return [
            (path[len(self.prefix) :].lstrip("/"), info)
            for path, info in found.items()
            if path != base
        ]

    def read_versioned(self, key: str) -> tuple[bytes, object]:
        version = self.version(key)
        if version is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", self.location(key))
        return self.read_bytes(key), version

    def existing(self, keys: Iterable[str]) -> set[str]:
        """One listing of the keys' common folder, not a request per key."""
        keys = set(keys)
        if not keys:
            return set()
        common = os.path.commonpath([PurePosixPath(key).parent.as_posix() for key in keys])
        return keys & set(self.files("" if common == "." else common))

    def delete(self, key: str) -> bool:
        path = self._path(key)
        found = self.fs.find(path)
        if not found:
            return False
        self.fs.rm(found)
        return True

    def version(self, key: str) -> object | None:
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            return None
        return _object_version(info)

    def move(self, key: str, new_key: str) -> None:
        self.fs.cp_file(self._path(key), self._path(new_key))
        self.fs.rm_file(self._path(key))

    def staging_area(self) -> StagingArea:
        return StagingArea(self, new_area_name())

    def _put_staged(self, key: str, payload: bytes, destination: str) -> None:
        self.write_bytes(key, payload)

    def publish(self, staged_key: str, key: str) -> None:
        # A server-side copy writes the target object whole, as a PUT does. cp_file, not
        # copy: copy() first lists both paths to tell files from folders.
        self.fs.cp_file(self._path(staged_key), self._path(key))

    def read_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        # One GET per object, sent concurrently: no HEAD, no ranged reads of a footer first.
        paths = {self._path(key): key for key in keys}
        if not paths:
            return {}
        found = self.fs.cat(list(paths), on_error="raise")
        return {paths[path]: payload for path, payload in found.items()}


def new_area_name() -> str:
    """A staging area's name: when, and which process on which host, made it (stale_area)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{STAGING_PREFIX}{stamp}-{os.getpid()}-{secrets.token_hex(4)}@{socket.gethostname()}"


def stale_area(name: str, now: dt.datetime | None = None) -> bool:
    """Whether a staging area belongs to no live run: made by a process of this host that has
    ended (killed), or older than STAGING_AREA_MAX_AGE (a run elsewhere; or a name this code
    cannot read). A live run's area is never stale, so overlapping runs do not take each
    other's staged files away."""
    made, _, host = name.removeprefix(STAGING_PREFIX).partition("@")
    stamp, _, rest = made.partition("-")
    pid = rest.partition("-")[0]
    try:
        since = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        pid_number = int(pid)
    except ValueError:
        return True
    if (now or dt.datetime.now(dt.UTC)) - since > STAGING_AREA_MAX_AGE:
        return True
    return host == socket.gethostname() and not _alive(pid_number)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _is_leftover(name: str) -> bool:
    """A temporary file of a killed write, or a staging area of an ended run."""
    if name.startswith(STAGING_PREFIX):
        return stale_area(name)
    return name.startswith(TEMP_PREFIX)


def read_file(location: str) -> bytes:
    """The bytes of a file named by its full path or URL (Storage.location)."""
    return storage_at(location).read_bytes("")


def storage_at(location: str | os.PathLike | Storage) -> Storage:
    """The storage of a local path, a file:// URL or an object-store URL (or itself)."""
    if isinstance(location, Storage):
        return location
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return LocalStorage(text)
    if scheme.lower() == "file":
        return LocalStorage(rest)
    return ObjectStorage(text)


# --- atomic files on local disk ----------------------------------------------------------


def _write_error(path: Path, size: int, error: OSError) -> LakeWriteError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "No space left" if error.errno == errno.ENOSPC else "Disk quota exceeded"
        message = (
            f"{what} on the device of {path.parent} while writing {path.name} "
            f"({size:,} bytes): free space there (or set CARBON_DATA_DIR to a bigger disk) and "
            "re-run; the file is unchanged"
        )
    else:
        message = f"Writing {path} failed: {error.strerror or error}; the file is unchanged"
    return LakeWriteError(error.errno, message, str(path))


@contextlib.contextmanager
def staged_file(path: Path, size: int | None = None) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary file next to `path` to write (its handle and its path), fsynced when the
    block ends; `publish` then puts it in place. A failure (a full disk...) removes it and
    raises LakeWriteError naming `path` (`size`: the bytes meant, else those written so far).
    """
    temp: Path | None = None
    handle: BinaryIO | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = _create_staged(path)
        with os.fdopen(fd, "wb") as handle:
            yield handle, temp
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as error:
        if temp is not None:
            temp.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, LakeWriteError):
            written = size if size is not None else _position(handle)
            raise _write_error(path, written, error) from error
        raise


def _create_staged(path: Path) -> tuple[int, Path]:
    """A new file of a fresh name next to `path`, open for writing. Created with mode 0666
    for the kernel to apply the umask (and a folder's default ACL) as for any tool's file:
    mkstemp's 0600 would keep the lake from everyone but its writer."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        temp = path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free name for a staged file", str(path))


def _position(handle: BinaryIO | None) -> int:
    try:
        return handle.tell() if handle is not None else 0
    except (OSError, ValueError):
        return 0


def publish(staged: Path, path: Path) -> None:
    """Rename a staged file over `path`, then fsync the folder so the rename itself survives a
    power cut: readers see the old content or the new, never a part of it."""
    size = 0
    try:
        size = staged.stat().st_size
        os.replace(staged, path)
    except OSError as error:
        staged.unlink(missing_ok=True)
        raise _write_error(path, size, error) from error
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_writer(path: Path, size: int | None = None) -> Iterator[BinaryIO]:
    """A binary file to write `path` through, so that readers see the old content or the new,
    never a part of it: a staged file (temporary, same folder, fsynced) renamed over the target
    when the block ends without an error. A failure leaves the old file and no temporary one,
    and raises LakeWriteError naming it."""
    with staged_file(path, size) as (handle, staged):
        yield handle
    publish(staged, path)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write a file atomically (see atomic_writer)."""
    with atomic_writer(path, size=len(payload)) as handle:
        handle.write(payload)
