"""New folders the moment they appear: a fanotify group that reports directory entries.

One group (FAN_CLASS_NOTIF, FAN_REPORT_DFID_NAME) with one FAN_MARK_FILESYSTEM mark per
filesystem holding a watched folder, for FAN_CREATE and FAN_MOVED_TO on folders (FAN_ONDIR):
every ``mkdir`` and every folder renamed or moved in, as the parent's file handle and the new
name. Such events carry no descriptor (nothing to close, so no lock of ours to lose, see
:meth:`secops.fim.fanotify.Fanotify.ignore`) and make nobody wait. The parent's path comes
from ``open_by_handle_at`` (CAP_DAC_READ_SEARCH) against a folder of that filesystem.

So the gate can mark a new folder before anything is written in it: an attacker who makes a
folder, moves documents into it and encrypts them there meets the gate from the first file
(unless it writes within the microseconds after its ``mkdir``: the sentry's close-after-write
catches that one).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import select
import struct
import threading
from collections.abc import Callable
from typing import Any

from secops.fim.fanotify import (
    AT_FDCWD,
    FAN_CLASS_NOTIF,
    FAN_CLOEXEC,
    FAN_MARK_ADD,
    FAN_MARK_FILESYSTEM,
    FAN_NONBLOCK,
    FAN_Q_OVERFLOW,
    FanotifyUnavailable,
    _libc,
    mark_error,
    unavailable_message,
)

FAN_MOVED_TO = 0x00000080
FAN_CREATE = 0x00000100
FAN_ONDIR = 0x40000000
FAN_REPORT_DFID_NAME = 0x00000400 | 0x00000800  # FAN_REPORT_DIR_FID | FAN_REPORT_NAME
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
_META = struct.Struct("=IBBHQii")
_INFO = struct.Struct("=BBH8sIi")  # header, fsid, file_handle {handle_bytes, handle_type}
_READ_SIZE = 16 * 1024


@functools.cache
def _open_by_handle() -> Any:
    fn = ctypes.CDLL(None, use_errno=True).open_by_handle_at
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class DirWatch:
    """Report every folder created or moved in on the marked filesystems."""

    def __init__(self) -> None:
        init, self._mark_fn = _libc()
        fd = init(FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME,
                  os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            message, hint = unavailable_message(err, gate=False)
            raise FanotifyUnavailable(message, errno_=err, hint=hint)
        self._fd: int = fd
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._mounts: dict[int, int] = {}  # st_dev -> a folder's descriptor on it
        self._lock = threading.Lock()
        self._closed = False
        self._running = False

    def watch(self, path: str) -> None:
        """The filesystem holding folder ``path`` (once per filesystem)."""
        dev = os.stat(path).st_dev
        if dev in self._mounts:
            return
        if self._mark_fn(self._fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                         FAN_CREATE | FAN_MOVED_TO | FAN_ONDIR, AT_FDCWD,
                         os.fsencode(path)) < 0:
            raise mark_error(ctypes.get_errno() or errno.EIO, path)
        self._mounts[dev] = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def run(self, on_dir: Callable[[str], None], on_overflow: Callable[[], None],
            stop: threading.Event, poll_s: float = 0.5) -> None:
        """Call ``on_dir`` with the path of each new folder until ``stop`` or ``close()``."""
        with self._lock:
            if self._closed:
                return
            self._running = True
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        try:
            while not stop.is_set() and not self._closed:
                if not poller.poll(round(poll_s * 1000)) or self._closed:
                    continue
                try:
                    buf = os.read(self._fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                for path in self._folders(buf, on_overflow):
                    on_dir(path)
        finally:
            self._release()

    def _folders(self, buf: bytes, on_overflow: Callable[[], None]) -> list[str]:
        found = []
        off, end = 0, len(buf)
        while off + _META.size <= end:
            event_len, _, _, meta_len, mask, _, _ = _META.unpack_from(buf, off)
            if event_len < _META.size:
                break
            info, off = buf[off + meta_len:off + event_len], off + event_len
            if mask & FAN_Q_OVERFLOW:
                on_overflow()
            if not mask & FAN_ONDIR or len(info) < _INFO.size:
                continue  # a file, not a folder: the common case, skipped at once
            kind, _, info_len, _, size, _ = _INFO.unpack_from(info)
            if kind != FAN_EVENT_INFO_TYPE_DFID_NAME:
                continue
            handle = info[12:_INFO.size + size]
            name = info[_INFO.size + size:info_len].split(b"\0", 1)[0]
            parent = self._path(handle)
            if parent is not None and name:
                found.append(os.path.join(parent, os.fsdecode(name)))
        return found

    def _path(self, handle: bytes) -> str | None:
        """The current path of the folder with this file handle, if it still exists."""
        open_by_handle = _open_by_handle()
        for mount in list(self._mounts.values()):
            fd = open_by_handle(mount, handle, os.O_PATH | os.O_CLOEXEC)
            if fd < 0:
                continue  # ESTALE: gone, or another filesystem's handle
            try:
                return os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return None
            finally:
                os.close(fd)
        return None

    def close(self) -> None:
        """Safe from any thread and more than once; a running ``run()`` returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = self._running
        if not running:
            self._release()
            return
        with contextlib.suppress(OSError):
            os.eventfd_write(self._wake, 1)

    def _release(self) -> None:
        with self._lock:
            self._closed = True
            self._running = False
            fds = [self._fd, self._wake, *self._mounts.values()]
            self._fd = self._wake = -1
            self._mounts = {}
        for fd in fds:
            if fd >= 0:
                os.close(fd)
