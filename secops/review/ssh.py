"""SSH server checks (pure): the effective settings as ``sshd -T`` prints them, the config
text for the line that sets each one, and the modes of the config and host key files.

The config is read as sshd reads it: ``Keyword value``, ``Keyword=value`` and quoted
values, and the files ``Include`` names (Debian's sshd_config begins with one), in place,
a file included inside a Match block as part of that block. ``sshd -T`` does not apply
Match blocks, so what they turn back on is only seen here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from secops.review.model import Finding, Spec, Text, Unknown, bad, judged, ok, spec

RELOAD_VI = "rồi nạp lại: sshd -t && systemctl reload ssh"
RELOAD_EN = "then reload: sshd -t && systemctl reload ssh"


def _fix(line: str) -> tuple[str, str]:
    return (f"Đặt dòng `{line}` trong /etc/ssh/sshd_config (trước mọi khối Match), {RELOAD_VI}",
            f"Set `{line}` in /etc/ssh/sshd_config (before any Match block), {RELOAD_EN}")


SPECS: tuple[Spec, ...] = (
    spec("ssh.root_login", "high", ("Đăng nhập root qua SSH", "Root login over SSH"),
         ("Cho phép root đăng nhập bằng mật khẩu qua SSH thì kẻ tấn công chỉ cần đoán một "
          "mật khẩu để chiếm toàn quyền máy chủ dữ liệu bầu cử.",
          "Root logging in with a password over SSH means one guessed password gives an "
          "attacker full control of the election data server."),
         _fix("PermitRootLogin no")),
    spec("ssh.password_auth", "high", ("Xác thực SSH bằng mật khẩu", "SSH password login"),
         ("Đăng nhập bằng mật khẩu cho phép dò mật khẩu từ mạng; khóa SSH thì không dò được.",
          "Password logins can be brute-forced over the network; SSH keys cannot."),
         _fix("PasswordAuthentication no")),
    spec("ssh.kbd_interactive", "medium",
         ("Xác thực keyboard-interactive", "Keyboard-interactive login"),
         ("Với UsePAM yes, keyboard-interactive vẫn là đăng nhập bằng mật khẩu qua PAM, "
          "dù đã tắt PasswordAuthentication.",
          "With UsePAM yes, keyboard-interactive is a password login through PAM even with "
          "PasswordAuthentication off."),
         _fix("KbdInteractiveAuthentication no")),
    spec("ssh.max_auth_tries", "medium",
         ("Số lần thử xác thực mỗi kết nối", "Authentication attempts per connection"),
         ("Nhiều lần thử trên một kết nối giúp dò mật khẩu nhanh hơn và khó phát hiện hơn.",
          "Many attempts per connection make password guessing faster and harder to see."),
         _fix("MaxAuthTries 4")),
    spec("ssh.empty_passwords", "critical", ("Mật khẩu rỗng qua SSH", "Empty passwords over SSH"),
         ("Tài khoản không có mật khẩu sẽ đăng nhập được từ mạng mà không cần gì.",
          "An account without a password could log in from the network with nothing."),
         _fix("PermitEmptyPasswords no")),
    spec("ssh.x11_forwarding", "low", ("Chuyển tiếp X11", "X11 forwarding"),
         ("Máy chủ không có giao diện đồ họa; chuyển tiếp X11 chỉ mở thêm bề mặt tấn công.",
          "The server has no desktop; X11 forwarding only adds attack surface."),
         _fix("X11Forwarding no")),
    spec("ssh.ciphers", "medium", ("Thuật toán mã hóa SSH yếu", "Weak SSH ciphers"),
         ("Các thuật toán CBC, 3DES, arcfour, blowfish đã lỗi thời và có tấn công đã biết.",
          "CBC, 3DES, arcfour and blowfish ciphers are outdated, with known attacks."),
         _fix("Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,"
              "aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr")),
    spec("ssh.macs", "low", ("Thuật toán MAC SSH yếu", "Weak SSH MACs"),
         ("MAC dùng MD5, RIPEMD-160, SHA-1 cắt 96 bit hoặc UMAC-64 không còn đủ an toàn.",
          "MACs built on MD5, RIPEMD-160, truncated SHA-1 or UMAC-64 are no longer safe."),
         _fix("MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
              "umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256")),
    spec("ssh.kex", "low", ("Trao đổi khóa SSH yếu", "Weak SSH key exchange"),
         ("Trao đổi khóa Diffie-Hellman với SHA-1 hoặc nhóm 1024 bit có thể bị phá.",
          "Diffie-Hellman key exchange with SHA-1 or a 1024-bit group can be broken."),
         _fix("KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
              "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512")),
    spec("ssh.login_grace", "low", ("Thời gian chờ đăng nhập", "Login grace time"),
         ("Thời gian chờ dài cho phép giữ nhiều kết nối chưa xác thực, làm nghẽn dịch vụ.",
          "A long grace time lets an attacker hold many unauthenticated connections open."),
         _fix("LoginGraceTime 60")),
    spec("ssh.hostbased", "medium", ("Xác thực theo máy (rhosts)", "Host-based (rhosts) login"),
         ("Tin tưởng theo tên máy hoặc .rhosts cho phép đăng nhập không cần mật khẩu hay khóa.",
          "Trusting host names or .rhosts lets logins in without a password or key."),
         _fix("HostbasedAuthentication no")),
    spec("ssh.forwarding", "low", ("Chuyển tiếp cổng và agent", "TCP and agent forwarding"),
         ("Chuyển tiếp cổng biến máy chủ thành cầu nối vào mạng của xã cho người có tài khoản.",
          "Port forwarding turns the server into a bridge into the office network."),
         ("Đặt `AllowTcpForwarding no` và `AllowAgentForwarding no` trong "
          f"/etc/ssh/sshd_config, {RELOAD_VI}",
          "Set `AllowTcpForwarding no` and `AllowAgentForwarding no` in /etc/ssh/sshd_config, "
          f"{RELOAD_EN}")),
    spec("ssh.log_level", "medium", ("Mức ghi nhật ký SSH", "SSH log level"),
         ("Không ghi lần đăng nhập thất bại thì không phát hiện được dò mật khẩu.",
          "Without failed logins in the log, password guessing cannot be detected."),
         _fix("LogLevel VERBOSE")),
    spec("ssh.match_override", "medium",
         ("Khối Match nới lỏng cấu hình", "Match blocks that weaken settings"),
         ("Một khối Match có thể bật lại mật khẩu hay root cho một số người dùng hoặc địa chỉ, "
          "điều mà kiểm tra cấu hình chung không thấy.",
          "A Match block can turn passwords or root back on for some users or addresses, "
          "which the global settings do not show."),
         ("Xóa các dòng nới lỏng trong khối Match của /etc/ssh/sshd_config, "
          f"{RELOAD_VI}", f"Remove the weakening lines from the Match blocks of "
          f"/etc/ssh/sshd_config, {RELOAD_EN}")),
    spec("ssh.config_perms", "high", ("Quyền tệp cấu hình SSH", "SSH config file permissions"),
         ("Ai sửa được sshd_config thì tự cho mình đăng nhập root.",
          "Whoever can edit sshd_config can let themselves log in as root."),
         ("chown root:root /etc/ssh/sshd_config && chmod go-w /etc/ssh/sshd_config",
          "chown root:root /etc/ssh/sshd_config && chmod go-w /etc/ssh/sshd_config")),
    spec("ssh.host_key_perms", "high", ("Quyền khóa riêng của máy chủ SSH", "SSH host key perms"),
         ("Lộ khóa riêng của máy chủ cho phép giả mạo máy chủ và nghe lén phiên đăng nhập.",
          "A readable host private key lets someone impersonate the server."),
         ("chmod 600 /etc/ssh/ssh_host_*_key && chown root:root /etc/ssh/ssh_host_*_key",
          "chmod 600 /etc/ssh/ssh_host_*_key && chown root:root /etc/ssh/ssh_host_*_key")),
)

WEAK_CIPHERS = re.compile(r"cbc|arcfour|3des|blowfish|cast128|rijndael")
WEAK_MACS = re.compile(r"md5|ripemd|sha1-96|umac-64")
WEAK_KEX = ("diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1",
            "diffie-hellman-group-exchange-sha1")
# what a Match block may not turn back on
WEAKENING = {"permitrootlogin": ("yes",), "passwordauthentication": ("yes",),
             "permitemptypasswords": ("yes",), "kbdinteractiveauthentication": ("yes",),
             "challengeresponseauthentication": ("yes",),
             "hostbasedauthentication": ("yes",), "x11forwarding": ("yes",)}


def parse_effective(text: str) -> dict[str, list[str]]:
    """``sshd -T`` output: lower-case keyword -> its values (a keyword may repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            found.setdefault(key.lower(), []).append(value.strip())
    return found


SSHDIR = "/etc/ssh"          # where sshd finds an Include given as a relative path
MAX_INCLUDE_DEPTH = 16       # sshd's own bound (servconf.c, SERVCONF_MAX_DEPTH)
MAX_INCLUDED = 128           # files read in all: a loop or a fan-out ends here
_KEYWORD = re.compile(r"([^\s=]+)\s*=?\s*(.*)")
_ARG = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class ConfLine:
    """One line of the config as sshd reads it: where, its words, and whether it is
    inside a Match block."""

    name: str
    number: int
    text: str
    words: tuple[str, ...]   # the keyword (as written), then its arguments
    in_match: bool

    @property
    def key(self) -> str:
        return self.words[0].lower()

    def where(self) -> str:
        return f"{self.name}:{self.number}: {self.text.strip()[:200]}"


def words(line: str) -> tuple[str, ...]:
    """A config line's keyword and arguments, as sshd splits them (``=`` after the
    keyword, double quotes, a ``#`` word starts a comment); () for none."""
    m = _KEYWORD.fullmatch(line.strip())
    if m is None or m[1].startswith("#"):
        return ()
    args = []
    for a in _ARG.finditer(m[2]):
        if a[2] is not None and a[2].startswith("#"):
            break
        args.append(a[1] if a[1] is not None else a[2])
    return (m[1], *args)


Reader = Callable[[str], list[tuple[str, str]]]  # a glob pattern -> (name, text) of its files


def flatten(name: str, text: str, read: Reader) -> list[ConfLine]:
    """Every line of the config ``text`` (file ``name``), the included files' in place.
    ``read`` gives the files an ``Include`` pattern (an absolute path) names, sorted."""
    walk = _Walk(read)
    walk.file(name, text, 0, in_match=False)
    return walk.out


@dataclass
class _Walk:
    read: Reader
    out: list[ConfLine] = field(default_factory=list)
    budget: int = MAX_INCLUDED

    def file(self, name: str, text: str, depth: int, *, in_match: bool) -> None:
        inside = in_match
        for n, line in enumerate(text.splitlines(), start=1):
            w = words(line)
            if not w:
                continue
            if w[0].lower() == "match":
                inside = True
            self.out.append(ConfLine(name, n, line, w, inside))
            if w[0].lower() == "include":
                for pattern in w[1:]:
                    self.include(f"{name}:{n}", pattern, depth, in_match=inside)

    def include(self, where: str, pattern: str, depth: int, *, in_match: bool) -> None:
        if depth + 1 > MAX_INCLUDE_DEPTH or self.budget <= 0:
            raise Unknown(Text(f"{where}: Include lồng quá sâu hoặc quá nhiều tệp (vòng lặp?)",
                               f"{where}: Include nested too deep or too many files "
                               "(a loop?)"))
        full = pattern if pattern.startswith("/") else f"{SSHDIR}/{pattern}"
        for name, text in self.read(full):
            self.budget -= 1
            # a Match in the included file ends with it; one around the Include holds
            self.file(name, text, depth + 1, in_match=in_match)


def locate(lines: Sequence[ConfLine], keyword: str, name: str = "sshd_config") -> str:
    """Where the config sets ``keyword`` outside Match blocks: the first such line (sshd
    takes the first), or that the default applies."""
    for line in lines:
        if not line.in_match and line.key == keyword.lower():
            return line.where()
    return f"{name}: {keyword} (default)"


def match_overrides(lines: Sequence[ConfLine]) -> list[str]:
    """Lines inside Match blocks that turn a weakening option on."""
    return [line.where() for line in lines
            if line.in_match and len(line.words) > 1 and
            line.words[1].lower() in WEAKENING.get(line.key, ())]


def evaluate(eff: dict[str, list[str]], lines: Sequence[ConfLine], name: str
             ) -> list[Finding]:
    """The option checks from the effective settings ``eff``; ``lines`` (the config as
    :func:`flatten` gives it) say where each is set."""
    def one(key: str) -> str:
        return (eff.get(key) or [""])[0].lower()

    def where(key: str) -> str:
        return locate(lines, key, name)

    def flag(cid: str, key: str, failing: bool) -> Finding:
        evidence = f"{key} {one(key)} ({where(key)})"
        return bad(cid, evidence, evidence) if failing else ok(cid, evidence, evidence)

    tries = int(one("maxauthtries") or 6) if one("maxauthtries").isdigit() else 6
    grace = _seconds(one("logingracetime"))
    usepam = one("usepam") == "yes"
    out = [
        flag("ssh.root_login", "permitrootlogin", one("permitrootlogin") == "yes"),
        flag("ssh.password_auth", "passwordauthentication",
             one("passwordauthentication") != "no"),
        flag("ssh.kbd_interactive", "kbdinteractiveauthentication",
             usepam and one("kbdinteractiveauthentication") == "yes"),
        flag("ssh.max_auth_tries", "maxauthtries", tries > 4),
        flag("ssh.empty_passwords", "permitemptypasswords", one("permitemptypasswords") != "no"),
        flag("ssh.x11_forwarding", "x11forwarding", one("x11forwarding") == "yes"),
        flag("ssh.login_grace", "logingracetime", grace == 0 or grace > 60),
        flag("ssh.hostbased", "hostbasedauthentication",
             one("hostbasedauthentication") == "yes" or one("ignorerhosts") == "no"),
        flag("ssh.log_level", "loglevel", one("loglevel") in ("quiet", "silent", "fatal", "error")),
    ]
    fwd = [f"{k} {one(k)} ({where(k)})" for k in ("allowtcpforwarding", "allowagentforwarding")
           if one(k) not in ("no", "local")]
    out.append(judged("ssh.forwarding", fwd, "đang bật", "enabled",
                      "chuyển tiếp đã tắt", "forwarding is off"))
    for cid, key, weak in (("ssh.ciphers", "ciphers", WEAK_CIPHERS.search),
                           ("ssh.macs", "macs", WEAK_MACS.search),
                           ("ssh.kex", "kexalgorithms", lambda a: a in WEAK_KEX)):
        algs = [a for a in one(key).split(",") if a and weak(a)]
        out.append(judged(cid, algs, f"{where(key)}: thuật toán yếu",
                          f"{where(key)}: weak algorithms",
                          f"không có thuật toán yếu ({where(key)})",
                          f"no weak algorithm ({where(key)})"))
    out.append(judged("ssh.match_override", match_overrides(lines),
                      "khối Match nới lỏng", "Match blocks weaken",
                      "không khối Match nào nới lỏng", "no Match block weakens a setting"))
    return out


def _seconds(value: str) -> int:
    """sshd -T prints LoginGraceTime in seconds; tolerate 2m-style values too."""
    m = re.fullmatch(r"(\d+)([smh]?)", value.strip())
    if not m:
        return 120
    return int(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]]


def file_findings(config: tuple[str, int, int] | None,
                  host_keys: list[tuple[str, int, int]]) -> list[Finding]:
    """``(path, mode, uid)`` of sshd_config and of each private host key."""
    out = []
    if config is not None:
        path, mode, uid = config
        wrong = [f"{path} mode {mode:04o} uid {uid}"] if mode & 0o022 or uid != 0 else []
        out.append(judged("ssh.config_perms", wrong, "người khác sửa được",
                          "writable by others", f"{path} mode {mode:04o} uid {uid}",
                          f"{path} mode {mode:04o} uid {uid}"))
    wrong_keys = [f"{p} mode {m:04o} uid {u}" for p, m, u in host_keys if m & 0o077 or u != 0]
    out.append(judged("ssh.host_key_perms", wrong_keys, "người khác đọc được",
                      "readable by others",
                      f"{len(host_keys)} khóa riêng, chỉ root đọc được",
                      f"{len(host_keys)} private keys, readable by root only"))
    return out
