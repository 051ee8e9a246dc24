"""``secops block`` / ``unblock`` / ``blocked`` and the ``block`` / ``unblock`` playbook
actions against real nftables, seen from the attacker's side.

Everything runs inside two network namespaces this module creates: a server (a real sshd,
secops, an ``inet office`` table of the office's own) and a client with two IPv4 and two
IPv6 addresses, joined by a veth pair. The host's own ruleset is compared before and after
every test; so is the office's table in the server namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.daemon import wait_for
from integration.office import Office, target_toml
from integration.servers import SSHD, SSHD_CONFIG, ManagedProcess, minimal_env, run_checked

pytestmark = [pytest.mark.requires_sshd, pytest.mark.requires_restic]

PORT = 22
CONNECT_S = 2.0     # a dropped SYN is a timeout; an answer on a veth takes microseconds
PROBE = """
import socket, sys
src, dst, port, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(wait)
try:
    s.bind((src, 0))
    s.connect((dst, port))
    banner = s.recv(64)
except OSError as e:
    print(f"no answer: {e}")
    sys.exit(1)
print(banner.decode("ascii", "replace").strip())
sys.exit(0 if banner.startswith(b"SSH-2.0") else 1)
"""
OFFICE_TABLE = """\
table inet office {
    set office_hosts {
        type ipv4_addr
        elements = { 192.0.2.10, 192.0.2.11 }
    }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr 192.0.2.99 counter drop
        ip saddr @office_hosts accept
    }
}
"""
PLAYBOOK = """\
id: {id}
version: 1
name: "Chặn địa chỉ nguồn ({id})"
description: A test playbook for the {action} action.
severity: high
trigger:
  event: auth.bruteforce
steps:
  - id: act
    action: {action}
    with: {args}
    on_success: done
    on_failure: refused
  - id: done
    type: end
  - id: refused
    type: end
"""


def nft_tool() -> str:
    found = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    assert found, "nft is not installed: run 'make deps' (apt-get install nftables)"
    return found


def host(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout


@dataclass
class Net:
    """The two namespaces and their addresses."""

    srv: str
    cli: str
    n: int

    def v4(self, last: int) -> str:
        return f"10.211.{self.n}.{last}"

    def v6(self, last: int) -> str:
        return f"fd00:211:{self.n:x}::{last}"

    def run(self, ns: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=False)

    def nft(self, *args: str) -> str:
        done = self.run(self.srv, nft_tool(), *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def reaches(self, src: str) -> bool:
        """An SSH banner from the server, on a connection from ``src`` (the client's)."""
        dst = self.v6(1) if ":" in src else self.v4(1)
        done = self.run(self.cli, sys.executable, "-I", "-S", "-c", PROBE, src, dst,
                        str(PORT), str(CONNECT_S), timeout=CONNECT_S + 30)
        return done.returncode == 0


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    nft_tool()
    assert shutil.which("ip"), "ip (iproute2) is not installed"
    tag = secrets.token_hex(3)
    n = 1 + secrets.randbelow(250)
    made = Net(f"secops-srv-{tag}", f"secops-cli-{tag}", n)
    try:
        for ns in (made.srv, made.cli):
            host("ip", "netns", "add", ns)
            host("ip", "-n", ns, "link", "set", "lo", "up")
        # created inside the server namespace, its peer moved straight into the client's:
        # no interface ever appears in the host's namespace
        host("ip", "-n", made.srv, "link", "add", "s0", "type", "veth", "peer", "name", "c0",
             "netns", made.cli)
        host("ip", "-n", made.srv, "addr", "add", f"{made.v4(1)}/24", "dev", "s0")
        host("ip", "-n", made.srv, "addr", "add", f"{made.v6(1)}/64", "dev", "s0", "nodad")
        for last in (2, 3):
            host("ip", "-n", made.cli, "addr", "add", f"{made.v4(last)}/24", "dev", "c0")
            host("ip", "-n", made.cli, "addr", "add", f"{made.v6(last)}/64", "dev", "c0",
                 "nodad")
        for ns, dev in ((made.srv, "s0"), (made.cli, "c0")):
            host("ip", "-n", ns, "link", "set", dev, "up")
        # the office's own table, there before secops ever runs
        subprocess.run(["ip", "netns", "exec", made.srv, nft_tool(), "-f", "-"],
                       input=OFFICE_TABLE, text=True, check=True, timeout=30)
        yield made
    finally:
        for ns in (made.cli, made.srv):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)
    assert made.srv not in host("ip", "netns", "list")


@pytest.fixture(scope="module")
def sshd(net: Net, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A real sshd inside the server namespace, on both of its addresses."""
    work = tmp_path_factory.mktemp("ns-sshd")
    env = minimal_env(work)
    key = work / "ssh_host_ed25519_key"
    run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], env)
    (work / "authorized_keys").write_text("")
    config = work / "sshd_config"
    config.write_text(SSHD_CONFIG.format(host=net.v4(1), port=PORT, host_key=key,
                                         pid_file=work / "sshd.pid",
                                         authorized_keys=work / "authorized_keys")
                      + f"ListenAddress {net.v6(1)}\n")
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    proc = ManagedProcess(["ip", "netns", "exec", net.srv, SSHD, "-D", "-e", "-f", str(config),
                           "-h", str(key), "-p", str(PORT)], log_path=work / "sshd.log",
                          env=env)
    proc.start()
    try:
        proc.wait_ready(lambda: net.reaches(net.v4(3)) and net.reaches(net.v6(3)),
                        timeout=30, what="sshd in the server namespace")
        yield proc
    finally:
        proc.stop()


@dataclass
class Secops:
    """The real CLI, run inside the server namespace."""

    net: Net
    office: Office

    def __call__(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.office.root), "LANG": "C.UTF-8"}
        done = subprocess.run(
            ["ip", "netns", "exec", self.net.srv, sys.executable, "-m", "secops", "--config",
             str(config or self.office.config), *args],
            capture_output=True, text=True, env=env, timeout=120, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def blocked(self) -> list[str]:
        return [r["address"] for r in self.json("blocked")]

    def audit(self, kind: str) -> list[dict[str, Any]]:
        lines = (self.office.state / "audit" / "audit.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def secops(net: Net, sshd: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
           ) -> Secops:
    root = tmp_path_factory.mktemp("ns-office")
    books = root / "playbooks"
    books.mkdir()
    for pid, action, args in (("block-source", "block", "{minutes: 2}"),
                              ("block-office-pc", "block", "{}"),
                              ("unblock-source", "unblock", "{}")):
        (books / f"{pid}.yaml").write_text(PLAYBOOK.format(id=pid, action=action, args=args),
                                           encoding="utf-8")
    tail = f"""
[intrusion]
allow = ["{net.v4(3)}", "192.168.50.0/24"]
block_minutes = 30

[playbooks]
dir = "{books}"
max_step_seconds = 60

[notify]
drop_dir = "{root / 'drop'}"
"""
    office = Office(root, [target_toml("local", str(root / "repo"))], tail=tail).write()
    done = office.run("init")
    assert done.code == 0, done.err
    return Secops(net, office)


@pytest.fixture(autouse=True)
def untouched(net: Net) -> Iterator[None]:
    """The host's ruleset and the office's own table are byte-identical after each test."""
    host_before = host(nft_tool(), "list", "ruleset")
    office_before = net.nft("list", "table", "inet", "office")
    yield
    assert host(nft_tool(), "list", "ruleset") == host_before, "the host's ruleset changed"
    assert net.nft("list", "table", "inet", "office") == office_before
    tables = set(net.nft("list", "tables").splitlines())
    assert tables <= {"table inet office", "table inet secops"}, tables


@pytest.fixture(autouse=True)
def nothing_blocked(secops: Secops) -> Iterator[None]:
    yield
    for address in secops.blocked():
        secops("unblock", address)


def test_block_drops_one_address_and_the_other_still_connects(net: Net, secops: Secops) -> None:
    assert net.reaches(net.v4(2)) and net.reaches(net.v4(3))  # before: both get in
    done = secops("block", net.v4(2), "--minutes", "2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["address"] == net.v4(2) and doc["table"] == "inet secops"
    assert doc["set"] == "blocked4" and doc["outcome"] == "added"
    assert 100 < doc["expires_in_s"] <= 120 and doc["expires_at"].endswith("Z")
    assert not net.reaches(net.v4(2))            # the attacker's address: dropped
    assert net.reaches(net.v4(3))                # the other one still gets in
    assert net.reaches(net.v6(2))                # and the attacker's IPv6 address was not named
    listed = secops.json("blocked")
    assert [r["address"] for r in listed] == [net.v4(2)]
    assert 100 < listed[0]["expires_in_s"] <= 120
    assert listed[0]["reason"] == "by hand (cli:root)"
    human = secops("blocked").stdout
    assert net.v4(2) in human and "by hand (cli:root)" in human
    record = secops.audit("address.blocked")[-1]
    assert record["actor"] == "cli:root" and record["data"]["address"] == net.v4(2)
    # a refresh renews it, a shorter block keeps the longer one
    again = secops.json("block", net.v4(2), "--minutes", "5")
    assert again["outcome"] == "renewed" and again["expires_in_s"] > 280
    shorter = secops.json("block", net.v4(2), "--minutes", "0.05")
    assert shorter["outcome"] == "kept" and shorter["expires_in_s"] > 280
    # unblock lifts it at once
    lifted = secops.json("unblock", net.v4(2))
    assert lifted["was_blocked"] and net.reaches(net.v4(2))
    assert secops.blocked() == []
    assert secops.audit("address.unblocked")[-1]["data"]["address"] == net.v4(2)
    assert secops.json("unblock", net.v4(2))["was_blocked"] is False  # idempotent


def test_a_short_block_expires_by_itself(net: Net, secops: Secops) -> None:
    started = time.monotonic()
    done = secops.json("block", net.v4(2), "--minutes", "0.05")  # 3 s
    assert done["expires_in_s"] <= 3
    blocked_at = time.monotonic()
    # dropped while the block lasts (a machine so slow that 3 s passed already proves
    # nothing here: the other tests show a longer block holding)
    assert not net.reaches(net.v4(2)) or time.monotonic() - started > 3.0
    assert secops.blocked() == [net.v4(2)]
    wait_for(lambda: net.reaches(net.v4(2)), 60, "the 3 s block to expire")
    assert time.monotonic() - blocked_at >= 2.0  # it held until (about) its end
    wait_for(lambda: secops.blocked() == [], 30, "the expired element to leave the set")
    assert net.reaches(net.v4(3))


def test_ipv6_and_an_ipv4_mapped_address(net: Net, secops: Secops) -> None:
    doc = secops.json("block", net.v6(2), "--minutes", "2")
    assert doc["set"] == "blocked6"
    assert not net.reaches(net.v6(2)) and net.reaches(net.v6(3))
    assert net.reaches(net.v4(2))
    mapped = secops.json("block", f"::ffff:{net.v4(2)}", "--minutes", "2")
    assert mapped["address"] == net.v4(2) and mapped["set"] == "blocked4"
    assert not net.reaches(net.v4(2)) and net.reaches(net.v4(3))
    assert sorted(secops.blocked()) == sorted([net.v4(2), net.v6(2)])


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "127.8.9.10", "::ffff:127.0.0.1",
                                     "ALLOWED", "192.168.50.77", "SERVER", "SERVER6",
                                     "fe80::1", "224.0.0.5", "0.0.0.0", "10.211.0.0/16",  # noqa: S104
                                     "attacker.example"])
def test_what_is_never_blocked_is_refused_and_nothing_changes(
        net: Net, secops: Secops, address: str) -> None:
    address = {"ALLOWED": net.v4(3), "SERVER": net.v4(1), "SERVER6": net.v6(1)}.get(
        address, address)
    secops.json("block", net.v4(2), "--minutes", "2")   # something there, to stay as it is
    before = net.nft("-j", "list", "set", "inet", "secops", "blocked4")
    done = secops("block", address, "--minutes", "5")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("secops: error: "), lines
    assert secops.blocked() == [net.v4(2)]
    after = net.nft("-j", "list", "set", "inet", "secops", "blocked4")
    strip = [{k: v for k, v in e["elem"].items() if k != "expires"}
             for e in json.loads(after)["nftables"][1]["set"]["elem"]]
    assert strip == [{k: v for k, v in e["elem"].items() if k != "expires"}
                     for e in json.loads(before)["nftables"][1]["set"]["elem"]]
    assert net.reaches(net.v4(3))


def test_a_failing_nft_is_an_operational_error_with_its_message(
        net: Net, secops: Secops) -> None:
    """A table of secops's name whose set is not secops's: nft refuses, nothing changes."""
    clash = secops.office.root / "clash.toml"
    clash.write_text(secops.office.config.read_text().replace(
        "[intrusion]\n", '[intrusion]\nnft_table = "clash"\n'), encoding="utf-8")
    net.nft("add", "table", "inet", "clash")
    net.nft("add", "set", "inet", "clash", "blocked4", "{ type ipv6_addr; }")
    try:
        before = net.nft("list", "table", "inet", "clash")
        done = secops("block", net.v4(2), config=clash)
        assert done.returncode == 3, done.stderr
        assert "nft could not block" in done.stderr and "Error:" in done.stderr
        assert net.nft("list", "table", "inet", "clash") == before
        assert net.reaches(net.v4(2))
    finally:
        net.nft("delete", "table", "inet", "clash")


def event(root: Path, source: str) -> Path:
    path = root / f"event-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps({
        "kind": "auth.bruteforce", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": "intrusion", "severity": "high",
        "details": {"source": source, "service": "sshd", "failures": 6}}), encoding="utf-8")
    return path


def test_the_playbook_actions_block_and_unblock_the_events_source(
        net: Net, secops: Secops) -> None:
    ev = event(secops.office.root, net.v4(2))
    dry = secops.json("playbook", "test", "block-source", "--event", str(ev), "--dry-run")
    assert f"drop every packet from {net.v4(2)} for 2 min" in dry["steps"][0]["would"]
    assert secops.blocked() == [] and net.reaches(net.v4(2))  # a dry run changes nothing

    run = secops.json("playbook", "test", "block-source", "--event", str(ev))
    assert run["ok"], run
    out = run["steps"][0]["outputs"]
    assert out["address"] == net.v4(2) and out["table"] == "inet secops"
    assert 100 < out["expires_in_s"] <= 120 and out["expires_at"]
    assert out["reason"].startswith("playbook block-source, incident INC-tan-ky-")
    assert not net.reaches(net.v4(2)) and net.reaches(net.v4(3))
    incident = secops.json("incident", "show", run["incident"])
    assert incident["state"] == "contained"

    lifted = secops.json("playbook", "test", "unblock-source", "--event", str(ev))
    assert lifted["ok"] and lifted["steps"][0]["outputs"]["was_blocked"]
    assert net.reaches(net.v4(2)) and secops.blocked() == []


def test_a_playbook_never_blocks_an_allow_listed_address(net: Net, secops: Secops) -> None:
    ev = event(secops.office.root, net.v4(3))
    dry = secops.json("playbook", "test", "block-office-pc", "--event", str(ev), "--dry-run")
    assert "refused" in dry["steps"][0]["would"] and "allow-listed" in dry["steps"][0]["would"]
    done = secops("playbook", "test", "block-office-pc", "--event", str(ev), "--json")
    doc = json.loads(done.stdout)
    step = doc["steps"][0]
    assert step["step"] == "act" and not step["ok"]
    assert "allow-listed" in step["error"]
    assert [s["step"] for s in doc["steps"]] == ["act", "refused"]
    assert secops.blocked() == [] and net.reaches(net.v4(3))
