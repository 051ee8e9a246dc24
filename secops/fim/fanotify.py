"""Linux fanotify through ctypes: who wrote a file, and a gate on file opens.

One :class:`Fanotify` group watches single directories (``watch_dir``; not recursive, the caller
marks every directory) or, without gating, whole filesystems (``watch_filesystem``).  ``run()``
reads the kernel's event queue and calls back with an :class:`Event` per ``close_write`` (a file
opened for writing was closed: its writer's pid and an fd onto the file) and, when gating, per
``open_perm`` (a process is opening a file and waits until the callback answers :data:`ALLOW` or
:data:`DENY`).

Rules the callback must keep:

- ``Event.fd`` is valid only during the callback; read it with ``os.pread``.  The kernel opened
  it with FMODE_NONOTIFY, so reading it raises no events.
- Never ``open()`` a file in a watched directory from the thread that runs ``run()``: the open
  waits for a permission answer that only that thread could give.  Other threads of this process
  are fine: our own opens are allowed without a callback.
- Be quick: with ``gate=True`` every open in a watched directory waits on the callback.

Events of our own process (the hasher, a containment thread) never reach the callback.

Every event read costs the reader a file descriptor until it is handled; when the kernel cannot
install one (EMFILE) it *denies* that permission event, so the daemon raises its descriptor limit
(``LimitNOFILE=`` in the unit) and reads at most ``_READ_SIZE`` bytes (about 680 events) at once.
The callback hears of that (``fd_exhausted``) and of queue overflows (``overflow``).
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
from typing import Any, Protocol

from secops.errors import OperationalError

# linux/fanotify.h and linux/fcntl.h
FAN_ACCESS = 0x00000001
FAN_MODIFY = 0x00000002
FAN_CLOSE_WRITE = 0x00000008
FAN_Q_OVERFLOW = 0x00004000
FAN_OPEN_PERM = 0x00010000
FAN_EVENT_ON_CHILD = 0x08000000
FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_CLASS_CONTENT = 0x00000004
FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_IGNORED_MASK = 0x00000020
FAN_MARK_IGNORED_SURV_MODIFY = 0x00000040
FAN_MARK_FILESYSTEM = 0x00000100
FAN_MARK_IGNORE = 0x00000400  # Linux 6.0: an ignore mark that may cover a folder's children
_NAMED = FAN_CLOSE_WRITE | FAN_MODIFY | FAN_ACCESS
FAN_ALLOW = 0x01
FAN_DENY = 0x02
FAN_NOFD = -1
FANOTIFY_METADATA_VERSION = 3
AT_FDCWD = -100

ALLOW = True
DENY = False

_META = struct.Struct("=IBBHQii")  # struct fanotify_event_metadata, 24 bytes
_RESPONSE = struct.Struct("=iI")  # struct fanotify_response
_READ_SIZE = 16 * 1024
_FD_EXHAUSTED_PAUSE_S = 0.01
_DELETED = " (deleted)"


class FanotifyUnavailable(OperationalError):
    """fanotify cannot be used here: no privilege, or the kernel lacks it."""

    def __init__(self, message: str, *, errno_: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.errno = errno_


class Event:
    """One fanotify event; ``fd`` is valid only during the callback (read it with os.pread).
    ``path`` is looked up (``/proc/self/fd``) when first asked for, or given: an open's
    answer needs the pid alone, and the gate answers every open in the watched folders."""

    __slots__ = ("_path", "_unlinked", "fd", "kind", "pid")

    def __init__(self, kind: str, pid: int, path: str | None, fd: int,
                 unlinked: bool = False) -> None:
        self.kind = kind  # open_perm, modify, access, close_write, overflow, fd_exhausted
        self.pid = pid
        self.fd = fd
        self._path = path
        self._unlinked = unlinked

    @property
    def path(self) -> str:
        if self._path is None:
            self._path, self._unlinked = _path_of(self.fd) if self.fd >= 0 else ("", False)
        return self._path

    @property
    def unlinked(self) -> bool:
        """The name the file was opened by is gone (the kernel's " (deleted)")."""
        _ = self.path
        return self._unlinked

    def __repr__(self) -> str:
        return f"Event({self.kind!r}, {self.pid}, {self._path!r}, {self.fd})"


_OVERFLOW = Event("overflow", 0, "", -1)
_FD_EXHAUSTED = Event("fd_exhausted", 0, "", -1)


class Pulse(Protocol):
    """Told of the loop's progress (see :class:`secops.fim.warden.Pulse`)."""

    def beat(self, busy: bool) -> None: ...


def unavailable_message(err: int, *, gate: bool) -> tuple[str, str]:
    """A person's explanation of a ``fanotify_init`` failure: (message, hint)."""
    what = "file-access gating (fanotify)" if gate else "file-write monitoring (fanotify)"
    if err == errno.EPERM:
        return (f"{what} is not permitted: it needs root (CAP_SYS_ADMIN)",
                "run the secops daemon as root")
    if err == errno.ENOSYS:
        return (f"{what} is unavailable: this kernel was built without fanotify",
                "use a kernel with CONFIG_FANOTIFY=y")
    if err == errno.EINVAL:
        return (f"{what} is unavailable: the kernel rejected the request; it lacks fanotify"
                + (" permission events" if gate else ""),
                "use a kernel with CONFIG_FANOTIFY=y"
                + (" and CONFIG_FANOTIFY_ACCESS_PERMISSIONS=y" if gate else ""))
    if err == errno.EMFILE:
        return (f"{what} is unavailable: too many fanotify groups are open",
                "raise /proc/sys/fs/fanotify/max_user_groups or stop other fanotify users")
    return f"{what} is unavailable: {os.strerror(err)}", "check the kernel log"


def mark_error(err: int, path: str) -> OSError:
    """The OSError for a failed ``fanotify_mark`` on ``path``, explained for a person."""
    if err == errno.ENOSPC:
        text = ("fanotify mark limit reached; raise /proc/sys/fs/fanotify/max_user_marks "
                "or watch fewer directories")
    else:
        text = f"cannot watch directory with fanotify: {os.strerror(err)}"
    return OSError(err, text, path)


@functools.cache
def _libc() -> tuple[Any, Any]:
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        init, mark = libc.fanotify_init, libc.fanotify_mark
    except AttributeError as e:
        raise FanotifyUnavailable("the C library has no fanotify_init/fanotify_mark",
                                  errno_=errno.ENOSYS, hint="fanotify needs Linux") from e
    init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    init.restype = ctypes.c_int
    mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                     ctypes.c_char_p]
    mark.restype = ctypes.c_int
    return init, mark


def _path_of(fd: int) -> tuple[str, bool]:
    """The path of ``fd`` and whether that name is gone (unlinked since the open)."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "", False
    return (path[: -len(_DELETED)], True) if path.endswith(_DELETED) else (path, False)


class Fanotify:
    """One fanotify group: mark directories, then ``run()`` the event loop in one thread."""

    def __init__(self, gate: bool = True) -> None:
        init, self._mark_fn = _libc()
        flags = FAN_CLOEXEC | FAN_NONBLOCK | (FAN_CLASS_CONTENT if gate else FAN_CLASS_NOTIF)
        fd = init(flags, os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            message, hint = unavailable_message(err, gate=gate)
            raise FanotifyUnavailable(message, errno_=err, hint=hint)
        try:
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError:
            os.close(fd)
            raise
        self._fd: int = fd
        self.gate = gate
        # the gate also hears each write (FAN_MODIFY): a file opened before its writer was
        # known is judged at its first write, not only at its close
        self._mask = FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD | \
            (FAN_OPEN_PERM | FAN_MODIFY if gate else 0)
        self._lock = threading.Lock()
        self._running = False
        self._closing = False
        self._pulse: Pulse | None = None

    def fileno(self) -> int:
        return self._fd

    def watch_dir(self, path: str) -> None:
        """Watch the files directly in directory ``path`` (not its subdirectories)."""
        err = self._mark(FAN_MARK_ADD, path)
        if err:
            raise mark_error(err, path)

    def watch_filesystem(self, path: str) -> None:
        """Report every ``close_write`` on the whole filesystem holding ``path``.

        Only for a group without gating: a permission mark on a filesystem would make every
        open on it wait for this process.
        """
        if self.gate:
            raise ValueError("a gating group marks single directories, not filesystems")
        if self._closing:
            raise ValueError("the fanotify group is closed")
        if self._mark_fn(self._fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE,
                         AT_FDCWD, os.fsencode(path)) < 0:
            raise mark_error(ctypes.get_errno() or errno.EIO, path)

    def watch_reads(self, path: str) -> None:
        """Report every read of the file ``path`` (an inode mark: through any name, and it
        goes with the file when it is moved or deleted)."""
        if self._closing:
            raise ValueError("the fanotify group is closed")
        if self._mark_fn(self._fd, FAN_MARK_ADD, FAN_ACCESS, AT_FDCWD, os.fsencode(path)) < 0:
            raise mark_error(ctypes.get_errno() or errno.EIO, path)

    def unwatch_dir(self, path: str) -> None:
        """Stop watching ``path``; a directory that is not (or no longer) watched is fine."""
        err = self._mark(FAN_MARK_REMOVE, path)
        if err and err not in (errno.ENOENT, errno.EINVAL):
            raise mark_error(err, path)

    def ignore(self, path: str) -> None:
        """Never report ``path``: a file (by inode, so through any hard link too) or the files
        directly in a folder (Linux 6.0 and newer).

        The daemon marks its own SQLite files so: a descriptor fanotify hands us for a file
        this process holds a POSIX lock on would drop that lock when we close it, and another
        SQLite client would then take the database for unused and delete its WAL.
        """
        if self._closing:
            raise ValueError("the fanotify group is closed")
        mask = FAN_CLOSE_WRITE | (FAN_OPEN_PERM | FAN_MODIFY if self.gate else 0)
        if os.path.isdir(path):
            flags, mask = FAN_MARK_IGNORE, mask | FAN_EVENT_ON_CHILD
        else:
            flags = FAN_MARK_IGNORED_MASK
        flags |= FAN_MARK_ADD | FAN_MARK_IGNORED_SURV_MODIFY
        if self._mark_fn(self._fd, flags, mask, AT_FDCWD, os.fsencode(path)) < 0:
            raise mark_error(ctypes.get_errno() or errno.EIO, path)

    def _mark(self, flags: int, path: str) -> int:
        if self._closing:
            raise ValueError("the fanotify group is closed")
        if self._mark_fn(self._fd, flags, self._mask, AT_FDCWD, os.fsencode(path)) < 0:
            return ctypes.get_errno() or errno.EIO
        return 0

    def run(self, on_event: Callable[[Event], bool], stop: threading.Event,
            poll_s: float = 0.2, pulse: Pulse | None = None) -> None:
        """Deliver events to ``on_event`` until ``stop`` is set or the group is closed.

        ``on_event``'s result answers ``open_perm`` events (ALLOW/DENY) and is ignored for the
        others.  If it raises, the event is allowed, the rest of the batch read with it is
        allowed without a callback, and the exception propagates.  Permission events still
        queued then wait until ``close()``.  ``pulse`` hears of every step (at least every
        ``poll_s`` while idle), until the group is abandoned.
        """
        with self._lock:
            if self._closing:
                return
            if self._running:
                raise RuntimeError("Fanotify.run() is already running in another thread")
            self._running = True
            self._pulse = pulse
        try:
            self._loop(on_event, stop, max(0, round(poll_s * 1000)))
        finally:
            with self._lock:
                self._running = False
                if self._closing:
                    self._release()

    def _loop(self, on_event: Callable[[Event], bool], stop: threading.Event,
              timeout_ms: int) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        own_pid, fd = os.getpid(), self._fd
        while not stop.is_set() and not self._closing:
            ready = poller.poll(timeout_ms)
            self._beat(False)
            if not ready or self._closing:
                continue
            try:
                buf = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                # the kernel could not give us a descriptor for the next event and denied it
                on_event(_FD_EXHAUSTED)
                stop.wait(_FD_EXHAUSTED_PAUSE_S)
                continue
            self._dispatch(buf, on_event, own_pid)
            self._beat(False)

    def _beat(self, busy: bool) -> None:
        pulse = self._pulse
        if pulse is not None:
            pulse.beat(busy)

    def _dispatch(self, buf: bytes, on_event: Callable[[Event], bool], own_pid: int) -> None:
        """Handle every event in ``buf``: answer each permission event, close each fd."""
        group, unpack, respond = self._fd, _META.unpack_from, _RESPONSE.pack
        failure: BaseException | None = None
        off, end = 0, len(buf)
        while off + _META.size <= end:
            event_len, vers, _, _, mask, fd, pid = unpack(buf, off)
            if vers != FANOTIFY_METADATA_VERSION or event_len < _META.size:
                raise FanotifyUnavailable(
                    f"unexpected fanotify event format (version {vers}, length {event_len};"
                    f" expected version {FANOTIFY_METADATA_VERSION})")
            off += event_len
            perm = mask & FAN_OPEN_PERM
            allowed = True
            self._beat(True)
            try:
                if failure is None and pid != own_pid and not self._closing:
                    if mask & FAN_Q_OVERFLOW:
                        on_event(_OVERFLOW)
                    path, gone = _path_of(fd) if fd >= 0 and mask & _NAMED else (None, False)
                    if mask & FAN_CLOSE_WRITE:
                        on_event(Event("close_write", pid, path, fd, gone))
                    elif mask & FAN_MODIFY:  # merged with its close: the close judges it
                        on_event(Event("modify", pid, path, fd, gone))
                    if mask & FAN_ACCESS:
                        on_event(Event("access", pid, path, fd, gone))
                    if perm:
                        allowed = on_event(Event("open_perm", pid, path, fd, gone))
            except BaseException as e:  # answered below, re-raised after the batch
                failure, allowed = e, True
            if fd >= 0:
                try:
                    if perm:
                        os.write(group, respond(fd, FAN_ALLOW if allowed else FAN_DENY))
                except FileNotFoundError:
                    pass  # answered already: the warden or a supervisor allowed it meanwhile
                except OSError as e:  # the kernel dropped the event; keep answering the rest
                    failure = failure or e
                finally:
                    os.close(fd)
        if failure is not None:
            raise failure

    def pending(self) -> bool:
        """Whether an event waits in the queue, unread."""
        with self._lock:
            if self._closing:
                return False
            poller = select.poll()
            poller.register(self._fd, select.POLLIN)
            return bool(poller.poll(0))

    def allow_in_flight(self) -> int:
        """Answer ALLOW to every permission event this process has read from the group and
        not answered yet (a response names its event by descriptor number: each number open
        here is tried; any other is refused with ENOENT and does nothing). How many."""
        allowed = 0
        with self._lock:
            if self._closing:
                return 0
            for name in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError, ValueError):
                    os.write(self._fd, _RESPONSE.pack(int(name), FAN_ALLOW))
                    allowed += 1
        return allowed

    def abandon(self) -> None:
        """Give the group up while ``run()`` may be stuck in a callback (from another thread).

        Our descriptor is replaced by /dev/null in one step (``dup2``): the number stays ours,
        so the stuck thread's later answers go nowhere instead of into a reused descriptor;
        once no other process holds the group, the kernel allows everything pending.  The
        stuck thread calls back no more and leaves ``run()`` when it comes back.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._pulse = None
            null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.dup2(null, self._fd, inheritable=False)
            finally:
                os.close(null)
            if self._running:
                os.eventfd_write(self._wake, 1)
            else:
                self._release()

    def close(self) -> None:
        """Close the group; the kernel allows any permission event still pending.

        Safe from any thread and more than once.  While ``run()`` is active, it is woken, returns
        and releases the descriptors itself (so its fd number cannot be reused under it).
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if self._running:
                os.eventfd_write(self._wake, 1)
            else:
                self._release()

    def _release(self) -> None:
        os.close(self._fd)
        os.close(self._wake)

    def __enter__(self) -> Fanotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def available(gate: bool = True) -> bool:
    """Whether a fanotify group (with permission events when ``gate``) can be made here."""
    try:
        Fanotify(gate=gate).close()
    except FanotifyUnavailable:
        return False
    return True
