"""A file descriptor that becomes readable when a file in a folder is written: Linux's
inotify, through ctypes (the standard library has no binding).

An idle SQLite worker in another process than the submitter learns of a commit by reading
``PRAGMA data_version`` (store/wakeup.py); between reads it sleeps 1-4 ms, which was most of
a job's wait from submit to start (p50 2.1-2.2 ms with a worker process, 1.6 with a slot
thread of the submitting process, which is poked directly). A commit appends its pages to
the database's ``-wal`` file, so the write wakes a worker blocked on this descriptor at once.
The folder is watched, not the ``-wal`` file: SQLite removes that file when the last
connection closes and makes it again. Elsewhere (no inotify, or the per-user limit on
inotify instances reached), :func:`watch_writes` returns None and workers read
data_version on their schedule, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import struct
import sys
import weakref
from collections.abc import Iterable

log = logging.getLogger("queuelab.wakeup")

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_READ_BYTES = 4096


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


class FileWrites:
    """Readable after a write to a file in the watched folder; :meth:`drain` reads the
    events so far and says whether one was of a file named in ``names``. Closed by
    :meth:`close`, or when garbage-collected."""

    def __init__(self, fd: int, names: frozenset[bytes]) -> None:
        self._fd = fd
        self._names = names
        self._closer = weakref.finalize(self, os.close, fd)

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> bool:
        named = False
        try:
            while data := os.read(self._fd, _READ_BYTES):
                named = named or any(name in self._names for name in _names(data))
        except BlockingIOError:
            pass
        return named

    def close(self) -> None:
        self._closer()


def _names(data: bytes) -> list[bytes]:
    """The file names of the inotify events in ``data`` (struct inotify_event: wd, mask,
    cookie, len, then a name of len bytes padded with NULs)."""
    names, at = [], 0
    while at + _EVENT.size <= len(data):
        *_, length = _EVENT.unpack_from(data, at)
        at += _EVENT.size
        names.append(data[at : at + length].rstrip(b"\0"))
        at += length
    return names


_EVENT = struct.Struct("iIII")


def watch_writes(folder: str, names: Iterable[str]) -> FileWrites | None:
    """Writes to files in ``folder`` as a readable descriptor (:meth:`FileWrites.drain` says
    whether one was to a file of ``names``); None where inotify cannot watch it (not Linux,
    the limit on inotify instances reached, a folder it cannot read)."""
    if _LIBC is None:
        return None
    fd = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        _unavailable(folder, ctypes.get_errno())
        return None
    if _LIBC.inotify_add_watch(fd, os.fsencode(folder), _IN_MODIFY) < 0:
        code = ctypes.get_errno()
        os.close(fd)
        _unavailable(folder, code)
        return None
    return FileWrites(fd, frozenset(os.fsencode(name) for name in names))


def _unavailable(folder: str, code: int) -> None:
    why = "the limit on inotify instances is reached" if code in (errno.EMFILE, errno.ENFILE) else os.strerror(code)
    log.debug("no inotify watch on %s (%s): idle workers read data_version every 1-4 ms", folder, why)
