"""Samba checks (pure): the settings as ``testparm -s -v`` prints them (every global,
defaults included) and the modes of the shared folders."""

from __future__ import annotations

from secops.review.model import Finding, Spec, judged, spec

RELOAD_VI = "rồi kiểm tra và nạp lại: testparm -s && smbcontrol smbd reload-config"
RELOAD_EN = "then check and reload: testparm -s && smbcontrol smbd reload-config"

SPECS: tuple[Spec, ...] = (
    spec("samba.smb1", "high", ("Giao thức SMB1", "SMB1 protocol"),
         ("SMB1 là giao thức mà WannaCry và nhiều mã độc tống tiền dùng để lây lan; máy trạm "
          "Windows hiện nay không cần nó.",
          "SMB1 is what WannaCry and other ransomware spread through; current Windows PCs "
          "do not need it."),
         (f"Đặt `server min protocol = SMB2_10` trong [global] của /etc/samba/smb.conf, "
          f"{RELOAD_VI}",
          f"Set `server min protocol = SMB2_10` in [global] of /etc/samba/smb.conf, "
          f"{RELOAD_EN}")),
    spec("samba.map_to_guest", "medium", ("Chuyển người lạ thành khách", "Map to guest"),
         ("Với map to guest, tên đăng nhập sai được nhận làm khách thay vì bị từ chối.",
          "With map to guest, a wrong user name is let in as guest instead of refused."),
         (f"Đặt `map to guest = never` trong [global], {RELOAD_VI}",
          f"Set `map to guest = never` in [global], {RELOAD_EN}")),
    spec("samba.guest_ok", "high", ("Thư mục chia sẻ cho khách", "Shares open to guests"),
         ("Thư mục chia sẻ cho khách thì mọi máy trong mạng đọc (và có thể ghi) danh sách cử "
          "tri mà không cần tài khoản.",
          "A guest share lets any machine on the network read (maybe write) the voter lists "
          "without an account."),
         (f"Đặt `guest ok = no` trong mục chia sẻ đó, {RELOAD_VI}",
          f"Set `guest ok = no` in that share, {RELOAD_EN}")),
    spec("samba.share_perms", "high", ("Quyền thư mục được chia sẻ", "Shared folder permissions"),
         ("Thư mục chia sẻ ai cũng ghi được thì mọi tài khoản trên máy chủ sửa được dữ liệu.",
          "A world-writable shared folder can be changed by every account on the server."),
         ("chmod o-w THƯ_MỤC   (cấp quyền ghi qua nhóm: chgrp NHÓM THƯ_MỤC && chmod 2770 ...)",
          "chmod o-w FOLDER   (give write access through a group: chgrp GROUP FOLDER && "
          "chmod 2770 ...)")),
    spec("samba.ntlmv1", "medium", ("Xác thực NTLMv1 / LANMAN", "NTLMv1 / LANMAN auth"),
         ("Băm NTLMv1 và LANMAN bị bẻ trong vài phút khi bắt được trên mạng.",
          "NTLMv1 and LANMAN hashes captured on the network crack in minutes."),
         (f"Đặt `ntlm auth = ntlmv2-only` và `lanman auth = no` trong [global], {RELOAD_VI}",
          f"Set `ntlm auth = ntlmv2-only` and `lanman auth = no` in [global], {RELOAD_EN}")),
    spec("samba.hosts_allow", "low", ("Giới hạn máy được kết nối", "Hosts allowed to connect"),
         ("Không giới hạn địa chỉ thì bất kỳ máy nào vào được mạng cũng thử đăng nhập được.",
          "Without an address limit any machine on the network can try to log in."),
         (f"Đặt `hosts allow = 127.0.0.1 192.168.1.0/24` (mạng LAN của xã) trong [global], "
          f"{RELOAD_VI}",
          f"Set `hosts allow = 127.0.0.1 192.168.1.0/24` (the office LAN) in [global], "
          f"{RELOAD_EN}")),
    spec("samba.signing", "low", ("Ký gói tin SMB", "SMB signing"),
         ("Không bắt buộc ký gói tin thì kẻ ở giữa có thể chuyển tiếp và sửa phiên SMB.",
          "Without mandatory signing a machine in the middle can relay and alter SMB "
          "sessions."),
         (f"Đặt `server signing = mandatory` trong [global], {RELOAD_VI}",
          f"Set `server signing = mandatory` in [global], {RELOAD_EN}")),
)

OLD_PROTOCOLS = {"core", "coreplus", "lanman1", "lanman2", "nt1"}


def parse_testparm(text: str) -> dict[str, dict[str, str]]:
    """Section name (lower case) -> parameter (lower case) -> value."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), {})
            continue
        key, sep, value = line.partition("=")
        if sep and current is not None:
            current[key.strip().lower()] = value.strip()
    return sections


def share_paths(sections: dict[str, dict[str, str]]) -> dict[str, str]:
    """Share name -> its path; printer shares (their spool folder is world-writable by
    design) and shares without a fixed path are left out."""
    return {name: s["path"] for name, s in sections.items()
            if name != "global" and s.get("path") and "%" not in s["path"]
            and s.get("printable", "no").lower() not in ("yes", "true", "1")}


def evaluate(sections: dict[str, dict[str, str]], conf: str,
             path_modes: dict[str, tuple[int, int] | None]) -> list[Finding]:
    """``path_modes``: share path -> (mode, uid), None when it does not exist."""
    g = sections.get("global", {})

    def val(key: str, section: dict[str, str] | None = None, default: str = "") -> str:
        src = section if section is not None and key in section else g
        return src.get(key, default).lower()

    shares = {k: v for k, v in sections.items() if k != "global"}
    minimum = val("server min protocol", default="smb2_02")
    out = [judged("samba.smb1", [f"{conf}: server min protocol = {minimum}"]
                  if minimum in OLD_PROTOCOLS else [], "SMB1 đang bật", "SMB1 is on",
                  f"server min protocol = {minimum}", f"server min protocol = {minimum}")]
    mapping = val("map to guest", default="never")
    out.append(judged("samba.map_to_guest", [f"{conf}: map to guest = {mapping}"]
                      if mapping != "never" else [], "đang bật", "on",
                      "map to guest = never", "map to guest = never"))
    guests = [f"[{n}] guest ok = yes ({conf})" for n, s in shares.items()
              if val("guest ok", s) == "yes" and val("available", s, "yes") != "no"]
    out.append(judged("samba.guest_ok", guests, "chia sẻ cho khách", "guest shares",
                      "không chia sẻ nào cho khách", "no share is open to guests"))
    writable = [f"[{n}] {p} mode {m[0]:04o}" for n, p in share_paths(sections).items()
                if (m := path_modes.get(p)) is not None and m[0] & 0o002]
    out.append(judged("samba.share_perms", writable, "ai cũng ghi được", "world-writable",
                      f"{len(share_paths(sections))} thư mục chia sẻ, không cái nào ai cũng "
                      "ghi được", f"{len(share_paths(sections))} shared folders, none "
                      "world-writable"))
    weak = [f"{conf}: {k} = {val(k)}" for k in ("ntlm auth", "lanman auth")
            if val(k) in ("yes", "ntlmv1-permitted")]
    out.append(judged("samba.ntlmv1", weak, "cho phép", "allowed",
                      "chỉ NTLMv2", "NTLMv2 only"))
    allowed = val("hosts allow")
    limited = bool(allowed) or (bool(shares) and all(s.get("hosts allow")
                                                     for s in shares.values()))
    out.append(judged("samba.hosts_allow", [] if limited else [f"{conf}: hosts allow ="],
                      "không giới hạn", "no limit", f"hosts allow = {allowed or '(shares)'}",
                      f"hosts allow = {allowed or '(shares)'}"))
    signing = val("server signing", default="default")
    out.append(judged("samba.signing", [f"{conf}: server signing = {signing}"]
                      if signing not in ("mandatory", "required") else [],
                      "không bắt buộc", "not mandatory", f"server signing = {signing}",
                      f"server signing = {signing}"))
    return out
