"""Accounts and sudo (pure): ``/etc/passwd``, ``/etc/shadow``, ``/etc/sudoers`` and
``/etc/sudoers.d`` as text, and the modes of those files."""

from __future__ import annotations

import re
from dataclasses import dataclass

from secops.review.model import Finding, Spec, judged, spec

SPECS: tuple[Spec, ...] = (
    spec("accounts.empty_password", "critical",
         ("Tài khoản không có mật khẩu", "Accounts without a password"),
         ("Tài khoản có trường mật khẩu rỗng đăng nhập được (bảng điều khiển, su, Samba, có "
          "thể cả SSH) mà không cần mật khẩu.",
          "An account with an empty password field can log in (console, su, perhaps SSH) "
          "with no password at all."),
         ("Đặt mật khẩu hoặc khóa tài khoản: passwd -l TÊN (hoặc passwd TÊN)",
          "Lock the account or give it a password: passwd -l NAME (or passwd NAME)")),
    spec("accounts.uid0", "critical", ("Tài khoản UID 0 ngoài root", "UID 0 besides root"),
         ("Mọi tài khoản UID 0 đều là root; một tài khoản như vậy thường là cửa hậu.",
          "Every UID 0 account is root; an extra one is usually a backdoor."),
         ("Xóa tài khoản hoặc đổi UID: userdel TÊN (kiểm tra trước ai đã tạo nó)",
          "Remove the account or change its UID: userdel NAME (find out who made it first)")),
    spec("accounts.passwd_hash", "high",
         ("Băm mật khẩu trong /etc/passwd", "Password hashes in /etc/passwd"),
         ("/etc/passwd ai cũng đọc được; băm mật khẩu ở đó có thể bị bẻ ngoại tuyến.",
          "/etc/passwd is world-readable; a hash there can be cracked offline."),
         ("pwconv   (chuyển băm sang /etc/shadow)", "pwconv   (moves the hashes to /etc/shadow)")),
    spec("accounts.shadow_perms", "critical", ("Quyền tệp /etc/shadow", "/etc/shadow permissions"),
         ("Ai đọc được /etc/shadow thì có thể bẻ mật khẩu của mọi người dùng.",
          "Whoever reads /etc/shadow can crack every user's password."),
         ("chown root:shadow /etc/shadow && chmod 640 /etc/shadow",
          "chown root:shadow /etc/shadow && chmod 640 /etc/shadow")),
    spec("accounts.passwd_perms", "high", ("Quyền tệp /etc/passwd, /etc/group",
                                           "/etc/passwd and /etc/group permissions"),
         ("Ai sửa được /etc/passwd hay /etc/group thì tự cấp cho mình quyền root.",
          "Whoever can write /etc/passwd or /etc/group can make themselves root."),
         ("chown root:root /etc/passwd /etc/group && chmod 644 /etc/passwd /etc/group",
          "chown root:root /etc/passwd /etc/group && chmod 644 /etc/passwd /etc/group")),
    spec("sudo.nopasswd_all", "high", ("sudo không cần mật khẩu", "sudo ALL without a password"),
         ("NOPASSWD: ALL cho phép bất kỳ ai chiếm được phiên người dùng đó thành root ngay, "
          "không cần biết mật khẩu.",
          "NOPASSWD: ALL makes anyone who takes over that user's session root at once, "
          "without knowing a password."),
         ("Bỏ NOPASSWD khỏi dòng đó (visudo -f TỆP), chỉ để lại các lệnh cụ thể nếu cần",
          "Remove NOPASSWD from that line (visudo -f FILE); keep only specific commands")),
    spec("sudo.everyone", "critical", ("Mọi người dùng đều dùng được sudo", "sudo for every user"),
         ("Quy tắc cho ALL người dùng biến mọi tài khoản (kể cả tài khoản dịch vụ) thành root.",
          "A rule for ALL users makes every account, service accounts too, root."),
         ("Xóa dòng đó bằng visudo; chỉ cấp sudo cho nhóm sudo: %sudo ALL=(ALL:ALL) ALL",
          "Remove that line with visudo; grant sudo to the sudo group only: "
          "%sudo ALL=(ALL:ALL) ALL")),
    spec("sudo.file_perms", "critical", ("Quyền tệp sudoers", "sudoers file permissions"),
         ("Ai sửa được một tệp sudoers thì tự cấp cho mình quyền root.",
          "Whoever can write a sudoers file can grant themselves root."),
         ("chown root:root TỆP && chmod 440 TỆP   (cho /etc/sudoers và /etc/sudoers.d/*)",
          "chown root:root FILE && chmod 440 FILE   (for /etc/sudoers and /etc/sudoers.d/*)")),
)


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    uid: int
    line: int


_UID = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
UID_MAX = 0xFFFFFFFF


def uid_value(field: str) -> int | None:
    """The UID glibc reads from a passwd field (strtoul: blanks, a sign, any zeros; too
    large or negative is the largest), or None where glibc would skip the line."""
    m = _UID.fullmatch(field)
    if m is None:
        return None
    n = int(m[2])
    return UID_MAX if m[1] == "-" and n else min(n, UID_MAX)


def parse_passwd(text: str) -> list[Account]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split(":")
        uid = uid_value(parts[2]) if len(parts) >= 7 else None
        if uid is None:
            continue
        out.append(Account(parts[0], parts[1], uid, n))
    return out


def parse_shadow(text: str) -> dict[str, tuple[str, int]]:
    """name -> (password field, line)."""
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split(":")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = (parts[1], n)
    return out


def account_findings(passwd: list[Account], shadow: dict[str, tuple[str, int]] | None,
                     passwd_name: str, shadow_name: str) -> list[Finding]:
    empty = [f"{a.name} ({passwd_name}:{a.line})" for a in passwd if a.password == ""]
    if shadow is not None:
        empty += [f"{name} ({shadow_name}:{n})" for name, (pw, n) in shadow.items() if pw == ""]
    uid0 = [f"{a.name} ({passwd_name}:{a.line})" for a in passwd if a.uid == 0
            and a.name != "root"]
    hashes = [f"{a.name} ({passwd_name}:{a.line})" for a in passwd
              if a.password not in ("", "x", "*", "!", "!!") and not a.password.startswith("!")]
    return [
        judged("accounts.empty_password", sorted(set(empty)), "mật khẩu rỗng",
               "empty password", "không tài khoản nào có mật khẩu rỗng",
               "no account has an empty password"),
        judged("accounts.uid0", uid0, "UID 0", "UID 0", "chỉ root có UID 0",
               "only root has UID 0"),
        judged("accounts.passwd_hash", hashes, "băm mật khẩu trong passwd",
               "password hash in passwd", "không có băm mật khẩu trong passwd",
               "no password hash in passwd"),
    ]


def perm_findings(shadow: tuple[str, int, int] | None,
                  others: list[tuple[str, int, int]]) -> list[Finding]:
    """(path, mode, uid) of /etc/shadow and of /etc/passwd, /etc/group."""
    out = []
    bad_shadow = [f"{p} mode {m:04o} uid {u}" for p, m, u in ([shadow] if shadow else [])
                  if m & 0o027 or u != 0]
    out.append(judged("accounts.shadow_perms", bad_shadow, "quyền quá rộng", "too open",
                      "chỉ root (và nhóm shadow) đọc được", "readable by root (and shadow)"))
    bad_other = [f"{p} mode {m:04o} uid {u}" for p, m, u in others if m & 0o022 or u != 0]
    out.append(judged("accounts.passwd_perms", bad_other, "người khác sửa được",
                      "writable by others", "chỉ root sửa được", "writable by root only"))
    return out


def logical_lines(text: str) -> list[tuple[int, str]]:
    """sudoers lines with ``\\`` continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full and not (full.startswith("#") and not full.startswith(("#include",))):
            out.append((start, full))
    return out


# "ALL" ends the command list: the line's end, a comma, or a comment ("# ...")
_NOPASSWD_ALL = re.compile(r"NOPASSWD\s*:\s*(?:[A-Z_]+\s*:\s*)*ALL\s*(?:$|,|#)")
_USER_SPEC = re.compile(r"^(?P<who>\S+)\s+\S+\s*=")


def sudo_findings(files: list[tuple[str, str]]) -> list[Finding]:
    """``files``: (name, text) of each sudoers file."""
    nopasswd, everyone = [], []
    for name, text in files:
        for n, line in logical_lines(text):
            where = f"{name}:{n}: {line[:200]}"
            if line.startswith(("Defaults", "#", "@")) and "!authenticate" not in line:
                continue
            if _NOPASSWD_ALL.search(line) or re.search(r"Defaults\b.*!authenticate", line):
                nopasswd.append(where)
            m = _USER_SPEC.match(line)
            if m and m["who"] == "ALL":
                everyone.append(where)
    return [
        judged("sudo.nopasswd_all", nopasswd, "sudo không mật khẩu", "sudo without password",
               "không có quy tắc NOPASSWD: ALL", "no NOPASSWD: ALL rule"),
        judged("sudo.everyone", everyone, "quy tắc cho mọi người dùng", "rule for every user",
               "không có quy tắc cho ALL người dùng", "no rule for ALL users"),
    ]


def sudo_perm_findings(files: list[tuple[str, int, int]]) -> Finding:
    wrong = [f"{p} mode {m:04o} uid {u}" for p, m, u in files if m & 0o022 or u != 0]
    return judged("sudo.file_perms", wrong, "người khác sửa được", "writable by others",
                  f"{len(files)} tệp, chỉ root sửa được", f"{len(files)} files, root only")
