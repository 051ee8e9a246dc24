"""The ``collect_evidence`` action: evidence in RFC 3227 order of volatility, with a
tamper-evident chain-of-custody record.

Most volatile first: processes, network sockets, logged-in users, open files, the hashes of
the files the event names, then copies of the logs. Each item is one file in the incident's
evidence folder (0700; files 0600, created exclusively, fsync'd), hashed and entered as one
line of ``custody.jsonl``. Each custody line carries the SHA-256 of the line before it
(``prev``; 64 zeros for the first), so an edited, removed or re-ordered line breaks the chain;
only the last line is unprotected by the chain: record :func:`custody_head` elsewhere (the
audit log) and pass it to :func:`verify_custody` to catch that too.

An unreadable source never stops the collection: it becomes an item with an ``error`` (its
file the error document, hashed like any other). Without CAP_SYS_PTRACE, the ``exe``, ``cwd``
and file descriptors of processes of other users (and of root processes holding more
capabilities than we do) cannot be read: those pids are listed as ``fd_unreadable``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import stat
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, overload

from secops import __version__, process
from secops.audit.chain import GENESIS_PREV, line_hash
from secops.clock import Clock, SystemClock, iso_utc
from secops.config.schema import Config
from secops.errors import OperationalError, SecopsError
from secops.files import ensure_private_dir
from secops.pathtext import display, display_tree, encode, plain

CUSTODY = "custody.jsonl"
CHUNK = 1 << 20
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}
UTMP_FILES = ("/run/utmp", "/var/run/utmp")
# glibc's struct utmp (x86_64, aarch64, ...): 384 bytes, 32-bit ut_tv.
UTMP = struct.Struct("=h2xi32s4s32s256shhi2i4i20s")
USER_PROCESS = 7
JOURNAL_ARGV = ("journalctl", "--no-pager", "-o", "short-iso", "--since", "-2h")


@dataclass(frozen=True)
class Limits:
    log_bytes: int = 200 * 1024 * 1024
    journal_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    seq: int
    name: str            # relative to the evidence folder
    kind: str
    description: str
    source: str
    collected_at: str
    sha256: str
    size: int
    method: str
    error: str | None = None
    truncated: bool = False


# --- pure decoding -------------------------------------------------------------------------

def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def decode_address(hexaddr: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ("127.0.0.1", 8080): each 32-bit word in host byte order."""
    addr, port = hexaddr.split(":")
    words = [int(addr[i:i + 8], 16) for i in range(0, len(addr), 8)]
    packed = b"".join(struct.pack("=I", w) for w in words)
    return str(ipaddress.ip_address(packed)), int(port, 16)


def parse_sockets(raw: bytes, proto: str) -> list[dict[str, Any]]:
    """The rows of /proc/net/{tcp,tcp6,udp,udp6}."""
    out = []
    for row in raw.decode("ascii", "replace").splitlines()[1:]:
        f = row.split()
        if len(f) < 10:
            continue
        (laddr, lport), (raddr, rport) = decode_address(f[1]), decode_address(f[2])
        state = int(f[3], 16)
        out.append({"proto": proto, "local_address": laddr, "local_port": lport,
                    "remote_address": raddr, "remote_port": rport,
                    "state": TCP_STATES.get(state, f"0x{state:02X}"), "uid": int(f[7]),
                    "inode": int(f[9])})
    return out


def parse_stat(raw: bytes) -> tuple[str, str, int, int]:
    """/proc/PID/stat -> (comm, state, ppid, starttime in clock ticks since boot)."""
    comm = raw[raw.index(b"(") + 1:raw.rindex(b")")]
    rest = raw[raw.rindex(b")") + 2:].split()
    return _text(comm), rest[0].decode("ascii"), int(rest[1]), int(rest[19])


def parse_utmp(data: bytes) -> list[dict[str, Any]]:
    """The USER_PROCESS records of a utmp file."""
    users = []
    for off in range(0, len(data) - UTMP.size + 1, UTMP.size):
        (ut_type, pid, line, ut_id, user, host, _term, _exit, session, sec, usec,
         *addr, _reserved) = UTMP.unpack_from(data, off)
        if ut_type != USER_PROCESS:
            continue
        packed = struct.pack("=4i", *addr)
        ip = packed[:4] if not any(packed[4:]) else packed
        users.append({
            "type": ut_type, "pid": pid, "line": _text(line.rstrip(b"\0")),
            "id": _text(ut_id.rstrip(b"\0")), "user": _text(user.rstrip(b"\0")),
            "host": _text(host.rstrip(b"\0")), "session": session,
            "time": iso_utc(datetime.fromtimestamp(sec + usec / 1e6, UTC)),
            "address": str(ipaddress.ip_address(ip)) if any(packed) else None})
    return users


def access_mode(flags: int) -> str:
    return {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}.get(flags & os.O_ACCMODE, "?")


# --- reading /proc -------------------------------------------------------------------------

def _pids() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc") if n.isdigit())


def _read(path: str, limit: int = CHUNK) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _link(path: str) -> str | None:
    try:
        return _text(os.readlink(os.fsencode(path)))
    except OSError:
        return None


def _boot_time() -> float:
    for line in _read("/proc/stat").splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def processes_doc(suspects: Sequence[int]) -> dict[str, Any]:
    boot, ticks = _boot_time(), os.sysconf("SC_CLK_TCK")
    procs = []
    for pid in _pids():
        try:
            comm, state, ppid, start = parse_stat(_read(f"/proc/{pid}/stat"))
        except (OSError, ValueError, IndexError):
            continue  # gone while we looked
        procs.append({
            "pid": pid, "ppid": ppid, **_process_ids(pid), "state": state, "comm": comm,
            "cmdline": _cmdline(pid), "exe": _link(f"/proc/{pid}/exe"),
            "cwd": _link(f"/proc/{pid}/cwd"),
            "start_time": iso_utc(datetime.fromtimestamp(boot + start / ticks, UTC)),
            "suspect": pid in suspects})
    seen = {p["pid"] for p in procs}
    return {"boot_time": iso_utc(datetime.fromtimestamp(boot, UTC)), "processes": procs,
            "suspects_not_found": [p for p in suspects if p not in seen]}


def _process_ids(pid: int) -> dict[str, int | None]:
    ids: dict[str, int | None] = dict.fromkeys(("uid", "euid", "gid", "egid"))
    with contextlib.suppress(OSError, ValueError):
        for line in _read(f"/proc/{pid}/status").splitlines():
            for key, names in ((b"Uid:", ("uid", "euid")), (b"Gid:", ("gid", "egid"))):
                if line.startswith(key):
                    ids.update(zip(names, map(int, line.split()[1:3]), strict=False))
    return ids


def _cmdline(pid: int) -> list[str] | None:
    """The command line, its secrets (``--password X``, ``TOKEN=X``, ``user:pass@``) masked."""
    from secops.redact import redact_argv

    try:
        raw = _read(f"/proc/{pid}/cmdline", 128 * 1024)
    except OSError:
        return None
    return redact_argv([_text(a) for a in raw.split(b"\0") if a])


def fd_table() -> tuple[list[tuple[int, int, bytes]], list[int]]:
    """(pid, fd, link target) of every readable descriptor; and the pids we could not read.

    With CAP_DAC_READ_SEARCH the fd folder of any process can be listed, but its links
    read only with ptrace access (same uid and no more capabilities, or CAP_SYS_PTRACE).
    """
    links, unreadable = [], []
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        except OSError:
            unreadable.append(pid)
            continue
        for fd in fds:
            try:
                links.append((pid, int(fd), os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}"))))
            except PermissionError:
                unreadable.append(pid)
                break
            except OSError:
                continue  # closed meanwhile
    return links, unreadable


def network_doc() -> dict[str, Any]:
    links, unreadable = fd_table()
    owners: dict[int, list[int]] = {}
    for pid, _fd, target in links:
        if target.startswith(b"socket:["):
            pids = owners.setdefault(int(target[8:-1]), [])
            if pid not in pids:
                pids.append(pid)
    sockets, errors = [], []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            sockets += parse_sockets(_read(f"/proc/net/{proto}", 64 * CHUNK), proto)
        except (OSError, ValueError) as e:
            errors.append(f"/proc/net/{proto}: {e}")
    for s in sockets:
        s["pids"] = owners.get(s["inode"], [])
    return {"sockets": sockets, "errors": errors, "fd_unreadable": unreadable}


def users_doc() -> dict[str, Any]:
    for path in UTMP_FILES:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            continue
        return {"source": path, "users": parse_utmp(data)}
    return {"source": None, "users": []}


def open_files_doc(roots: Sequence[str], paths: Sequence[str],
                   suspects: Sequence[int]) -> dict[str, Any]:
    prefixes = tuple(os.fsencode(os.path.join(r, "")) for r in _variants(roots))
    exact = {os.fsencode(p) for p in _variants([*roots, *paths])}
    links, unreadable = fd_table()
    found = []
    for pid, fd, target in links:
        path = target.removesuffix(b" (deleted)")
        if not (path in exact or path.startswith(prefixes)):
            continue
        entry: dict[str, Any] = {"pid": pid, "fd": fd, "path": _text(path),
                                 "deleted": path != target, "suspect": pid in suspects}
        try:
            info = {}
            for ln in _read(f"/proc/{pid}/fdinfo/{fd}").splitlines():
                key, _, value = ln.partition(b":")
                info[key] = value
            flags = int(info[b"flags"].strip(), 8)
            entry.update(flags=f"0{flags:o}", mode=access_mode(flags),
                         pos=int(info[b"pos"].strip()))
        except (OSError, KeyError, ValueError) as e:
            entry["error"] = f"fdinfo: {e}"
        found.append(entry)
    return {"watched": list(roots), "paths": list(paths), "open_files": found,
            "fd_unreadable": unreadable}


def _variants(paths: Sequence[str]) -> list[str]:
    """Each path as given (absolute) and resolved: /proc shows resolved targets."""
    out: list[str] = []
    for p in paths:
        for v in (os.path.abspath(p), os.path.realpath(p)):
            if v not in out:
                out.append(v)
    return out


def file_hashes_doc(paths: Sequence[str]) -> dict[str, Any]:
    return {"files": [_file_hash(os.path.abspath(p)) for p in paths]}


def _file_hash(path: str) -> dict[str, Any]:
    # a name that is not UTF-8: readable (\xff, marked) and, exactly, as b64: + its bytes
    entry: dict[str, Any] = {"path": display(path)}
    if not plain(path):
        entry["path_bytes"] = encode(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {**entry, "missing": True}
    except OSError as e:
        return {**entry, "error": e.strerror or str(e)}
    entry.update(_describe_stat(st))
    if stat.S_ISLNK(st.st_mode):
        entry.update(type="symlink", target=_link(path))
    elif stat.S_ISREG(st.st_mode):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as f:
                entry["sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as e:
            entry["error"] = e.strerror or str(e)
    else:
        entry["type"] = "directory" if stat.S_ISDIR(st.st_mode) else "special"
    return entry


def _describe_stat(st: os.stat_result) -> dict[str, Any]:
    return {"type": "file", "size": st.st_size, "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "uid": st.st_uid, "gid": st.st_gid, "inode": st.st_ino,
            "mtime": iso_utc(datetime.fromtimestamp(st.st_mtime, UTC)),
            "mtime_ns": st.st_mtime_ns}


# --- writing items and the custody record --------------------------------------------------

class _Sink:
    """An item file being written: created exclusively 0600, hashed as it is written."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o600)
        os.fchmod(self.fd, 0o600)
        self.hash, self.size, self.limit, self.truncated = hashlib.sha256(), 0, limit, False

    def write(self, data: bytes) -> None:
        if self.limit is not None and self.size + len(data) > self.limit:
            data, self.truncated = data[:self.limit - self.size], True
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:  # our disk, not the source: an operational failure
            raise OperationalError(f"writing evidence failed: {e.strerror}") from e
        self.hash.update(data)
        self.size += len(data)

    def close(self) -> None:
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)


@dataclass(frozen=True)
class _Step:
    kind: str
    name: str
    description: str
    source: str
    method: str
    write: Callable[[_Sink], str | None]   # returns an error, or None


def _json_step(kind: str, description: str, source: str, method: str,
               build: Callable[[], dict[str, Any]]) -> _Step:
    def write(sink: _Sink) -> str | None:
        error = None
        try:
            doc = build()
        except Exception as e:  # one failed source never stops the collection
            error = f"{source}: {type(e).__name__}: {e}"
            doc = {"error": error}
        sink.write(json.dumps(display_tree(doc), ensure_ascii=False, indent=1).encode("utf-8")
                   + b"\n")
        return error
    return _Step(kind, f"{kind}.json", description, source, method, write)


def _log_step(src: str, name: str, limit: int) -> _Step:
    def write(sink: _Sink) -> str | None:
        # Opened without following a symlink; copied and hashed in one pass (what
        # shutil.copy2 does, plus the size cap), then the source's times are kept.
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OSError(e.errno, "a symlink, not followed") from e
            raise
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{src} is not a regular file")
            try:
                while (chunk := f.read(CHUNK)) and not sink.truncated:
                    sink.write(chunk)
            except OSError as e:
                return f"reading {src} failed after {sink.size} bytes: {e.strerror}"
        with contextlib.suppress(OSError):
            os.utime(sink.fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        return None
    return _Step("log", name, f"copy of {src} (up to {limit} bytes)", src,
                 "copy (O_NOFOLLOW), times preserved", write)


def _journal_step(journalctl: str, limit: int) -> _Step:
    argv = (journalctl, *JOURNAL_ARGV[1:])

    def write(sink: _Sink) -> str | None:
        try:
            done = process.run(argv, env=process.base_env(), timeout=60,
                               on_line=lambda line: sink.write(line.encode("utf-8")))
        except SecopsError as e:
            return e.message
        if done.returncode != 0:
            return f"journalctl exited with {done.returncode}: {done.stderr.strip()[:500]}"
        return None
    return _Step("journal", "logs/journal.txt", f"the system journal of the last 2 hours "
                 f"(up to {limit} bytes)", " ".join(JOURNAL_ARGV), "journalctl", write)


def plan_steps(cfg: Config, paths: Sequence[str], pids: Sequence[int],
               limits: Limits = Limits()) -> list[_Step]:
    """What will be collected, most volatile first (RFC 3227, 2.1)."""
    roots = cfg.paths.watch
    proc = "read from /proc"
    steps = [
        _json_step("processes", "every process: ids, command line, exe, cwd, start time; "
                   "the suspected writers marked", "/proc/*/{stat,status,cmdline,exe,cwd}",
                   proc, lambda: processes_doc(pids)),
        _json_step("network", "TCP/UDP sockets (IPv4, IPv6) and the processes holding them",
                   "/proc/net/{tcp,tcp6,udp,udp6}, /proc/*/fd", proc, network_doc),
        _json_step("users", "logged-in users", " or ".join(UTMP_FILES),
                   "struct utmp records (USER_PROCESS)", users_doc),
        _json_step("open_files", "descriptors open on the watched folders and the event's "
                   "files, with their access mode", "/proc/*/fd, /proc/*/fdinfo", proc,
                   lambda: open_files_doc(roots, paths, pids)),
        _json_step("file_hashes", f"SHA-256 and metadata of the {len(paths)} file(s) the "
                   "event names", ", ".join(map(display, paths)) or "(none)",
                   "lstat, streaming SHA-256 (symlinks not followed)",
                   lambda: file_hashes_doc(paths)),
    ]
    audit = Path(cfg.paths.state_dir) / "audit"
    sources = [*cfg.logs.seal, str(audit / "audit.jsonl"), str(audit / "checkpoints.jsonl")]
    names: set[str] = set()
    for src in dict.fromkeys(sources):
        if os.path.lexists(src):
            name = _unique(f"logs/{os.path.basename(src)}", names)
            steps.append(_log_step(src, name, limits.log_bytes))
    journalctl = shutil.which("journalctl", path=process.base_env()["PATH"])
    if journalctl:
        steps.append(_journal_step(journalctl, limits.journal_bytes))
    return steps


def _unique(name: str, taken: set[str], exists: Callable[[str], bool] = lambda n: False
            ) -> str:
    """``name``, or ``logs/auth-2.log`` and so on when it is taken: nothing is overwritten."""
    head, slash, tail = name.rpartition("/")
    stem, dot, suffix = tail.partition(".")
    candidate, n = name, 1
    while candidate in taken or exists(candidate):
        n += 1
        candidate = f"{head}{slash}{stem}-{n}{dot}{suffix}"
    taken.add(candidate)
    return candidate


@overload
def collect(cfg: Config, folder: Path, *, paths: Sequence[str] = ..., pids: Sequence[int] = ...,
            dry_run: Literal[False] = ..., incident: str | None = ...,
            clock: Clock | None = ..., limits: Limits = ...) -> list[Item]: ...
@overload
def collect(cfg: Config, folder: Path, *, paths: Sequence[str] = ..., pids: Sequence[int] = ...,
            dry_run: Literal[True], incident: str | None = ...,
            clock: Clock | None = ..., limits: Limits = ...) -> list[dict[str, str]]: ...
@overload
def collect(cfg: Config, folder: Path, *, paths: Sequence[str] = ..., pids: Sequence[int] = ...,
            dry_run: bool, incident: str | None = ...,
            clock: Clock | None = ..., limits: Limits = ...
            ) -> list[Item] | list[dict[str, str]]: ...
def collect(cfg: Config, folder: Path, *, paths: Sequence[str] = (), pids: Sequence[int] = (),
            dry_run: bool = False, incident: str | None = None, clock: Clock | None = None,
            limits: Limits = Limits()) -> list[Item] | list[dict[str, str]]:
    """Collect into ``folder`` (created 0700); with ``dry_run`` only say what would be."""
    steps = plan_steps(cfg, paths, pids, limits)
    if dry_run:
        return [{"kind": s.kind, "description": s.description, "source": s.source}
                for s in steps]
    clock = clock or SystemClock()
    ensure_private_dir(folder)
    seq, prev = _custody_tail(folder / CUSTODY)
    collector = {"host": socket.gethostname(), "pid": os.getpid(), "uid": os.geteuid(),
                 "program": f"secops {__version__}"}
    items = []
    for step in steps:
        seq += 1
        item = _collect_one(folder, step, seq, iso_utc(clock.now()), limits)
        prev = _append_custody(folder / CUSTODY, item, collector, incident, prev)
        items.append(item)
    return items


def _collect_one(folder: Path, step: _Step, seq: int, when: str, limits: Limits) -> Item:
    limit = {"journal": limits.journal_bytes, "log": limits.log_bytes}.get(step.kind)
    name = _free_name(folder, step.name)
    sink = _Sink(folder / name, limit)
    try:
        error = step.write(sink)
        unopened = False
    except OSError as e:  # the source could not be opened: the item is the error document
        error, unopened = f"{step.source}: {e.strerror or e}", True
    finally:
        sink.close()
    if unopened:
        os.unlink(folder / name)
        name = _free_name(folder, f"{name}.error.json")
        sink = _Sink(folder / name)
        try:
            sink.write(json.dumps(display_tree({"source": step.source, "error": error}),
                                  ensure_ascii=False).encode("utf-8") + b"\n")
        finally:
            sink.close()
    _fsync_dir(folder / name)
    return Item(seq, name, step.kind, step.description, step.source, when,
                sink.hash.hexdigest(), sink.size, step.method, error, sink.truncated)


def _free_name(folder: Path, name: str) -> str:
    ensure_private_dir((folder / name).parent)
    return _unique(name, set(), lambda n: os.path.lexists(folder / n))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode_custody(item: Item, collector: dict[str, Any], incident: str | None,
                    prev: str) -> bytes:
    record = {"seq": item.seq, "name": item.name, "kind": item.kind,
              "description": item.description, "source": item.source,
              "collected_at": item.collected_at, "sha256": item.sha256, "size": item.size,
              "method": item.method, "error": item.error, "truncated": item.truncated,
              "collector": collector, "incident": incident, "prev": prev}
    return json.dumps(display_tree(record), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def _append_custody(path: Path, item: Item, collector: dict[str, Any], incident: str | None,
                    prev: str) -> str:
    line = _encode_custody(item, collector, incident, prev)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, line + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return line_hash(line)


def _custody_lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().split(b"\n") if ln]


def _custody_tail(path: Path) -> tuple[int, str]:
    """(last seq, hash of the last line) of an existing record: a second run continues it."""
    try:
        lines = _custody_lines(path)
    except FileNotFoundError:
        return 0, GENESIS_PREV
    if not lines:
        return 0, GENESIS_PREV
    try:
        seq = int(json.loads(lines[-1])["seq"])
    except (ValueError, KeyError, TypeError):
        seq = len(lines)
    return seq, line_hash(lines[-1])


def custody_head(folder: Path) -> str:
    """The SHA-256 of the custody record's last line: record it outside the folder."""
    return _custody_tail(folder / CUSTODY)[1]


# --- verification --------------------------------------------------------------------------

def verify_custody(folder: Path, *, head: str | None = None) -> list[str]:
    """Problems found: every item re-hashed against its custody line, the chain intact, and
    (with ``head`` from :func:`custody_head`) the last line unchanged. [] when all is good."""
    path = folder / CUSTODY
    try:
        lines = _custody_lines(path)
    except OSError as e:
        return [f"{path}: cannot read the custody record: {e.strerror}"]
    if not lines:
        return [f"{path}: the custody record is empty"]
    problems: list[str] = []
    prev, expected = GENESIS_PREV, 1
    for n, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            problems.append(f"{path}, line {n}: not a custody record (edited?)")
            prev = line_hash(line)
            continue
        label = f"{path}, line {n} (item {rec.get('name')!r})"
        if rec.get("prev") != prev:
            problems.append(f"{label}: the custody chain is broken: prev does not match "
                            f"line {n - 1}; a line was edited, removed or reordered")
        if rec.get("seq") != expected:
            problems.append(f"{label}: seq {rec.get('seq')!r}, expected {expected}")
        expected = rec["seq"] + 1 if isinstance(rec.get("seq"), int) else expected + 1
        prev = line_hash(line)
        problems += _check_item(folder, rec, label)
    if head is not None and head != prev:
        problems.append(f"{path}: the last line does not match the recorded head {head}: "
                        "the record was edited or cut at its end")
    return problems


def _check_item(folder: Path, rec: dict[str, Any], label: str) -> list[str]:
    name = rec.get("name")
    if not isinstance(name, str) or name.startswith("/") or ".." in name.split("/"):
        return [f"{label}: bad item name"]
    path = folder / name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return [f"{label}: the item file {path} is missing"]
    except OSError as e:
        return [f"{label}: cannot read {path}: {e.strerror}"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{label}: {path} is not a regular file"]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        return [f"{label}: cannot read {path}: {e.strerror}"]
    if digest != rec.get("sha256") or st.st_size != rec.get("size"):
        return [f"{label}: {path} was changed: SHA-256 {digest} ({st.st_size} bytes), "
                f"custody says {rec.get('sha256')} ({rec.get('size')} bytes)"]
    return []


