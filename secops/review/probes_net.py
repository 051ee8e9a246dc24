"""Probes of the network, the kernel, updates, time and disks (adapter).

Sockets and kernel settings come from ``ROOT/proc``; the firewall from ``nft -j list
ruleset`` (the running kernel's ruleset); pending upgrades from ``apt-get -s`` against the
root's own dpkg status and package lists (nothing is downloaded); time from ``timedatectl``,
else the kernel's ``adjtimex`` state.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

from secops.backup.targets import parse_repository
from secops.review import network, system
from secops.review.host import Context, Host, first_line
from secops.review.model import Finding, NotApplicable, Text, Unknown

LISTENER_IDS = ("net.tcp_listeners", "net.udp_listeners")
FIREWALL_IDS = ("firewall.present", "firewall.input_policy")
SYSCTL_IDS = ("kernel.ip_forward", "kernel.syncookies", "kernel.aslr")
UPDATE_CONF_IDS = ("updates.unattended", "updates.security_origin")
PENDING_IDS = ("updates.pending_security", "updates.lists_age")
DISK_IDS = ("disk.watch", "disk.state", "disk.target", "disk.inodes")
MAX_PIDS = 4096
MAX_FDS = 100_000
APT_TIMEOUT_S = 90.0
FIREWALL_UNITS = ("nftables", "ufw", "firewalld", "netfilter-persistent")


def enabled_units(h: Host, names: tuple[str, ...]) -> list[str]:
    """``X.target.wants/NAME.service`` links under ``/etc/systemd/system`` for ``names``."""
    base = h.path("/etc/systemd/system")
    wanted = {f"{n}.service" for n in names}
    return [f"{base}/{d}/{u}" for d in h.listdir(base) if d.endswith(".wants")
            for u in h.listdir(base / d) if u in wanted]


def socket_owners(h: Host, inodes: set[int]) -> dict[int, str]:
    """socket inode -> ``name pid N`` from ``ROOT/proc/*/fd`` (bounded; unreadable skipped)."""
    found: dict[int, str] = {}
    proc, seen = h.path("/proc"), 0
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()][:MAX_PIDS]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            seen += 1
            if seen > MAX_FDS or len(found) == len(inodes):
                return found
            try:
                target = os.readlink(proc / pid / "fd" / fd)
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                comm = h.read_text(proc / pid / "comm", limit=256)
                found[int(target[8:-1])] = f"{(comm or '?').strip()} pid {pid}"
    return found


def probe_listeners(ctx: Context) -> list[Finding]:
    h = ctx.host
    sockets = []
    tables = 0
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        text = h.read_text(h.path(f"/proc/net/{proto}"), limit=64 << 20)
        if text is not None:
            tables += 1
            sockets += network.parse_proc_net(proto, text)
    if tables == 0:
        raise Unknown(Text(f"không có {h.path('/proc/net')}", f"no {h.path('/proc/net')}"))
    names = socket_owners(h, {s.inode for s in sockets if s.inode})
    return network.listener_findings(sockets, names)


def probe_firewall(ctx: Context) -> list[Finding]:
    done = ctx.host.run("nft", ["-j", "list", "ruleset"])
    if done.returncode != 0:
        why = first_line(done.stderr) or f"exit {done.returncode}"
        raise Unknown(Text(f"nft list ruleset thất bại: {why}", f"nft list ruleset failed: {why}"))
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        raise Unknown(Text("nft không trả về JSON", "nft did not print JSON")) from None
    return network.firewall_findings(doc, own_table=ctx.cfg.intrusion.nft_table)


def probe_firewall_boot(ctx: Context) -> list[Finding]:
    links = enabled_units(ctx.host, FIREWALL_UNITS)
    if links:
        return [Finding("firewall.persistent", "pass", Text("; ".join(links), "; ".join(links)))]
    names = ", ".join(FIREWALL_UNITS)
    return [Finding("firewall.persistent", "fail",
                    Text(f"không dịch vụ tường lửa nào bật khi khởi động ({names})",
                         f"no firewall service enabled at boot ({names})"))]


def probe_sysctl(ctx: Context) -> list[Finding]:
    h = ctx.host
    values = {}
    for key in ("net/ipv4/ip_forward", "net/ipv4/tcp_syncookies", "kernel/randomize_va_space"):
        values[key] = h.read_text(h.path(f"/proc/sys/{key}"), limit=64)
    return network.sysctl_findings(values)


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("rest", ctypes.c_long * 32)]


def _kernel_clock() -> tuple[bool, str]:
    """adjtimex(2) with modes 0 (reads only): TIME_ERROR (5) or STA_UNSYNC: not synced."""
    tx = _Timex()
    state = ctypes.CDLL(None, use_errno=True).adjtimex(ctypes.byref(tx))
    unsync = bool(tx.status & 0x0040) or state == 5
    return (not unsync, f"adjtimex state {state}, status 0x{tx.status:04x}, "
            f"maxerror {tx.maxerror} us")


def probe_time(ctx: Context) -> list[Finding]:
    """The clock of the machine running the review (whatever the root)."""
    try:
        done = ctx.host.run("timedatectl", ["show", "-p", "NTP", "-p", "NTPSynchronized"])
        props = dict(line.partition("=")[::2] for line in done.stdout.splitlines())
        if done.returncode == 0 and "NTPSynchronized" in props:
            shown = f"NTP={props.get('NTP')}, NTPSynchronized={props['NTPSynchronized']}"
            return [system.time_finding("timedatectl", props["NTPSynchronized"] == "yes",
                                        shown)]
    except Unknown:
        pass  # no timedatectl: the kernel knows all the same
    try:
        synced, detail = _kernel_clock()
    except (OSError, AttributeError) as e:
        raise Unknown(Text(f"không đọc được trạng thái đồng hồ: {e}",
                           f"cannot read the clock state: {e}")) from None
    return [system.time_finding("kernel", synced, detail)]


def probe_time_service(ctx: Context) -> list[Finding]:
    return [system.time_service_finding(enabled_units(ctx.host, system.TIME_SERVICES))]


def _apt_conf(h: Host) -> str:
    parts = [h.read_text(h.path("/etc/apt/apt.conf")) or ""]
    folder = h.path("/etc/apt/apt.conf.d")
    for name in h.listdir(folder):
        if all(c.isalnum() or c in "_-." for c in name) and \
                not name.endswith((".disabled", ".bak", "~")) and ".dpkg-" not in name:
            parts.append(h.read_text(folder / name) or "")
    return "\n".join(parts)


def _dpkg_status(h: Host) -> str:
    text = h.read_text(h.path("/var/lib/dpkg/status"), limit=64 << 20)
    if text is None:
        raise NotApplicable(Text("không có /var/lib/dpkg/status: không phải Debian",
                                 "no /var/lib/dpkg/status: not a Debian system"))
    return text


def probe_update_config(ctx: Context) -> list[Finding]:
    h = ctx.host
    installed = system.package_installed(_dpkg_status(h), "unattended-upgrades")
    return system.unattended_findings(installed, system.parse_apt_conf(_apt_conf(h)))


def lists_age(h: Host, now: float) -> float | None:
    newest = None
    folder = h.path("/var/lib/apt/lists")
    stamps = [folder / n for n in h.listdir(folder) if n.endswith("Release")]
    stamps.append(h.path("/var/lib/apt/periodic/update-success-stamp"))
    for p in stamps:
        st = h.stat(p)
        if st is not None and (newest is None or st.st_mtime > newest):
            newest = st.st_mtime
    return None if newest is None else max(0.0, now - newest)


def probe_pending(ctx: Context) -> list[Finding]:
    h = ctx.host
    _dpkg_status(h)
    root = str(h.root).rstrip("/") + "/"
    done = h.run("apt-get", [
        "-s", "-q", "-o", "Debug::NoLocking=1", "-o", f"Dir={root}",
        "-o", f"Dir::State::status={h.path('/var/lib/dpkg/status')}",
        "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "dist-upgrade"],
        timeout=APT_TIMEOUT_S, env={"DEBIAN_FRONTEND": "noninteractive"})
    age = lists_age(h, ctx.now)
    if done.returncode != 0:
        why = first_line(done.stderr) or f"exit {done.returncode}"
        unknown = Finding("updates.pending_security", "unknown",
                          Text(f"apt-get -s thất bại: {why}", f"apt-get -s failed: {why}"))
        return [unknown, system.lists_finding(age)]
    return [system.pending_finding(system.pending_upgrades(done.stdout), age),
            system.lists_finding(age)]


def probe_reboot(ctx: Context) -> list[Finding]:
    h = ctx.host
    flag = h.path("/run/reboot-required")
    if h.stat(flag) is None:
        return [Finding("updates.reboot_required", "pass",
                        Text(f"không có {flag}", f"no {flag}"))]
    pkgs = (h.read_text(h.path("/run/reboot-required.pkgs")) or "").split()
    shown = f"{flag}" + (f": {', '.join(pkgs[:50])}" if pkgs else "")
    return [Finding("updates.reboot_required", "fail", Text(shown, shown))]


def _space(h: Host, label: str, path: str) -> system.Space:
    p = h.path(path)
    while not p.exists() and p != p.parent:
        p = p.parent  # a folder not made yet lives on the disk of its nearest parent
    try:
        st = os.statvfs(p)
    except OSError as e:
        raise Unknown(Text(f"không đọc được dung lượng {p}: {e.strerror}",
                           f"cannot read the free space of {p}: {e.strerror}")) from None
    return system.Space(label, str(h.path(path)), st.f_blocks * st.f_frsize,
                        st.f_bavail * st.f_frsize, st.f_files, st.f_favail)


def probe_disks(ctx: Context) -> list[Finding]:
    h, cfg = ctx.host, ctx.cfg
    watch = [_space(h, "watch", w) for w in cfg.paths.watch]
    state = [_space(h, "state", cfg.paths.state_dir)]
    targets = []
    for t in cfg.backup.targets:
        ep = parse_repository(t.repository)
        if ep.kind == "local" and ep.path:
            targets.append(_space(h, f"target {t.name}", str(Path(ep.path))))
    return system.disk_findings(watch, state, targets)
