"""The data folder (``KBBOT_DATA_DIR``): created owner-only, checked writable at start, and its failures told in
one line that never suggests deleting anything.

The folder holds what must not be lost: the outbox of queued saves, the saved-thread map (which makes a
re-save update its page instead of duplicating it), feedback and locally saved pages. So every message here
says how to fix the folder (space, owner, permissions, a backup) and keeps its files; none says "move it away"
or "start afresh".

Owner-only: the folder is ``0700`` (tightened when it already exists) and the kbbot process creates files with
umask ``077`` (see :func:`kbbot.cli.main`), so SQLite's database, WAL and journal files, pages and state files
are ``0600`` whatever the umask of the shell or service manager that started it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

from kbbot.errors import DataDirError

log = logging.getLogger(__name__)

#: The mode the data folder gets; files inside are created 0600 by the process umask.
FOLDER_MODE = 0o700
PRIVATE_UMASK = 0o077

_KEEP = "its files (queued saves, the saved-thread map) are kept"
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` owner-only (or tighten it) and prove it takes a write; :class:`DataDirError` if not."""
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise _folder_error(path, exc) from None
    with contextlib.suppress(OSError):  # not ours (a mounted volume): its owner decides
        if path.stat().st_mode & 0o777 != FOLDER_MODE:
            path.chmod(FOLDER_MODE)
    try:
        # A real write, not os.access(): root passes access checks, and only writing shows a full disk.
        with tempfile.TemporaryFile(dir=path, prefix=".kbbot-write-check-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise _folder_error(path, exc) from None


def warn_if_old_default_left_behind(data: Path, *, explicit: bool) -> None:
    """Before the per-user default, kbbot kept its data in ``./.kbbot``. Started without ``KBBOT_DATA_DIR``
    from such a folder, say where the queued saves and saved threads are instead of silently ignoring them."""
    old = Path(".kbbot")
    if explicit or not (old / "threads.sqlite3").is_file() or old.resolve() == data.resolve():
        return
    log.warning(
        "found %s from an older kbbot (queued saves, saved threads) but the data folder is now %s: set "
        "KBBOT_DATA_DIR=%s to keep using it, or move its files into %s",
        old.resolve(), data, old.resolve(), data,
    )


def describe_failure(path: Path, exc: BaseException) -> DataDirError | None:
    """One line for a disk-level failure while using the data folder (a full disk, a folder turned read-only,
    a damaged database file), or None when ``exc`` is something else."""
    if isinstance(exc, DataDirError):
        return exc
    if isinstance(exc, OSError):
        return _folder_error(path, exc) if exc.errno in _FULL_ERRNOS | _DENIED_ERRNOS else None
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return DataDirError(f"KBBOT_DATA_DIR {path}: the disk is full; free some space and try again ({_KEEP})")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")) or "readonly" in text:
        return _denied(path)
    if name.startswith("SQLITE_IOERR"):
        return DataDirError(
            f"KBBOT_DATA_DIR {path}: writing failed ({exc}): check free space, quotas and the disk ({_KEEP})"
        )
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text or "malformed" in text:
        return DataDirError(
            f"KBBOT_DATA_DIR {path}: a database file in it is damaged ({exc}); it may hold queued saves, so keep "
            "it: restore it from a backup, or rescue its rows with `sqlite3 FILE .recover`"
        )
    return None


def _folder_error(path: Path, exc: OSError) -> DataDirError:
    if exc.errno in _FULL_ERRNOS:
        return DataDirError(f"KBBOT_DATA_DIR {path}: the disk is full; free some space and try again ({_KEEP})")
    if exc.errno in _DENIED_ERRNOS:
        return _denied(path, read_only=exc.errno == errno.EROFS)
    return DataDirError(f"KBBOT_DATA_DIR {path} cannot be used as a folder ({exc.strerror or type(exc).__name__})")


def _denied(path: Path, *, read_only: bool = False) -> DataDirError:
    why = "is on a read-only file system" if read_only else f"is not writable by this user (uid {os.getuid()})"
    return DataDirError(
        f"KBBOT_DATA_DIR {path} {why}: mount it writable or fix its owner and permissions ({_KEEP})"
    )
