"""The block of a source address in secops's own nftables table, ``inet <nft_table>``.

The table holds two sets, ``blocked4`` and ``blocked6`` (``flags timeout``: a block ends on
its own), and one chain hooked on input that drops packets from them. Nothing else of the
system's ruleset is read, flushed or rewritten: every script names this table only, and runs
as one nft transaction (``nft -f -``, the script on stdin, no shell).

The pure half (which addresses may be blocked, the script text, the parse of ``nft -j``)
takes values and returns values; :func:`block`, :func:`unblock` and :func:`blocked` run nft.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from typing import Any

from secops.config.schema import Config
from secops.errors import ConfigError, OperationalError, ToolMissing, UsageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FAMILY = "inet"
SETS = {4: "blocked4", 6: "blocked6"}
CHAIN = "input"
PRIORITY = -10                 # before the usual filter chains (priority 0)
MIN_SECONDS = 1                # nft reads "timeout 0s" as no timeout at all: never that
MAX_MINUTES = 10080            # a week, as intrusion.block_minutes
COMMENT_BYTES = 120            # nft keeps at most 128 bytes of an element's comment
NFT_TIMEOUT_S = 15.0
SBIN = ("/usr/sbin", "/sbin")  # where Debian puts nft, off a normal user's PATH
_TABLE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_COMMENT_PUNCT = frozenset(" -_.:/,()@+=#")
_LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                  ipaddress.ip_network("::1/128"))


# -- pure: what may be blocked ---------------------------------------------------------------

def parse_address(text: str) -> Address:
    """One address, IPv4-mapped IPv6 (``::ffff:1.2.3.4``) as the IPv4 address it is."""
    raw = str(text).strip()
    if "/" in raw:
        raise UsageError(f"{raw!r} is a network, not one address: block one address at a time")
    if "%" in raw:
        raise UsageError(f"{raw!r} carries an interface zone: give the address alone")
    try:
        addr = ipaddress.ip_address(raw)
    except ValueError:
        raise UsageError(f"{raw!r} is not an IP address (e.g. 203.0.113.7 or "
                         "2001:db8::7)") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def allow_networks(allow: Iterable[str]) -> list[Network]:
    """``intrusion.allow`` as networks (an IPv4-mapped IPv6 network as its IPv4 one)."""
    mapped = ipaddress.IPv6Network("::ffff:0:0/96")
    nets: list[Network] = []
    for entry in allow:
        net = ipaddress.ip_network(entry.strip(), strict=False)
        if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(mapped):
            base = net.network_address.ipv4_mapped
            assert base is not None
            net = ipaddress.ip_network(f"{base}/{net.prefixlen - 96}", strict=False)
        nets.append(net)
    return nets


def refusal(addr: Address, allow: Sequence[Network],
            own: Iterable[Address] = ()) -> str | None:
    """Why ``addr`` must never be blocked, or None: loopback, the office's allow-listed
    hosts, this server's own addresses, and what is no host's source address."""
    if any(addr.version == net.version and addr in net for net in _LOOPBACK):
        return f"{addr} is a loopback address: secops never blocks loopback"
    for net in allow:
        if addr.version == net.version and addr in net:
            return f"{addr} is allow-listed (intrusion.allow: {net}): the office's own " \
                   "hosts are never blocked"
    if addr in set(own):
        return f"{addr} is an address of this server: blocking it would cut the server off " \
               "from itself"
    for yes, why in (
            (addr.is_unspecified, "the unspecified address: no host sends from it"),
            (addr.is_multicast, "a multicast address: no host sends from it"),
            (addr.is_link_local, "a link-local address (one network segment only: the "
                                 "office's own devices use them)"),
            (addr.is_reserved, "a reserved address: no host sends from it")):
        if yes:
            return f"{addr} is {why}"
    return None


def check_minutes(minutes: float) -> int:
    """A block's length in milliseconds: at least a second, at most a week."""
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise UsageError(f"minutes: {minutes!r} is not a number") from None
    ms = round(value * 60_000) if math.isfinite(value) else -1
    if ms < MIN_SECONDS * 1000 or value > MAX_MINUTES:
        raise UsageError(f"minutes: {minutes!r} must be between {MIN_SECONDS / 60:.3f} "
                         f"(one second) and {MAX_MINUTES} (a week)")
    return ms


def check_table(name: str) -> str:
    if not _TABLE.match(name):
        raise ConfigError(f"intrusion.nft_table: {name!r} is not a name nft accepts: a "
                          "lowercase letter, then letters, digits, '-' or '_' (e.g. secops)")
    return name


# -- pure: the scripts -----------------------------------------------------------------------

def timeout_text(ms: int) -> str:
    """nft's form: ``3s``, ``3s500ms`` (a bare millisecond count overflows nft's parser)."""
    seconds, rest = divmod(ms, 1000)
    return f"{seconds}s" + (f"{rest}ms" if rest else "")


def comment_text(reason: str) -> str:
    """``reason`` safe inside an nft quoted string: letters (any script, with their marks),
    digits and a few signs; no quote, backslash or line break; at most COMMENT_BYTES bytes
    of UTF-8."""
    kept = "".join(c if _comment_char(c) else " " for c in reason)
    text = " ".join(kept.split())
    while len(text.encode("utf-8")) > COMMENT_BYTES:
        text = text[:-1]
    return text.strip()


def _comment_char(c: str) -> bool:
    import unicodedata

    # letters, digits, and the marks of decomposed Vietnamese (a + U+0323 is "ạ")
    return c.isalnum() or c in _COMMENT_PUNCT or unicodedata.category(c) in ("Mn", "Mc")


def ensure_script(table: str) -> str:
    """The table, its two sets and its drop chain, created when missing; the chain's two
    rules rewritten (it is secops's own chain) so that a deleted rule comes back. ``add``
    leaves what exists (and the sets' elements) as it is."""
    t = f"{FAMILY} {check_table(table)}"
    return "\n".join([
        f"add table {t}",
        f"add set {t} {SETS[4]} {{ type ipv4_addr; flags timeout; }}",
        f"add set {t} {SETS[6]} {{ type ipv6_addr; flags timeout; }}",
        f"add chain {t} {CHAIN} {{ type filter hook input priority {PRIORITY}; "
        "policy accept; }",
        f"flush chain {t} {CHAIN}",
        f"add rule {t} {CHAIN} ip saddr @{SETS[4]} drop",
        f"add rule {t} {CHAIN} ip6 saddr @{SETS[6]} drop",
        "",
    ])


def block_script(table: str, addr: Address, ms: int, reason: str) -> str:
    """Ensure the table, then put ``addr`` in its set for ``ms``: add (a no-op when it is
    there), delete, add with the timeout, so that a block already there is renewed. One
    transaction: there is no moment without the block."""
    t = f"{FAMILY} {check_table(table)}"
    name = SETS[addr.version]
    comment = comment_text(reason)
    tail = f' comment "{comment}"' if comment else ""
    return ensure_script(table) + "\n".join([
        f"add element {t} {name} {{ {addr} }}",
        f"delete element {t} {name} {{ {addr} }}",
        f"add element {t} {name} {{ {addr} timeout {timeout_text(ms)}{tail} }}",
        "",
    ])


def unblock_script(table: str, addr: Address) -> str:
    """Take ``addr`` out of its set; no error when it is not there (add, then delete)."""
    t = f"{FAMILY} {check_table(table)}"
    name = SETS[addr.version]
    return f"add element {t} {name} {{ {addr} }}\ndelete element {t} {name} {{ {addr} }}\n"


# -- pure: what nft says ---------------------------------------------------------------------

def parse_table(text: str, table: str, now: float) -> list[dict[str, Any]]:
    """The elements of the two sets in ``nft -j list table`` output, soonest expiry first:
    address, expires_in_s and expires_at (None for an element added by hand without a
    timeout), timeout_s, reason (the element's comment)."""
    from secops.clock import iso_epoch

    try:
        doc = json.loads(text)
    except ValueError:
        raise OperationalError(f"nft printed something that is not JSON: {text[:200]!r}") \
            from None
    rows: list[dict[str, Any]] = []
    items = doc.get("nftables") if isinstance(doc, dict) else None
    for item in items if isinstance(items, list) else []:
        s = item.get("set") if isinstance(item, dict) else None
        if not isinstance(s, dict) or s.get("table") != table or \
                s.get("name") not in SETS.values():
            continue
        for elem in s.get("elem") or []:
            row = _element(elem)
            if row is None:
                continue
            left = row.pop("expires")
            row["expires_in_s"] = left
            row["expires_at"] = iso_epoch(now + left) if left is not None else None
            row["set"] = s["name"]
            rows.append(row)
    rows.sort(key=lambda r: (r["expires_in_s"] is None, r["expires_in_s"] or 0, r["address"]))
    return rows


def _element(elem: Any) -> dict[str, Any] | None:
    """``"1.2.3.4"`` or ``{"elem": {"val", "timeout", "expires", "comment"}}``."""
    body = elem.get("elem") if isinstance(elem, dict) else {"val": elem}
    if not isinstance(body, dict) or not isinstance(body.get("val"), str):
        return None  # a range or prefix: not an element secops writes
    expires = body.get("expires")
    timeout = body.get("timeout")
    return {"address": body["val"],
            "expires": int(expires) if isinstance(expires, (int, float)) else None,
            "timeout_s": int(timeout) if isinstance(timeout, (int, float)) else None,
            "reason": str(body.get("comment") or "")}


def parse_own(text: str) -> set[Address]:
    """This machine's addresses from ``ip -j addr show``."""
    own: set[Address] = set()
    try:
        links = json.loads(text)
    except ValueError:
        return own
    for link in links if isinstance(links, list) else []:
        infos = link.get("addr_info") if isinstance(link, dict) else None
        for a in infos if isinstance(infos, list) else []:
            local = a.get("local") if isinstance(a, dict) else None
            if isinstance(local, str):
                try:
                    own.add(parse_address(local))
                except UsageError:
                    continue
    return own


# -- adapter: nft and ip ---------------------------------------------------------------------

def block(cfg: Config, address: str, minutes: float, reason: str) -> dict[str, Any]:
    """Drop packets from ``address`` for ``minutes``. A block already there is renewed
    when the new one ends later, and kept as it is otherwise (a block is never shortened)."""
    addr = parse_address(address)
    ms = check_minutes(minutes)
    table = check_table(cfg.intrusion.nft_table)
    # loopback and the allow-list first: they hold even when ``ip`` cannot be run
    why = refusal(addr, allow_networks(cfg.intrusion.allow)) or \
        refusal(addr, (), _own_addresses())
    if why:
        raise UsageError(f"not blocked: {why}")
    before = _current(table, addr)
    outcome = "added" if before is None else "renewed"
    if before is not None and (before["expires_in_s"] is None or
                               before["expires_in_s"] * 1000 >= ms):
        outcome = "kept"
        _nft(["-f", "-"], ensure_script(table), "create the table")
    else:
        _nft(["-f", "-"], block_script(table, addr, ms, reason), f"block {addr}")
    now = _current(table, addr) or {}
    return {"address": str(addr), "table": f"{FAMILY} {table}", "set": SETS[addr.version],
            "outcome": outcome, "minutes": round(ms / 60_000, 4),
            "expires_in_s": now.get("expires_in_s"), "expires_at": now.get("expires_at"),
            "reason": now.get("reason", comment_text(reason))}


def unblock(cfg: Config, address: str) -> dict[str, Any]:
    """Lift the block of ``address`` now; nothing to lift is no error. Any address may be
    unblocked (one put in the set by hand too)."""
    addr = parse_address(address)
    table = check_table(cfg.intrusion.nft_table)
    rows = _rows(table)
    before = next((r for r in rows or [] if r["address"] == str(addr)), None)
    if before is not None:
        _nft(["-f", "-"], unblock_script(table, addr), f"unblock {addr}")
    return {"address": str(addr), "table": f"{FAMILY} {table}", "set": SETS[addr.version],
            "was_blocked": before is not None,
            "expires_in_s": before["expires_in_s"] if before else None}


def blocked(cfg: Config) -> list[dict[str, Any]]:
    """What is blocked now (nothing when secops has not made its table yet)."""
    return _rows(check_table(cfg.intrusion.nft_table)) or []


def _current(table: str, addr: Address) -> dict[str, Any] | None:
    return next((r for r in _rows(table) or [] if r["address"] == str(addr)), None)


def _rows(table: str) -> list[dict[str, Any]] | None:
    """The sets' elements, or None when the table is not there."""
    done = _nft(["-j", "list", "table", FAMILY, table], None, "list the table",
                absent_ok=True)
    return None if done is None else parse_table(done, table, time.time())


def _nft(args: list[str], script: str | None, what: str, *,
         absent_ok: bool = False) -> str | None:
    from secops import process

    env = process.base_env()
    binary = shutil.which("nft", path=env["PATH"]) or \
        shutil.which("nft", path=":".join(SBIN))
    if binary is None:
        raise ToolMissing("nft is not installed (or not on PATH): secops cannot block an "
                          "address", hint="install it: apt-get install nftables")
    done = process.run([binary, *args], env=env, timeout=NFT_TIMEOUT_S,
                       stdin=script.encode("utf-8") if script is not None else None)
    if done.returncode == 0:
        return done.stdout
    err = done.stderr.strip()
    if absent_ok and "No such file or directory" in err:
        return None
    lines = [ln.strip() for ln in err.splitlines() if ln.strip(" ^~\t")]  # no caret lines
    tail = " | ".join(lines[-4:]) or f"exit code {done.returncode}"
    if "Operation not permitted" in err:
        raise OperationalError(f"nft could not {what}: {tail}",
                               hint="run it as root; the secops service needs "
                                    "CAP_NET_ADMIN and AF_NETLINK in its unit")
    if "syntax error" in err:  # of what secops writes, only the table's name varies
        raise ConfigError(f"nft could not {what}: {tail}",
                          hint="intrusion.nft_table may be a word nft reserves (ip, inet, "
                               "table, ...): choose another name, e.g. secops")
    raise OperationalError(f"nft could not {what}: {tail}")


def _own_addresses() -> set[Address]:
    from secops import process

    env = process.base_env()
    binary = shutil.which("ip", path=env["PATH"]) or shutil.which("ip", path=":".join(SBIN))
    if binary is None:
        raise ToolMissing("ip is not installed: secops cannot tell this server's own "
                          "addresses from others", hint="install it: apt-get install iproute2")
    done = process.run([binary, "-j", "addr", "show"], env=env, timeout=NFT_TIMEOUT_S)
    if done.returncode != 0:
        raise OperationalError(f"ip -j addr show failed: {done.stderr.strip()[-300:]}")
    return parse_own(done.stdout)
