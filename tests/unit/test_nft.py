"""The pure half of the nftables block (secops/intrusion/nft.py): which addresses may be
blocked, the script text (secops's own table only), the parse of ``nft -j`` and ``ip -j``
output; the ``block``/``unblock`` plans; and nft missing, from the command line. The real
nft is exercised in tests/integration/test_nft_block.py, inside network namespaces."""

from __future__ import annotations

import ipaddress
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from minimal_config import MINIMAL_TOML

from secops.cli.main import main
from secops.config.loader import load_config
from secops.config.schema import Config
from secops.errors import ConfigError, OperationalError, ToolMissing, UsageError
from secops.intrusion import nft
from secops.playbooks.actions_net import block_plan, unblock_plan
from secops.playbooks.engine import Context
from secops.playbooks.loader import PlaybookError, load_text

ALLOW = nft.allow_networks(["192.168.1.0/24", "10.0.0.5", "2001:db8:1::/48",
                            "::ffff:172.16.0.0/108"])
OWN = {ipaddress.ip_address("192.168.9.1"), ipaddress.ip_address("2001:db8:9::1")}

# what nft 1.0.6 prints for `nft -j list table inet secops` (recorded, one element added by
# hand without a timeout, and a set of another name that is not secops's)
LISTING = json.dumps({"nftables": [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5",
                  "json_schema_version": 1}},
    {"table": {"family": "inet", "name": "secops", "handle": 1}},
    {"set": {"family": "inet", "name": "blocked4", "table": "secops", "type": "ipv4_addr",
             "handle": 1, "flags": ["timeout"], "elem": [
                 {"elem": {"val": "10.1.2.3", "timeout": 600, "expires": 579,
                           "comment": "playbook auth-bruteforce, incident INC-tan-ky-1"}},
                 {"elem": {"val": "10.1.2.4", "timeout": 60, "expires": 59}},
                 "10.1.2.5"]}},
    {"set": {"family": "inet", "name": "blocked6", "table": "secops", "type": "ipv6_addr",
             "handle": 2, "flags": ["timeout"], "elem": [
                 {"elem": {"val": "2001:db8::5", "timeout": 3600, "expires": 3599,
                           "comment": "tấn công"}}]}},
    {"set": {"family": "inet", "name": "friends", "table": "secops", "type": "ipv4_addr",
             "handle": 3, "elem": ["192.0.2.1"]}},
    {"chain": {"family": "inet", "table": "secops", "name": "input", "handle": 3,
               "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
]})


def refused(text: str) -> str | None:
    return nft.refusal(nft.parse_address(text), ALLOW, OWN)


# -- which addresses ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,want", [
    ("203.0.113.7", "203.0.113.7"), (" 10.1.2.3 ", "10.1.2.3"),
    ("2001:DB8::0:7", "2001:db8::7"), ("::ffff:1.2.3.4", "1.2.3.4"),
    ("::ffff:7f00:1", "127.0.0.1")])
def test_an_address_is_normalised(text: str, want: str) -> None:
    assert str(nft.parse_address(text)) == want


@pytest.mark.parametrize("text,words", [
    ("10.0.0.0/8", "a network"), ("fe80::1%eth0", "zone"), ("attacker.example", "not an IP"),
    ("", "not an IP"), ("1.2.3.4; flush ruleset", "not an IP"), ("1.2.3.256", "not an IP")])
def test_what_is_not_one_address_is_bad_input(text: str, words: str) -> None:
    with pytest.raises(UsageError) as e:
        nft.parse_address(text)
    assert words in e.value.message and e.value.exit_code == 2
    assert "\n" not in e.value.message


@pytest.mark.parametrize("text,words", [
    ("127.0.0.1", "loopback"), ("127.200.3.4", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("192.168.1.77", "allow-listed (intrusion.allow: 192.168.1.0/24)"),
    ("10.0.0.5", "allow-listed"), ("::ffff:10.0.0.5", "allow-listed"),
    ("2001:db8:1:ff::9", "allow-listed"), ("172.16.3.4", "allow-listed (intrusion.allow: "
                                                          "172.16.0.0/12)"),
    ("192.168.9.1", "this server"), ("2001:db8:9::1", "this server"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.251", "multicast"),  # noqa: S104
    ("ff02::1", "multicast"), ("169.254.10.1", "link-local"), ("fe80::1", "link-local"),
    ("255.255.255.255", "reserved"), ("240.0.0.1", "reserved")])
def test_what_is_never_blocked(text: str, words: str) -> None:
    why = refused(text)
    assert why is not None and words in why, why


@pytest.mark.parametrize("text", ["203.0.113.7", "192.168.2.1", "10.0.0.6", "10.0.0.4",
                                  "172.32.0.1", "2001:db8:2::1", "8.8.8.8", "128.0.0.1"])
def test_the_negative_twins_may_be_blocked(text: str) -> None:
    assert refused(text) is None


@given(st.integers(0, 2**32 - 1), st.integers(8, 32), st.integers(0, 2**32 - 1))
def test_every_address_inside_an_allowed_network_is_refused(base: int, prefix: int,
                                                            pick: int) -> None:
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    inside = net.network_address + pick % net.num_addresses
    assert nft.refusal(inside, nft.allow_networks([str(net)])) is not None
    mapped = ipaddress.IPv6Address(f"::ffff:{inside}")
    assert nft.refusal(nft.parse_address(str(mapped)), nft.allow_networks([str(net)]))


@pytest.mark.parametrize("minutes,ms", [(0.05, 3000), (60, 3_600_000), ("30", 1_800_000),
                                        (1 / 60, 1000), (10080, 604_800_000)])
def test_minutes(minutes: Any, ms: int) -> None:
    assert nft.check_minutes(minutes) == ms


@pytest.mark.parametrize("minutes", [0, -1, 0.001, 10081, float("nan"), float("inf"), "x",
                                     None])
def test_bad_minutes_are_bad_input(minutes: Any) -> None:
    with pytest.raises(UsageError):
        nft.check_minutes(minutes)


@pytest.mark.parametrize("name", ["1abc", "Secops", "a b", "x;flush ruleset", "", "a" * 33])
def test_a_table_name_nft_cannot_read_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as e:
        nft.check_table(name)
    assert "intrusion.nft_table" in e.value.message


# -- the scripts -------------------------------------------------------------------------------

@pytest.mark.parametrize("ms,text", [(3000, "3s"), (3500, "3s500ms"), (1000, "1s"),
                                     (604_800_000, "604800s")])
def test_timeout_text(ms: int, text: str) -> None:
    assert nft.timeout_text(ms) == text


def test_the_ensure_script_names_secops_s_own_table_only() -> None:
    lines = nft.ensure_script("secops").splitlines()
    assert lines == [
        "add table inet secops",
        "add set inet secops blocked4 { type ipv4_addr; flags timeout; }",
        "add set inet secops blocked6 { type ipv6_addr; flags timeout; }",
        "add chain inet secops input { type filter hook input priority -10; policy accept; }",
        "flush chain inet secops input",
        "add rule inet secops input ip saddr @blocked4 drop",
        "add rule inet secops input ip6 saddr @blocked6 drop",
    ]
    text = " ".join(lines)
    assert "ruleset" not in text and "delete" not in text and "flush table" not in text


def test_a_block_renews_in_one_transaction() -> None:
    addr = nft.parse_address("2001:db8::7")
    tail = nft.block_script("secops", addr, 3500, "playbook x").splitlines()[7:]
    assert tail == ["add element inet secops blocked6 { 2001:db8::7 }",
                    "delete element inet secops blocked6 { 2001:db8::7 }",
                    "add element inet secops blocked6 { 2001:db8::7 timeout 3s500ms "
                    'comment "playbook x" }']
    assert nft.unblock_script("secops", nft.parse_address("10.1.2.3")).splitlines() == [
        "add element inet secops blocked4 { 10.1.2.3 }",
        "delete element inet secops blocked4 { 10.1.2.3 }"]


@given(st.text(max_size=400))
def test_no_reason_can_break_out_of_the_comment(reason: str) -> None:
    script = nft.block_script("secops", nft.parse_address("10.1.2.3"), 60_000, reason)
    lines = script.splitlines()
    assert len(lines) == 10 and lines[:7] == nft.ensure_script("secops").splitlines()
    last = lines[-1]
    assert last.count('"') in (0, 2) and "\\" not in last
    comment = nft.comment_text(reason)
    assert len(comment.encode("utf-8")) <= nft.COMMENT_BYTES
    assert all(c.isalnum() or c in " -_.:/,()@+=#" or unicodedata.category(c) in ("Mn", "Mc")
               for c in comment)


def test_a_vietnamese_reason_is_kept() -> None:
    assert nft.comment_text('Dò mật khẩu SSH "6 lần"\nrm -rf /') == \
        "Dò mật khẩu SSH 6 lần rm -rf /"
    long = nft.comment_text("ạ" * 100)  # 3 bytes each: cut at a character, not in one
    assert long == "ạ" * 40
    decomposed = unicodedata.normalize("NFD", "Chặn địa chỉ")
    assert nft.comment_text(decomposed) == decomposed


# -- what nft and ip print ---------------------------------------------------------------------

def test_the_listing_is_parsed_soonest_first() -> None:
    rows = nft.parse_table(LISTING, "secops", now=1_773_558_000.0)  # 2026-03-15T07:00:00Z
    assert [r["address"] for r in rows] == ["10.1.2.4", "10.1.2.3", "2001:db8::5", "10.1.2.5"]
    assert rows[0] == {"address": "10.1.2.4", "timeout_s": 60, "reason": "",
                       "expires_in_s": 59, "expires_at": "2026-03-15T07:00:59Z",
                       "set": "blocked4"}
    assert rows[1]["reason"] == "playbook auth-bruteforce, incident INC-tan-ky-1"
    assert rows[2]["set"] == "blocked6" and rows[2]["reason"] == "tấn công"
    assert rows[3]["expires_in_s"] is None and rows[3]["expires_at"] is None  # by hand
    assert nft.parse_table(LISTING, "other", now=0.0) == []


def test_an_empty_set_and_a_listing_that_is_not_json() -> None:
    empty = json.dumps({"nftables": [{"set": {"table": "secops", "name": "blocked4"}}]})
    assert nft.parse_table(empty, "secops", 0.0) == []
    with pytest.raises(OperationalError):
        nft.parse_table("Error: something", "secops", 0.0)


def test_own_addresses_from_ip() -> None:
    text = json.dumps([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"},
                                       {"family": "inet6", "local": "::1"}]},
        {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.168.9.1"},
                                         {"family": "inet6", "local": "fe80::1"}]},
        {"ifname": "eth1"}, "junk"])
    assert nft.parse_own(text) == {ipaddress.ip_address(a) for a in
                                   ("127.0.0.1", "::1", "192.168.9.1", "fe80::1")}
    assert nft.parse_own("not json") == set()


# -- the playbook actions ----------------------------------------------------------------------

@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    (tmp_path / "data").mkdir()
    path = tmp_path / "secops.toml"
    path.write_text(MINIMAL_TOML + '[intrusion]\nallow = ["192.168.1.0/24"]\n'
                    "block_minutes = 45\n", encoding="utf-8")
    return load_config(path)


PLAYBOOK = """\
id: t
version: 1
name: "Thử"
severity: high
trigger:
  event: auth.bruteforce
steps:
  - id: act
    action: {action}
    with: {args}
    retries: 2
"""


def ctx(cfg: Config, source: str | None, action: str = "block", args: str = "{}") -> Context:
    details = {"source": source} if source else {}
    return Context(cfg, load_text(PLAYBOOK.format(action=action, args=args), "t.yaml"),
                   {"kind": "auth.bruteforce", "details": details}, dry_run=True)


def test_the_plans_say_what_would_happen_and_what_is_refused(cfg: Config) -> None:
    assert block_plan(ctx(cfg, "203.0.113.7"), {}) == (
        "drop every packet from 203.0.113.7 for 45 min (nft table inet secops, set "
        "blocked4); it ends on its own, or at 'secops unblock'")
    assert "for 2 min" in block_plan(ctx(cfg, "203.0.113.7"), {"minutes": 2})
    assert "2001:db8::9" in block_plan(ctx(cfg, None), {"address": "2001:db8::9"})
    assert "refused" in block_plan(ctx(cfg, "192.168.1.20"), {})
    assert "allow-listed" in block_plan(ctx(cfg, "192.168.1.20"), {})
    assert "loopback" in block_plan(ctx(cfg, "::1"), {})
    assert "not a number" in block_plan(ctx(cfg, "203.0.113.7"), {"minutes": "soon"})
    assert "has none" in block_plan(ctx(cfg, None), {})
    assert "lift the block of 203.0.113.7" in unblock_plan(ctx(cfg, "203.0.113.7",
                                                               "unblock"), {})
    assert "has none" in unblock_plan(ctx(cfg, None, "unblock"), {})


def test_the_loader_knows_the_actions_and_their_arguments() -> None:
    load_text(PLAYBOOK.format(action="block", args="{address: '{event.details.source}', "
                                                   "minutes: 30}"), "t.yaml")
    load_text(PLAYBOOK.format(action="unblock", args="{address: 203.0.113.7}"), "t.yaml")
    with pytest.raises(PlaybookError) as e:
        load_text(PLAYBOOK.format(action="block", args="{port: 22}"), "t.yaml")
    assert "port" in e.value.message


# -- nft missing -------------------------------------------------------------------------------

def test_nft_missing_is_an_operational_error_with_the_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ip = shutil.which("ip") or shutil.which("ip", path=":".join(nft.SBIN))
    assert ip, "ip (iproute2) is not installed"
    (bin_dir / "ip").symlink_to(ip)  # ip is there (read-only use), nft is not
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(nft, "SBIN", ())
    (tmp_path / "data").mkdir()
    config = tmp_path / "secops.toml"
    config.write_text(MINIMAL_TOML, encoding="utf-8")
    for argv in (["block", "203.0.113.7"], ["unblock", "203.0.113.7"], ["blocked"]):
        with pytest.raises(SystemExit) as exc:
            main(["--config", str(config), *argv])
        err = capsys.readouterr().err
        assert exc.value.code == 3, err
        assert "nft is not installed" in err and "apt-get install nftables" in err, err
        assert "Traceback" not in err
    with pytest.raises(ToolMissing):
        nft.blocked(load_config(config))
    # bad input is refused before nft is looked for: exit 2, not 3
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(config), "block", "127.0.0.1"])
    assert exc.value.code == 2 and "loopback" in capsys.readouterr().err
