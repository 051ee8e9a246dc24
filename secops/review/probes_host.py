"""Probes of the server's own services (adapter): SSH, accounts, sudo, Samba.

Each reads files under the host's root and runs the program that knows the effective
settings (``sshd -T``, ``testparm``), then hands plain values to the pure checks.
"""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from secops.review import accounts, samba, ssh
from secops.review.host import Context, Host, first_line
from secops.review.model import Finding, NotApplicable, Text, Unknown

SSH_OPTION_IDS = ("ssh.root_login", "ssh.password_auth", "ssh.kbd_interactive",
                  "ssh.max_auth_tries", "ssh.empty_passwords", "ssh.x11_forwarding",
                  "ssh.ciphers", "ssh.macs", "ssh.kex", "ssh.login_grace", "ssh.hostbased",
                  "ssh.forwarding", "ssh.log_level", "ssh.match_override")
SSH_FILE_IDS = ("ssh.config_perms", "ssh.host_key_perms")
ACCOUNT_IDS = ("accounts.empty_password", "accounts.uid0", "accounts.passwd_hash",
               "accounts.shadow_perms", "accounts.passwd_perms")
SUDO_IDS = ("sudo.nopasswd_all", "sudo.everyone", "sudo.file_perms")
SAMBA_IDS = tuple(s.id for s in samba.SPECS)


def _mode(h: Host, path: str) -> tuple[str, int, int] | None:
    st = h.stat(h.path(path))
    return None if st is None else (str(h.path(path)), stat.S_IMODE(st.st_mode), st.st_uid)


def _host_keys(h: Host) -> list[str]:
    folder = h.path("/etc/ssh")
    return [str(folder / n) for n in h.listdir(folder)
            if n.startswith("ssh_host_") and n.endswith("_key")]


def probe_ssh_options(ctx: Context) -> list[Finding]:
    h = ctx.host
    conf = h.path("/etc/ssh/sshd_config")
    text = h.read_text(conf)
    if text is None:
        raise NotApplicable(Text(f"không có {conf}: máy chủ không chạy SSH",
                                 f"no {conf}: no SSH server here"))
    args = ["-T", "-f", str(conf)]
    if not h.live:  # the server's own keys are found by sshd; a test tree brings its own
        for key in _host_keys(h):
            st = h.stat(Path(key))
            if st is not None and not st.st_mode & 0o077:  # sshd refuses an open key file
                args += ["-h", key]
    done = h.run("sshd", args)
    if done.returncode != 0:
        why = first_line(done.stderr) or f"exit {done.returncode}"
        raise Unknown(Text(f"sshd -T từ chối {conf}: {why}", f"sshd -T refused {conf}: {why}"))
    lines = ssh.flatten(str(conf), text, lambda pattern: _included(h, pattern))
    return ssh.evaluate(ssh.parse_effective(done.stdout), lines, str(conf))


def _included(h: Host, pattern: str) -> list[tuple[str, str]]:
    """The files an sshd ``Include`` pattern names on the server, sorted as glob(3) does;
    one that cannot be read (a FIFO, too large) is Unknown, as the config itself."""
    rel = pattern.lstrip("/")
    found = sorted(glob.glob(os.path.join(glob.escape(str(h.root)), rel)))
    out = []
    for name in found:
        text = h.read_text(Path(name))
        if text is not None:
            out.append((name, text))
    return out


def probe_ssh_files(ctx: Context) -> list[Finding]:
    h = ctx.host
    config = _mode(h, "/etc/ssh/sshd_config")
    if config is None:
        raise NotApplicable(Text("không có sshd_config", "no sshd_config"))
    keys = [m for k in _host_keys(h) if (m := _mode(h, "/etc/ssh/" + os.path.basename(k)))]
    return ssh.file_findings(config, keys)


def probe_accounts(ctx: Context) -> list[Finding]:
    h = ctx.host
    passwd_path, shadow_path = h.path("/etc/passwd"), h.path("/etc/shadow")
    passwd = h.read_text(passwd_path, limit=16 << 20)
    if passwd is None:
        raise Unknown(Text(f"không có {passwd_path}", f"{passwd_path} does not exist"))
    shadow_text = h.read_text(shadow_path, limit=16 << 20)
    shadow = None if shadow_text is None else accounts.parse_shadow(shadow_text)
    found = accounts.account_findings(accounts.parse_passwd(passwd), shadow, str(passwd_path),
                                      str(shadow_path))
    others = [m for p in ("/etc/passwd", "/etc/group") if (m := _mode(h, p))]
    return found + accounts.perm_findings(_mode(h, "/etc/shadow"), others)


def sudoers_files(h: Host) -> list[str]:
    """/etc/sudoers and the files sudo reads from /etc/sudoers.d (not those with a dot or
    ending in ~, which sudo skips)."""
    files = ["/etc/sudoers"] if h.stat(h.path("/etc/sudoers")) else []
    folder = h.path("/etc/sudoers.d")
    files += [f"/etc/sudoers.d/{n}" for n in h.listdir(folder)
              if "." not in n and not n.endswith("~")]
    return files


def probe_sudo(ctx: Context) -> list[Finding]:
    h = ctx.host
    files = sudoers_files(h)
    if not files:
        raise NotApplicable(Text("không có /etc/sudoers: sudo chưa được cài",
                                 "no /etc/sudoers: sudo is not installed"))
    texts = []
    for f in files:
        text = h.read_text(h.path(f))
        if text is not None:
            texts.append((str(h.path(f)), text))
    modes = [m for f in files if (m := _mode(h, f))]
    return [*accounts.sudo_findings(texts), accounts.sudo_perm_findings(modes)]


def probe_samba(ctx: Context) -> list[Finding]:
    h = ctx.host
    conf = h.path("/etc/samba/smb.conf")
    if h.read_text(conf) is None:
        raise NotApplicable(Text(f"không có {conf}: máy chủ không chạy Samba",
                                 f"no {conf}: no Samba server here"))
    done = h.run("testparm", ["-s", "-v", "--suppress-prompt", str(conf)])
    if done.returncode != 0 or "[global]" not in done.stdout:
        why = first_line(done.stderr) or f"exit {done.returncode}"
        raise Unknown(Text(f"testparm từ chối {conf}: {why}",
                           f"testparm refused {conf}: {why}"))
    sections = samba.parse_testparm(done.stdout)
    modes: dict[str, tuple[int, int] | None] = {}
    for path in samba.share_paths(sections).values():
        st = h.stat(h.path(path))
        modes[path] = None if st is None else (stat.S_IMODE(st.st_mode), st.st_uid)
    return samba.evaluate(sections, str(conf), modes)
