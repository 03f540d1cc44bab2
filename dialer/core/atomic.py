"""Files replaced whole: a crash or a power cut leaves the old file or the new, never half.

    with replacing(path) as f:          # a private temp file beside `path`
        f.write(data)                   # flushed, fsynced and renamed over `path` on success
    sync_folder(path.parent)            # after a rename of one's own (a rebuild's ledger)

Every writer of a file that must survive (campaign files and their backups, the schedules,
reports, a rebuilt ledger) goes through here, so the order (write, fsync, rename, fsync the
folder) is written once.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# A folder's fsync that the file system does not offer (some network and FUSE mounts): the
# rename is as durable as that file system makes it, which is all that can be had there.
_NO_FOLDER_SYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})

TEMP_SUFFIX = ".tmp"
# What a temp file's name adds to the name it replaces: "." + mkstemp's 8 characters + suffix.
TEMP_EXTRA = len(".XXXXXXXX" + TEMP_SUFFIX)


def sync_folder(folder: Path) -> None:
    """The renames in `folder` on disk (a power cut must not bring the old file back). An
    error of the disk itself is raised (OSError); a file system that cannot sync a folder is
    not an error."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _NO_FOLDER_SYNC:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_FOLDER_SYNC:
            raise
    finally:
        os.close(fd)


@contextmanager
def replacing(
    path: Path, *, mode: int | None = None, exclusive: bool = False
) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` when the block ends without an error (written,
    fsynced, moved over it, the folder synced); on an error it is removed and `path` is left
    as it was. The temp file is created O_EXCL under a random name (mkstemp): nothing planted
    at a predictable name is followed. `mode`: its permissions (else mkstemp's private 0600).
    `exclusive`: FileExistsError if anything (a symlink included) is at `path` by then, which
    is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=TEMP_SUFFIX)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def _link_new(tmp: Path, path: Path) -> None:
    """`tmp` moved to `path` only if nothing is there (a hard link fails then)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def replace_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """`path` replaced whole by `text` (UTF-8, newlines as given)."""
    with replacing(path, mode=mode) as f:
        f.write(text.encode("utf-8"))
