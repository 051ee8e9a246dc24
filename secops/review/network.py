"""Network checks (pure): listening sockets from ``/proc/net/{tcp,tcp6,udp,udp6}``, the
nftables ruleset as ``nft -j list ruleset`` prints it, and kernel network settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from secops.review.model import Finding, Spec, Text, bad, judged, ok, spec

SPECS: tuple[Spec, ...] = (
    spec("net.tcp_listeners", "medium",
         ("Dịch vụ TCP mở ra mạng", "TCP services open to the network"),
         ("Mỗi cổng mở ra mạng là một cửa vào máy chủ; máy chủ bầu cử chỉ cần SSH và Samba.",
          "Every port open to the network is a way in; the election server needs only SSH "
          "and Samba."),
         ("Tắt dịch vụ không cần (systemctl disable --now TÊN) hoặc cho nó nghe trên "
          "127.0.0.1; xem tiến trình: ss -ltnp",
          "Stop services that are not needed (systemctl disable --now NAME) or bind them to "
          "127.0.0.1; see which process: ss -ltnp")),
    spec("net.udp_listeners", "low",
         ("Dịch vụ UDP mở ra mạng", "UDP services open to the network"),
         ("Cổng UDP mở (mDNS, SNMP...) làm lộ thông tin máy chủ và có thể bị lợi dụng.",
          "Open UDP ports (mDNS, SNMP...) leak information and can be abused."),
         ("Tắt dịch vụ không cần: systemctl disable --now TÊN; xem tiến trình: ss -lunp",
          "Stop services that are not needed: systemctl disable --now NAME; see: ss -lunp")),
    spec("firewall.present", "high", ("Tường lửa", "Firewall"),
         ("Không có tường lửa thì mọi dịch vụ lỡ mở đều lộ ra mạng.",
          "Without a firewall every service left open is reachable from the network."),
         ("apt-get install nftables && systemctl enable --now nftables  (quy tắc trong "
          "/etc/nftables.conf)",
          "apt-get install nftables && systemctl enable --now nftables  (rules in "
          "/etc/nftables.conf)")),
    spec("firewall.input_policy", "high", ("Chặn mặc định chiều vào", "Default-deny input"),
         ("Tường lửa chỉ bảo vệ khi mặc định chặn: cái gì không được cho phép thì bị chặn.",
          "A firewall protects only when it denies by default: what is not allowed is "
          "dropped."),
         ("Trong chain input (table inet filter) của /etc/nftables.conf: `policy drop;` rồi "
          "cho phép lo, established, tcp dport {22, 445}; nạp: nft -f /etc/nftables.conf",
          "In the input chain (table inet filter) of /etc/nftables.conf: `policy drop;` "
          "then accept lo, established, tcp dport {22, 445}; load: nft -f "
          "/etc/nftables.conf")),
    spec("firewall.persistent", "medium", ("Tường lửa sau khởi động lại", "Firewall at boot"),
         ("Quy tắc chỉ nạp bằng tay sẽ mất sau lần khởi động lại tiếp theo.",
          "Rules loaded by hand are gone after the next reboot."),
         ("systemctl enable nftables   (nạp /etc/nftables.conf khi khởi động)",
          "systemctl enable nftables   (loads /etc/nftables.conf at boot)")),
    spec("kernel.ip_forward", "low", ("Chuyển tiếp gói tin IP", "IP forwarding"),
         ("Máy chủ không phải bộ định tuyến; chuyển tiếp gói tin cho phép đi vòng qua nó.",
          "The server is no router; forwarding lets traffic pass through it."),
         ("echo 'net.ipv4.ip_forward = 0' > /etc/sysctl.d/60-secops.conf && sysctl --system",
          "echo 'net.ipv4.ip_forward = 0' > /etc/sysctl.d/60-secops.conf && sysctl --system")),
    spec("kernel.syncookies", "low", ("TCP SYN cookies", "TCP SYN cookies"),
         ("SYN cookies giữ cho máy chủ trả lời được khi bị tấn công SYN flood.",
          "SYN cookies keep the server answering during a SYN flood."),
         ("echo 'net.ipv4.tcp_syncookies = 1' >> /etc/sysctl.d/60-secops.conf && "
          "sysctl --system", "echo 'net.ipv4.tcp_syncookies = 1' >> "
          "/etc/sysctl.d/60-secops.conf && sysctl --system")),
    spec("kernel.aslr", "medium", ("Ngẫu nhiên hóa bộ nhớ (ASLR)", "Address space randomisation"),
         ("Tắt ASLR làm cho việc khai thác lỗ hổng bộ nhớ dễ hơn nhiều.",
          "Without ASLR, memory-corruption exploits are much easier."),
         ("echo 'kernel.randomize_va_space = 2' >> /etc/sysctl.d/60-secops.conf && "
          "sysctl --system", "echo 'kernel.randomize_va_space = 2' >> "
          "/etc/sysctl.d/60-secops.conf && sysctl --system")),
)

# what an office election server is expected to serve on its LAN
EXPECTED_TCP = {22: "ssh", 139: "samba", 445: "samba"}
EXPECTED_UDP = {68: "dhcp", 123: "ntp", 137: "nmbd", 138: "nmbd", 546: "dhcpv6"}
LISTEN, UNCONN = "0A", "07"


@dataclass(frozen=True)
class Socket:
    proto: str           # tcp, tcp6, udp, udp6
    address: str
    port: int
    inode: int

    def label(self, names: dict[int, str]) -> str:
        addr = f"[{self.address}]" if ":" in self.address else self.address
        who = names.get(self.inode)
        return f"{self.proto} {addr}:{self.port}" + (f" ({who})" if who else "")


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    # the kernel prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def parse_proc_net(proto: str, text: str) -> list[Socket]:
    """Listening (TCP) or unconnected bound (UDP) sockets in a ``/proc/net`` table."""
    want = LISTEN if proto.startswith("tcp") else UNCONN
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != want:
            continue
        try:
            host, port = fields[1].split(":")
            out.append(Socket(proto, _address(host), int(port, 16), int(fields[9])))
        except ValueError:
            continue
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def listener_findings(sockets: list[Socket], names: dict[int, str]) -> list[Finding]:
    out = []
    for cid, family, expected in (("net.tcp_listeners", "tcp", EXPECTED_TCP),
                                  ("net.udp_listeners", "udp", EXPECTED_UDP)):
        mine = sorted({s for s in sockets if s.proto.startswith(family)
                       and not is_loopback(s.address)}, key=lambda s: (s.port, s.proto))
        odd = [s.label(names) for s in mine if s.port not in expected]
        known = ", ".join(sorted({f"{s.port}/{expected[s.port]}" for s in mine
                                  if s.port in expected})) or "-"
        out.append(judged(cid, odd, "cổng ngoài dự kiến mở ra mạng",
                          "unexpected ports open to the network",
                          f"chỉ các cổng dự kiến: {known}", f"expected ports only: {known}"))
    return out


def _unconditional_drop(rule: dict[str, Any]) -> bool:
    exprs = [e for e in rule.get("expr", []) if isinstance(e, dict)]
    verdicts = [e for e in exprs if "drop" in e or "reject" in e]
    return bool(verdicts) and all(set(e) <= {"drop", "reject", "counter", "log"} for e in exprs)


def firewall_findings(doc: Any, own_table: str | None = None) -> list[Finding]:
    """From ``nft -j list ruleset``: is there an input hook, does it deny by default (a
    ``drop`` policy, or a last rule that drops everything) for IPv4 and IPv6? secops's own
    block table (``inet own_table``: a hooked chain that drops the blocked addresses only)
    is no firewall of the server and is not counted."""
    items = doc.get("nftables", []) if isinstance(doc, dict) else []
    chains = [i["chain"] for i in items if isinstance(i, dict) and isinstance(i.get("chain"),
                                                                              dict)]
    chains = [c for c in chains if (c.get("family"), c.get("table")) != ("inet", own_table)]
    rules = [i["rule"] for i in items if isinstance(i, dict) and isinstance(i.get("rule"), dict)]
    inputs = [c for c in chains if c.get("hook") == "input"]
    if not inputs:
        none = bad("firewall.present", "không có chain nào gắn vào hook input (nft list "
                   "ruleset)", "no chain on the input hook (nft list ruleset)")
        return [none, bad("firewall.input_policy", "không có tường lửa chiều vào",
                          "no input firewall")]
    names = [f"{c.get('family')} {c.get('table')} {c.get('name')} policy "
             f"{c.get('policy', 'accept')}" for c in inputs]
    present = ok("firewall.present", "; ".join(names), "; ".join(names))
    covered: set[str] = set()
    for c in inputs:
        own = [r for r in rules if (r.get("family"), r.get("table"), r.get("chain"))
               == (c.get("family"), c.get("table"), c.get("name"))]
        if c.get("policy") == "drop" or (own and _unconditional_drop(own[-1])):
            fam = str(c.get("family"))
            covered |= {"ip", "ip6"} if fam == "inet" else {fam}
    missing = sorted({"ip", "ip6"} - covered)
    if missing:
        what = {"ip": "IPv4", "ip6": "IPv6"}
        gaps = ", ".join(what[m] for m in missing)
        return [present, bad("firewall.input_policy", f"không chặn mặc định cho {gaps}: "
                             + "; ".join(names), f"no default deny for {gaps}: "
                             + "; ".join(names))]
    return [present, ok("firewall.input_policy", "; ".join(names), "; ".join(names))]


def sysctl_findings(values: dict[str, str | None]) -> list[Finding]:
    """``values``: /proc/sys path (``net/ipv4/ip_forward``) -> its content (None: absent)."""
    out = []
    for cid, key, good in (("kernel.ip_forward", "net/ipv4/ip_forward", "0"),
                           ("kernel.syncookies", "net/ipv4/tcp_syncookies", "1"),
                           ("kernel.aslr", "kernel/randomize_va_space", "2")):
        value = values.get(key)
        shown = f"/proc/sys/{key} = {(value or '').strip()}"
        if value is None:
            out.append(Finding(cid, "unknown", Text(f"không có /proc/sys/{key}",
                                                       f"/proc/sys/{key} is absent")))
        elif value.strip() == good:
            out.append(ok(cid, shown, shown))
        else:
            out.append(bad(cid, shown, shown))
    return out

