"""The risk review: the pure core (score, difference, rendering in both languages) and every
check against a deliberately weakened system tree and its fixed twin (same tree, each
weakness fixed), with the real sshd -T, testparm, apt-get -s and nft."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secops import database
from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.review import SPECS, compare, load_last, probes_secops, run_review, save, score, tree
from secops.review.engine import run_probe
from secops.review.host import Context, Host
from secops.review.model import LANGS, Finding, Result, Review, Text, Unknown, spec
from secops.review.probes_host import SAMBA_IDS, SSH_OPTION_IDS, probe_samba, probe_ssh_options
from secops.review.probes_net import FIREWALL_IDS, probe_firewall
from secops.review.render import blocking, document, rows, summary
from secops.review.score import Previous
from secops.review.store import last_path
from secops.review.system import Space, disk_findings, time_finding

REPO = Path(__file__).resolve().parents[2]
NFT_RULES = """table inet filter {
  chain input { type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    tcp dport { 22, 445 } accept
  }
}
"""
# each weakness the weakened tree has, by the check that must find it
WEAKNESSES = [
    "ssh.root_login", "ssh.password_auth", "ssh.max_auth_tries", "ssh.empty_passwords",
    "ssh.x11_forwarding", "ssh.ciphers", "ssh.macs", "ssh.kex", "ssh.hostbased",
    "ssh.login_grace", "ssh.forwarding",
    "ssh.log_level", "ssh.match_override", "ssh.kbd_interactive", "ssh.config_perms",
    "ssh.host_key_perms", "accounts.empty_password", "accounts.uid0",
    "accounts.passwd_hash", "accounts.shadow_perms", "accounts.passwd_perms",
    "sudo.nopasswd_all", "sudo.everyone", "sudo.file_perms", "samba.smb1",
    "samba.map_to_guest", "samba.guest_ok", "samba.share_perms", "samba.ntlmv1",
    "samba.hosts_allow", "samba.signing", "net.tcp_listeners", "net.udp_listeners",
    "firewall.present", "firewall.input_policy", "firewall.persistent",
    "kernel.ip_forward", "kernel.syncookies", "kernel.aslr", "time.service",
    "updates.unattended", "updates.pending_security", "updates.lists_age",
    "updates.reboot_required", "files.world_writable", "files.setuid", "files.unowned",
    "files.owner", "secops.offsite_target", "secops.append_only_target",
    "secops.drill_age", "secops.k0_gone", "secops.log_sealing",
    "secops.integrity_monitor", "secops.daemon", "secops.unit_sandbox",
    "secops.state_perms", "secops.config_perms", "secops.backup_fresh",
]


def need(tool: str) -> str:
    """A real program the check runs: it must be installed (a skip would hide it)."""
    found = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert found, f"{tool} is not installed (Makefile APT_PACKAGES)"
    return found


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    p.chmod(mode)
    return p


def sshd_config(weak: bool) -> str:
    if weak:
        return ("PermitRootLogin yes\nPasswordAuthentication yes\nMaxAuthTries 10\n"
                "PermitEmptyPasswords yes\nX11Forwarding yes\nUsePAM yes\n"
                "KbdInteractiveAuthentication yes\nLoginGraceTime 300\nLogLevel QUIET\n"
                "Ciphers aes128-cbc,aes256-ctr\n"
                "KexAlgorithms diffie-hellman-group1-sha1,curve25519-sha256\n"
                "HostbasedAuthentication yes\n"
                "Match User clerk\n  PermitRootLogin yes\n")
    return ("PermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "MaxAuthTries 4\nPermitEmptyPasswords no\nX11Forwarding no\nLoginGraceTime 60\n"
            "AllowTcpForwarding no\nAllowAgentForwarding no\nLogLevel VERBOSE\n"
            "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr\n"
            "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com\n"
            "KexAlgorithms curve25519-sha256,diffie-hellman-group16-sha512\n"
            "Match User clerk\n  X11Forwarding no\n")


def smb_conf(weak: bool) -> str:
    if weak:
        return ("[global]\n  server min protocol = NT1\n  map to guest = bad user\n"
                "  ntlm auth = yes\n[bau-cu]\n  path = /srv/bau-cu\n  guest ok = yes\n"
                "  read only = no\n")
    return ("[global]\n  server min protocol = SMB2_10\n  map to guest = never\n"
            "  hosts allow = 127.0.0.1 192.168.1.0/24\n  server signing = mandatory\n"
            "[bau-cu]\n  path = /srv/bau-cu\n  guest ok = no\n  read only = no\n")


def proc_line(n: int, address: str, port: int, state: str, inode: int) -> str:
    return (f"   {n}: {address}:{port:04X} 00000000:0000 {state} 00000000:00000000 "
            f"00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0")


HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"


def proc_net(root: Path, weak: bool) -> None:
    tcp = [proc_line(0, "00000000", 22, "0A", 1001), proc_line(1, "0100007F", 631, "0A", 1002)]
    udp = [proc_line(0, "0100007F", 323, "07", 1003)]
    if weak:
        tcp.append(proc_line(2, "00000000", 8080, "0A", 1004))  # a listener on 0.0.0.0
        udp.append(proc_line(1, "00000000", 5353, "07", 1005))
    write(root, "proc/net/tcp", "\n".join([HEADER, *tcp]) + "\n")
    write(root, "proc/net/tcp6", HEADER + "\n")
    write(root, "proc/net/udp", "\n".join([HEADER, *udp]) + "\n")
    for key, bad, good in (("net/ipv4/ip_forward", "1", "0"),
                           ("net/ipv4/tcp_syncookies", "0", "1"),
                           ("kernel/randomize_va_space", "0", "2")):
        write(root, f"proc/sys/{key}", (bad if weak else good) + "\n")


DPKG = """Package: bash
Status: install ok installed
Architecture: amd64
Version: {bash}
Description: GNU Bourne Again SHell

Package: unattended-upgrades
Status: install ok installed
Architecture: all
Version: 2.9.1+nmu3
Description: automatic installation of security upgrades

"""
LISTS = "var/lib/apt/lists/security.debian.org_debian-security_dists_bookworm-security"


def apt(root: Path, weak: bool) -> None:
    write(root, "var/lib/dpkg/status", DPKG.format(bash="5.2.15-2+b2" if weak else
                                                      "5.2.15-2+b9"))
    write(root, "etc/apt/sources.list",
          "deb http://security.debian.org/debian-security bookworm-security main\n")
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    release = write(root, f"{LISTS}_Release",
                    "Origin: Debian\nLabel: Debian-Security\nSuite: stable-security\n"
                    "Codename: bookworm-security\nArchitectures: amd64\nComponents: main\n")
    write(root, f"{LISTS}_main_binary-amd64_Packages",
          "Package: bash\nArchitecture: amd64\nVersion: 5.2.15-2+b9\nPriority: required\n"
          "Filename: pool/main/b/bash/bash_5.2.15-2+b9_amd64.deb\nSize: 100\n"
          "Description: GNU Bourne Again SHell\n\n")
    if weak:  # lists a month old, no periodic upgrade, no security origin
        old = time.time() - 30 * 86400
        os.utime(release, (old, old))
        write(root, "etc/apt/apt.conf.d/20auto-upgrades",
              'APT::Periodic::Update-Package-Lists "1";\n'
              'APT::Periodic::Unattended-Upgrade "0";\n')
        write(root, "run/reboot-required", "*** System restart required ***\n")
        write(root, "run/reboot-required.pkgs", "linux-image-6.1.0-30-amd64\n")
    else:
        write(root, "etc/apt/apt.conf.d/20auto-upgrades",
              '// written by dpkg-reconfigure\nAPT::Periodic::Update-Package-Lists "1";\n'
              'APT::Periodic::Unattended-Upgrade "1";\n')
        write(root, "etc/apt/apt.conf.d/50unattended-upgrades",
              'Unattended-Upgrade::Origins-Pattern {\n'
              '  "origin=Debian,codename=${distro_codename},label=Debian-Security";\n'
              '  /* the point release too */\n'
              '  "origin=Debian,codename=${distro_codename}-updates";\n};\n')


def accounts(root: Path, weak: bool) -> None:
    users = ["root:x:0:0:root:/root:/bin/bash", "www-data:x:33:33::/var/www:/usr/sbin/nologin",
             "clerk:x:1000:1000:Cán bộ:/home/clerk:/bin/bash"]
    shadow = ["root:!:20000::::::", "www-data:*:20000::::::", "clerk:$y$j9T$abc:20000::::::"]
    if weak:
        users += ["toor:x:0:0::/root:/bin/bash", "ghost:$6$salt$hash:1001:1001::/:/bin/sh"]
        shadow += ["toor::20000::::::"]
    write(root, "etc/passwd", "\n".join(users) + "\n", 0o666 if weak else 0o644)
    write(root, "etc/group", "root:x:0:\nsudo:x:27:clerk\n")
    write(root, "etc/shadow", "\n".join(shadow) + "\n", 0o644 if weak else 0o640)
    write(root, "etc/sudoers", "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n"
          "%sudo ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n", 0o440)
    if weak:
        write(root, "etc/sudoers.d/clerk", "clerk ALL=(ALL) \\\n  NOPASSWD: ALL\n", 0o666)
        write(root, "etc/sudoers.d/everyone", "ALL ALL=(ALL) /usr/bin/less\n", 0o440)
    else:
        write(root, "etc/sudoers.d/clerk", "clerk ALL=(root) /usr/bin/systemctl restart smbd\n",
              0o440)
    # sudo skips names with a dot or ending in ~
    write(root, "etc/sudoers.d/clerk.dpkg-old", "ALL ALL=(ALL) NOPASSWD: ALL\n", 0o666)


def data(root: Path, weak: bool) -> None:
    folder = root / "srv/bau-cu/danh-sach-cu-tri"
    voters = write(root, "srv/bau-cu/danh-sach-cu-tri/thon-1.csv", "stt,ho_ten\n1,Nguyễn A\n",
                   0o666 if weak else 0o640)
    (folder / "vong").symlink_to(".")   # a link loop: one entry, never followed
    (root / "srv/bau-cu").chmod(0o777 if weak else 0o750)
    if weak:
        prog = write(root, "srv/bau-cu/tool", "#!/bin/sh\n")
        os.chown(prog, 0, 0)
        prog.chmod(0o4755)  # after chown, which clears the bit
        os.chown(write(root, "srv/bau-cu/orphan.pdf", "%PDF-1.4\n", 0o640), 4242, 4242)
        os.chown(write(root, "srv/bau-cu/web.html", "<p>\n", 0o640), 33, 33)
    os.chown(voters, 1000, 1000)


def state(root: Path, weak: bool) -> None:
    st = root / "var/lib/secops"
    (st / "keys").mkdir(parents=True)
    st.chmod(0o755 if weak else 0o700)
    write(root, "var/lib/secops/keys/restic-local.password", "x\n", 0o644 if weak else 0o600)
    write(root, "var/lib/secops/keys/audit-root.pub", "pub\n", 0o644)
    if weak:
        write(root, "var/lib/secops/keys/audit-mac.initial", "00" * 32 + "\n", 0o600)
    now = time.time()
    db = database.connect(st / "state.db")
    try:
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE targets (name TEXT PRIMARY KEY, last_ok_time TEXT);"
            "CREATE TABLE drills (time TEXT, target TEXT, snapshot_id TEXT, ok INTEGER, "
            "files_checked INTEGER, bytes INTEGER, rto_s REAL, rpo_s REAL, report TEXT);")
        beat = now - (3600 if weak else 5)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(beat))
        db.execute("INSERT INTO meta VALUES ('daemon_heartbeat', ?)", (iso,))
        db.execute("INSERT INTO meta VALUES ('monitor', ?)", (json.dumps(
            {"status": "stopped" if weak else "running", "since": iso,
             "error": "fanotify_init: EPERM" if weak else None}),))
        last = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (3 * 86400 if weak
                                                                       else 600)))
        for target in ("local", "offsite"):
            db.execute("INSERT INTO targets VALUES (?, ?)", (target, last))
        drilled = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * 86400))
        db.execute("INSERT INTO drills VALUES (?, 'offsite', 'abc', ?, 1, 1, 1, 1, 'r')",
                   (drilled, 0 if weak else 1))
        db.commit()
    finally:
        db.close()


def unit(root: Path, weak: bool) -> None:
    shipped = (REPO / "systemd/secops.service").read_text(encoding="utf-8")
    if weak:
        shipped = shipped.replace("NoNewPrivileges=yes", "NoNewPrivileges=no")
    write(root, "etc/systemd/system/secops.service", shipped)
    wants = root / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    if not weak:
        for name in ("nftables.service", "systemd-timesyncd.service"):
            (wants / name).symlink_to(f"/lib/systemd/system/{name}")


def config(root: Path, weak: bool) -> Config:
    targets: list[dict[str, Any]] = [{"name": "local", "repository": "/var/backups/secops"}]
    if not weak:
        targets.append({"name": "offsite", "repository": "rest:http://backup.tinh.example:8000/"
                        "tan-ky/", "append_only": True})
    raw: dict[str, Any] = {
        "office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky"},
        "paths": {"state_dir": "/var/lib/secops", "watch": ["/srv/bau-cu"]},
        "backup": {"targets": targets}}
    if not weak:
        raw["logs"] = {"seal": ["/var/log/auth.log"]}
    path = write(root, "etc/secops/secops.toml", "# the test builds its Config directly\n",
                 0o666 if weak else 0o640)
    return parse_config(raw, path)


def make_tree(root: Path, host_key: Path, weak: bool) -> Config:
    write(root, "etc/ssh/sshd_config", sshd_config(weak), 0o666 if weak else 0o644)
    key = root / "etc/ssh/ssh_host_ed25519_key"
    shutil.copy(host_key, key)
    key.chmod(0o600)
    if weak:  # a second host key others can read (sshd skips it, the check names it)
        shutil.copy(host_key, root / "etc/ssh/ssh_host_ecdsa_key")
        (root / "etc/ssh/ssh_host_ecdsa_key").chmod(0o644)
    write(root, "etc/samba/smb.conf", smb_conf(weak))
    proc_net(root, weak)
    apt(root, weak)
    accounts(root, weak)
    data(root, weak)
    state(root, weak)
    unit(root, weak)
    return config(root, weak)


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostkey")
    subprocess.run([need("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                    str(folder / "key")], check=True, timeout=30)
    return folder / "key"


@pytest.fixture(scope="module")
def netns() -> Iterator[dict[str, str]]:
    """Two network namespaces: one with no ruleset, one with a default-deny input chain;
    the review's nft runs inside them, so the machine's own ruleset is never touched."""
    need("nft")
    names = {"weak": f"secops-rv-weak-{os.getpid()}", "fixed": f"secops-rv-fixed-{os.getpid()}"}
    for name in names.values():
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "netns", "exec", names["fixed"], "nft", "-f", "-"],
                       input=NFT_RULES.encode(), check=True, timeout=30)
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "delete", name], check=False, timeout=30)


def review_of(root: Path, cfg: Config, ns: str) -> dict[str, Result]:
    for tool in ("sshd", "testparm", "apt-get"):
        need(tool)
    host = Host(root, programs={"nft": ["ip", "netns", "exec", ns, "nft"]})
    return {r.id: r for r in run_review(cfg, root, host=host).results}


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, host_key: Path,
          netns: dict[str, str]) -> dict[str, dict[str, Result]]:
    out = {}
    for kind in ("weak", "fixed"):
        root = tmp_path_factory.mktemp(kind)
        out[kind] = review_of(root, make_tree(root, host_key, kind == "weak"), netns[kind])
    return out


@pytest.mark.parametrize("cid", WEAKNESSES)
def test_weakness_found_and_its_fixed_twin_passes(cid: str,
                                                  twins: dict[str, dict[str, Result]]) -> None:
    weak, fixed = twins["weak"][cid], twins["fixed"][cid]
    assert weak.status == "fail", (cid, weak.found)
    assert fixed.status == "pass", (cid, fixed.found)
    assert weak.found.en and weak.found.vi


def test_findings_name_the_evidence(twins: dict[str, dict[str, Result]]) -> None:
    weak = twins["weak"]
    assert "sshd_config:1: PermitRootLogin yes" in weak["ssh.root_login"].found.en
    assert "maxauthtries 10" in weak["ssh.max_auth_tries"].found.en
    assert "sshd_config:14: PermitRootLogin yes" in weak["ssh.match_override"].found.en
    assert "toor" in weak["accounts.uid0"].found.en and "clerk" not in \
        weak["accounts.uid0"].found.en
    assert "toor" in weak["accounts.empty_password"].found.en
    assert "sudoers.d/clerk:1:" in weak["sudo.nopasswd_all"].found.en
    assert "dpkg-old" not in weak["sudo.nopasswd_all"].found.en  # sudo skips names with a dot
    assert "thon-1.csv (-rw-rw-rw-" in weak["files.world_writable"].found.en
    assert "uid 4242" in weak["files.unowned"].found.en
    assert "web.html" in weak["files.owner"].found.en
    assert "server min protocol = nt1" in weak["samba.smb1"].found.en
    assert "[bau-cu] guest ok = yes" in weak["samba.guest_ok"].found.en
    assert "tcp 0.0.0.0:8080" in weak["net.tcp_listeners"].found.en
    assert "0.0.0.0:22" not in weak["net.tcp_listeners"].found.en  # ssh is expected
    assert "bash 5.2.15-2+b2 -> 5.2.15-2+b9" in weak["updates.pending_security"].found.en
    assert "audit-mac.initial" in weak["secops.k0_gone"].found.en
    assert "NoNewPrivileges=no" in weak["secops.unit_sandbox"].found.en
    assert "linux-image" in weak["updates.reboot_required"].found.en


def test_every_check_has_one_result_and_live_checks_say_why(
        twins: dict[str, dict[str, Result]]) -> None:
    for results in twins.values():
        assert set(results) == set(SPECS)
        for r in results.values():
            assert r.found.vi and r.found.en, r.id
        # the clock is the running machine's; whatever it says, it says why
        assert results["time.sync"].status in ("pass", "fail", "unknown")
        for cid in ("disk.watch", "disk.state", "disk.target", "disk.inodes"):
            assert results[cid].status in ("pass", "fail"), results[cid].found


def test_at_least_40_checks_with_both_languages() -> None:
    assert len(SPECS) >= 40
    for s in SPECS.values():
        for text in (s.title, s.why, s.fix):
            assert text.vi.strip() and text.en.strip(), s.id
        assert any(ord(c) > 127 for c in s.why.vi), f"{s.id}: why in Vietnamese"
        assert s.id.count(".") == 1


def test_hostile_sshd_config_is_unknown_never_a_crash(tmp_path: Path, host_key: Path) -> None:
    need("sshd")
    shutil.copy(host_key, write(tmp_path, "etc/ssh/ssh_host_ed25519_key", "", 0o600))
    cfg = config(tmp_path, weak=False)
    ctx = Context(Host(tmp_path), cfg, time.time())
    conf = tmp_path / "etc/ssh/sshd_config"
    for content, expect in ((b"\x00\xff" * 1000, "binary"), (b"#" * (2 << 20), "too large"),
                            (b"PermitRootLogin maybe\n", "sshd -T refused")):
        conf.write_bytes(content)
        found = run_probe(SSH_OPTION_IDS, probe_ssh_options, ctx)
        assert {f.status for f in found.values()} == {"unknown"}
        assert expect in found["ssh.root_login"].found.en
    conf.unlink()
    os.mkfifo(conf)  # a FIFO would block a plain open()
    found = run_probe(SSH_OPTION_IDS, probe_ssh_options, ctx)
    assert "not a regular file" in found["ssh.root_login"].found.en


def test_missing_program_and_broken_probe_are_unknown(tmp_path: Path) -> None:
    write(tmp_path, "etc/samba/smb.conf", smb_conf(weak=True))
    cfg = config(tmp_path, weak=False)
    host = Host(tmp_path, programs={"testparm": ["/nonexistent/testparm"],
                                    "nft": ["/nonexistent/nft"]})
    ctx = Context(host, cfg, time.time())
    samba = run_probe(SAMBA_IDS, probe_samba, ctx)
    assert samba["samba.smb1"].status == "unknown"
    assert "not installed" in samba["samba.smb1"].found.en
    assert "chưa được cài đặt" in samba["samba.smb1"].found.vi
    assert run_probe(FIREWALL_IDS, probe_firewall, ctx)["firewall.present"].status == "unknown"

    def broken(_: Context) -> list[Finding]:
        raise KeyError("surprise")

    found = run_probe(("ssh.root_login",), broken, ctx)
    assert found["ssh.root_login"].status == "unknown"
    assert "KeyError" in found["ssh.root_login"].found.en


def test_nothing_configured_is_not_applicable(tmp_path: Path) -> None:
    cfg = config(tmp_path, weak=False)
    ctx = Context(Host(tmp_path), cfg, time.time())
    for ids, probe in ((SSH_OPTION_IDS, probe_ssh_options), (SAMBA_IDS, probe_samba)):
        assert {f.status for f in run_probe(ids, probe, ctx).values()} == {"not_applicable"}


def test_walk_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "WALK_MAX_ENTRIES", 50)
    for i in range(300):
        write(tmp_path, f"srv/bau-cu/d{i % 7}/f{i}.csv", "x\n", 0o666)
    flagged = probes_secops.walk([tmp_path / "srv/bau-cu"], None, set())
    assert flagged.truncated and flagged.entries == 50
    found = {f.id: f for f in tree.file_findings(flagged, ["/srv/bau-cu"])}
    assert found["files.world_writable"].status == "fail"


# --- the pure core ----------------------------------------------------------------------


def result(cid: str, severity: str, status: str) -> Result:
    s = spec(cid, severity, ("t", "t"), ("vì", "why"), ("sửa", "fix"))  # type: ignore[arg-type]
    return Result(s, status, Text("thấy", "found"))  # type: ignore[arg-type]


def test_score_weights_severity_over_the_checks_that_ran() -> None:
    assert score([result("a.a", "critical", "pass"), result("a.b", "low", "fail")]) == 91
    assert score([result("a.a", "high", "fail"), result("a.b", "high", "pass")]) == 50
    # unknown, not applicable and info count for nothing
    assert score([result("a.a", "high", "pass"), result("a.b", "critical", "unknown"),
                  result("a.c", "high", "not_applicable"), result("a.d", "info", "fail")]) \
        == 100
    assert score([result("a.a", "high", "unknown")]) is None


def test_compare_new_fixed_and_score_change() -> None:
    first = Review("2026-03-15T07:00:00Z", (result("a.a", "high", "fail"),
                                             result("a.b", "low", "fail"),
                                             result("a.c", "low", "pass")))
    d0 = compare(None, first)
    assert d0.new == ("a.a", "a.b") and d0.fixed == () and d0.previous_score is None
    prev = Previous("2026-03-15T07:00:00Z", score(first.results), frozenset({"a.a", "a.b"}))
    second = Review("2026-03-22T07:00:00Z", (result("a.a", "high", "pass"),
                                              result("a.b", "low", "unknown"),
                                              result("a.c", "low", "fail")))
    d1 = compare(prev, second)
    assert d1.new == ("a.c",) and d1.fixed == ("a.a",)  # unknown is neither fixed nor new
    assert d1.previous_score == 14 and d1.score == 83 and d1.change == 69


def test_render_both_languages() -> None:
    review = Review("2026-03-15T07:00:00Z", (result("a.a", "medium", "fail"),
                                              result("a.b", "critical", "fail"),
                                              result("a.c", "low", "pass")), 1.25)
    prev = Previous("2026-03-08T07:00:00Z", 100, frozenset())
    diff = compare(prev, review)
    vi, en = summary(review, diff, "vi"), summary(review, diff, "en")
    assert vi.startswith("Điểm 7/100; 3 mục kiểm tra: 1 đạt, 2 không đạt")
    assert "2 vấn đề mới, 0 vấn đề đã khắc phục" in vi and "(-93)" in vi
    assert en.startswith("Score 7/100; 3 checks: 1 passed, 2 failed") and "2 new, 0 fixed" in en
    table = rows(review, "vi")
    assert [r.check.split(":")[0] for r in table] == ["a.b", "a.a"]  # worst first
    assert table[0].severity_text == "nghiêm trọng" and rows(review, "en")[0].fix == "fix"
    doc = document(review, diff, "en")
    assert set(doc) >= {"time", "score", "previous_score", "checks", "new", "fixed"}
    assert set(doc["checks"][0]) >= {"id", "severity", "status", "found", "why", "fix"}
    assert doc["time"].endswith("Z") and doc["new"] == ["a.a", "a.b"]
    assert document(review, diff, "vi")["checks"][0]["why"] == "vì"
    assert blocking(review)
    assert not blocking(Review("t", (result("a.a", "medium", "fail"),)))
    for lang in LANGS:
        long = rows(Review("t", (Result(review.results[0].spec, "fail",
                                        Text("x" * 900, "y" * 900)),)), lang, limit=100)
        assert len(long[0].found) < 200


def test_save_is_private_and_load_survives_damage(tmp_path: Path) -> None:
    review = Review("2026-03-15T07:00:00Z", (result("a.a", "high", "fail"),))
    path = save(tmp_path, review)
    assert path == last_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    prev = load_last(tmp_path)
    assert prev is not None and prev.failed == {"a.a"} and prev.score == 0
    path.write_bytes(b"\xff{not json")
    assert load_last(tmp_path) is None
    path.write_text('{"checks": "nope"}')
    assert load_last(tmp_path) is None


def test_disk_and_time_from_values() -> None:
    gib = 1 << 30
    full = Space("watch", "/srv/bau-cu", 100 * gib, 5 * gib, 1000, 900)
    roomy = Space("state", "/var/lib/secops", 100 * gib, 50 * gib, 1000, 50)
    found = {f.id: f for f in disk_findings([full], [roomy], [])}
    assert found["disk.watch"].status == "fail" and "/srv/bau-cu" in found["disk.watch"].found.en
    assert found["disk.state"].status == "pass"
    assert found["disk.target"].status == "not_applicable"
    assert found["disk.inodes"].status == "fail"  # 50 of 1000 inodes left on the state disk
    assert time_finding("timedatectl", True, "NTPSynchronized=yes").status == "pass"
    assert time_finding("kernel", False, "adjtimex state 5").status == "fail"


def test_unknown_carries_both_languages() -> None:
    u = Unknown(Text("không đọc được", "cannot read"))
    assert str(u) == "cannot read" and u.reason.vi == "không đọc được"


def test_live_listener_is_named_by_its_process_and_loopback_is_not(tmp_path: Path) -> None:
    import socket

    from secops.review.probes_net import LISTENER_IDS, probe_listeners

    with socket.socket() as wide, socket.socket() as local:
        wide.bind(("0.0.0.0", 0))  # noqa: S104 - the listener the check must find
        wide.listen()
        local.bind(("127.0.0.1", 0))
        local.listen()
        ctx = Context(Host(Path("/")), config(tmp_path, weak=False), time.time())
        found = run_probe(LISTENER_IDS, probe_listeners, ctx)["net.tcp_listeners"].found.en
        me = Path("/proc/self/comm").read_text().strip()  # python, or pytest as CI runs it
        assert f"tcp 0.0.0.0:{wide.getsockname()[1]} ({me}" in found
        assert f":{local.getsockname()[1]}" not in found


# -- sshd_config as sshd reads it (attacker-side review) ---------------------------------------

def no_include(pattern: str) -> list[tuple[str, str]]:
    raise AssertionError(f"nothing is included here: {pattern}")


@pytest.mark.parametrize("line", [
    "PasswordAuthentication=yes", "PasswordAuthentication = yes",
    'PasswordAuthentication "yes"', "\tPermitRootLogin\tYES", "permitrootlogin=Yes  # hi"])
def test_a_match_block_weakening_in_any_spelling_sshd_reads_is_found(line: str) -> None:
    """sshd takes ``Keyword=value``, ``Keyword = value`` and quoted values: a review that
    splits on spaces only would pass a Match block that turns passwords back on."""
    from secops.review import ssh

    text = f"PasswordAuthentication no\nMatch User clerk\n{line}\n"
    found = ssh.match_overrides(ssh.flatten("sshd_config", text, no_include))
    assert found == [f"sshd_config:3: {line.strip()}"]
    twin = text.replace("yes", "no").replace("YES", "no").replace("Yes", "no")
    assert ssh.match_overrides(ssh.flatten("sshd_config", twin, no_include)) == []


def test_what_an_included_file_sets_is_what_the_review_reads() -> None:
    """Debian's sshd_config begins with ``Include /etc/ssh/sshd_config.d/*.conf``: a Match
    block there, or a setting there (sshd takes the first), is part of the config."""
    from secops.review import ssh

    files = {"/etc/ssh/sshd_config.d/*.conf": [
        ("/etc/ssh/sshd_config.d/10-pw.conf", "PasswordAuthentication yes\n"),
        ("/etc/ssh/sshd_config.d/50-clerk.conf", "Match User clerk\n  PermitRootLogin yes\n")],
        "/etc/ssh/inside.conf": [("/etc/ssh/inside.conf", "X11Forwarding yes\n")]}
    text = ("Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\n"
            "Match Address 10.0.0.0/8\n  Include inside.conf\n")
    lines = ssh.flatten("/etc/ssh/sshd_config", text, lambda p: files[p])
    assert ssh.locate(lines, "passwordauthentication") == \
        "/etc/ssh/sshd_config.d/10-pw.conf:1: PasswordAuthentication yes"
    assert ssh.match_overrides(lines) == [
        "/etc/ssh/sshd_config.d/50-clerk.conf:2: PermitRootLogin yes",
        "/etc/ssh/inside.conf:1: X11Forwarding yes"]  # included inside a Match block
    # the twin: the same files, none weakening
    calm = {k: [(n, t.replace("yes", "no")) for n, t in v] for k, v in files.items()}
    lines = ssh.flatten("/etc/ssh/sshd_config", text, lambda p: calm[p])
    assert ssh.match_overrides(lines) == []


def test_an_include_loop_ends_with_a_clear_reason() -> None:
    from secops.review import ssh

    text = "Include /etc/ssh/sshd_config\nPermitRootLogin no\n"
    with pytest.raises(Unknown) as e:
        ssh.flatten("/etc/ssh/sshd_config", text, lambda p: [(p, text)])
    assert "Include" in e.value.reason.en and e.value.reason.vi


def test_a_match_block_in_an_included_file_fails_the_review(tmp_path: Path,
                                                            host_key: Path) -> None:
    need("sshd")
    shutil.copy(host_key, write(tmp_path, "etc/ssh/ssh_host_ed25519_key", "", 0o600))
    cfg = config(tmp_path, weak=False)
    ctx = Context(Host(tmp_path), cfg, time.time())
    write(tmp_path, "etc/ssh/sshd_config",
          "Include /etc/ssh/sshd_config.d/*.conf\n" + sshd_config(weak=False))
    for value, status in (("yes", "fail"), ("no", "pass")):
        write(tmp_path, "etc/ssh/sshd_config.d/50-clerk.conf",
              f"Match User clerk\n  PasswordAuthentication {value}\n")
        found = run_probe(SSH_OPTION_IDS, probe_ssh_options, ctx)["ssh.match_override"]
        assert found.status == status, found.found
    assert "50-clerk.conf:2: PasswordAuthentication yes" not in found.found.en
    # an included file that is not a regular file: a reason, never a traceback
    (tmp_path / "etc/ssh/sshd_config.d/50-clerk.conf").unlink()
    os.mkfifo(tmp_path / "etc/ssh/sshd_config.d/50-clerk.conf")
    found = run_probe(SSH_OPTION_IDS, probe_ssh_options, ctx)["ssh.match_override"]
    assert found.status == "unknown" and "not a regular file" in found.found.en


@pytest.mark.parametrize("rule", [
    "clerk ALL=(ALL) NOPASSWD: ALL # for the backup scripts",
    "clerk ALL=(ALL:ALL) NOPASSWD:ALL#no password", "%sudo ALL = NOPASSWD: ALL\t# x"])
def test_a_nopasswd_all_rule_with_a_comment_after_it_is_found(rule: str) -> None:
    """sudo reads a ``#`` after a rule as a comment: the rule still gives every command
    without a password, and the comment must not hide it from the review."""
    from secops.review import accounts

    found = {f.id: f for f in accounts.sudo_findings([("/etc/sudoers.d/clerk", rule + "\n")])}
    assert found["sudo.nopasswd_all"].status == "fail", rule
    import re

    twin = re.sub(r"NOPASSWD:\s*ALL", "NOPASSWD: /usr/bin/rsync", rule)
    assert twin != rule
    found = {f.id: f for f in accounts.sudo_findings([("/etc/sudoers.d/clerk", twin + "\n")])}
    assert found["sudo.nopasswd_all"].status == "pass", twin


def secops_block_table(table: str = "secops") -> list[dict[str, Any]]:
    """What ``nft -j list ruleset`` shows of secops's own block table (intrusion.nft)."""
    chain = {"family": "inet", "table": table, "name": "input", "handle": 3,
             "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}
    rules = [{"rule": {"family": "inet", "table": table, "chain": "input", "handle": h,
                       "expr": [{"match": {"op": "==", "left": {"payload": {
                           "protocol": p, "field": "saddr"}}, "right": f"@blocked{v}"}},
                                {"drop": None}]}} for h, p, v in ((4, "ip", 4), (5, "ip6", 6))]
    return [{"table": {"family": "inet", "name": table, "handle": 1}}, {"chain": chain},
            *rules]


def test_secops_s_own_block_table_is_no_firewall_of_the_server() -> None:
    """Once secops has blocked an address, its own table (a chain on the input hook that
    drops only the blocked sets, policy accept) is there: that is no firewall, and the
    review must not say the server has one."""
    from secops.review import network

    only_ours = {"nftables": secops_block_table("secops")}
    found = {f.id: f for f in network.firewall_findings(only_ours, own_table="secops")}
    assert found["firewall.present"].status == "fail", found["firewall.present"].found
    assert found["firewall.input_policy"].status == "fail"
    # the twin: beside a real default-deny firewall, secops's table changes nothing
    real = {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1,
                      "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}
    both = {"nftables": [*secops_block_table("secops"), real]}
    found = {f.id: f for f in network.firewall_findings(both, own_table="secops")}
    assert [found[i].status for i in ("firewall.present", "firewall.input_policy")] == [
        "pass", "pass"]
    assert "secops" not in found["firewall.present"].found.en


@pytest.mark.parametrize("uid", ["+0", "-0", " 0", "000"])
def test_a_uid_0_spelled_as_glibc_still_reads_it_is_found(uid: str) -> None:
    """glibc reads the UID field with strtoul: a sign, leading blanks and zeros are all
    UID 0 to login, su and sshd. A backdoor account so written must not pass."""
    from secops.review import accounts

    text = f"root:x:0:0:root:/root:/bin/bash\ntoor:x:{uid}:0::/root:/bin/bash\n"
    found = {f.id: f for f in accounts.account_findings(
        accounts.parse_passwd(text), None, "/etc/passwd", "/etc/shadow")}
    assert found["accounts.uid0"].status == "fail" and "toor" in found["accounts.uid0"].found.en
    twin = text.replace(f":{uid}:0::", ":1001:0::")
    found = {f.id: f for f in accounts.account_findings(
        accounts.parse_passwd(twin), None, "/etc/passwd", "/etc/shadow")}
    assert found["accounts.uid0"].status == "pass"
