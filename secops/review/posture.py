"""secops's own posture (pure): what its config, state folder, state.db and systemd unit
say about how well the office is protected. The adapter gathers :class:`Posture`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from secops.review.model import Finding, Spec, bad, judged, na, ok, spec

SPECS: tuple[Spec, ...] = (
    spec("secops.offsite_target", "high", ("Bản sao lưu ngoài trụ sở", "Off-site backup target"),
         ("Cháy, trộm hay mã độc tống tiền trên máy chủ sẽ xóa cả bản sao lưu nằm cùng chỗ.",
          "Fire, theft or ransomware on the server takes the backups kept beside it too."),
         ("Thêm một [[backup.targets]] rest:/sftp:/s3: ở nơi khác (ví dụ máy chủ của huyện), "
          "rồi chạy secops init",
          "Add a rest:/sftp:/s3: [[backup.targets]] elsewhere (e.g. the district's server), "
          "then run secops init")),
    spec("secops.append_only_target", "high", ("Kho sao lưu chỉ-ghi-thêm", "Append-only target"),
         ("Kẻ chiếm root máy chủ xóa được mọi kho sao lưu nó ghi được; chỉ kho chỉ-ghi-thêm "
          "do máy chủ khác giữ là còn lại.",
          "Whoever takes root deletes every repository the server can write; only an "
          "append-only one kept by another server survives."),
         ("Dùng rclone serve restic --append-only (hoặc rest-server --append-only) ở máy chủ "
          "ngoài và đặt append_only = true cho target đó",
          "Run rclone serve restic --append-only (or rest-server --append-only) off-site "
          "and set append_only = true on that target")),
    spec("secops.drill_age", "medium", ("Diễn tập khôi phục gần đây", "Recent restore drill"),
         ("Bản sao lưu chưa từng khôi phục thử thì chưa biết có dùng được không.",
          "A backup never restored in a drill is not known to work."),
         ("secops drill   (daemon chạy hằng tuần theo [schedule] drill_weekday)",
          "secops drill   (the daemon runs one weekly, [schedule] drill_weekday)")),
    spec("secops.k0_gone", "high", ("Khóa gốc K_0 của nhật ký kiểm toán",
                                    "Audit log initial key K_0"),
         ("Còn K_0 trên máy chủ thì kẻ chiếm root viết lại được toàn bộ nhật ký kiểm toán mà "
          "không bị phát hiện.",
          "With K_0 still on the server, whoever takes root can rewrite the whole audit log "
          "undetected."),
         ("secops keys escrow --to VÂN_TAY_NGƯỜI_GIỮ_KHÓA   (gửi K_0 vào ký quỹ rồi xóa khỏi "
          "máy chủ)", "secops keys escrow --to CUSTODIAN_FINGERPRINT   (puts K_0 in escrow "
          "and removes it from the server)")),
    spec("secops.log_sealing", "medium", ("Niêm phong nhật ký hệ thống", "System log sealing"),
         ("Không niêm phong thì kẻ tấn công xóa dấu vết trong auth.log mà không ai biết.",
          "Without sealing, an attacker wipes their traces from auth.log unnoticed."),
         ('Thêm vào cấu hình: [logs] seal = ["/var/log/auth.log", "/var/log/syslog"]',
          'Add to the config: [logs] seal = ["/var/log/auth.log", "/var/log/syslog"]')),
    spec("secops.integrity_monitor", "high", ("Giám sát toàn vẹn (fanotify)",
                                              "Integrity monitor (fanotify)"),
         ("Không có giám sát fanotify thì mã độc tống tiền mã hóa hết thư mục trước khi bị "
          "chặn.", "Without the fanotify monitor ransomware encrypts the whole folder "
          "before it is stopped."),
         ("Đặt [integrity] enabled = true, fanotify = true; chạy daemon bằng root: "
          "systemctl restart secops", "Set [integrity] enabled = true, fanotify = true; run "
          "the daemon as root: systemctl restart secops")),
    spec("secops.daemon", "high", ("Dịch vụ secops đang chạy", "secops daemon running"),
         ("Không có daemon thì không có sao lưu tức thời, phát hiện hay ngăn chặn.",
          "Without the daemon there is no backup on change, detection or containment."),
         ("systemctl enable --now secops && systemctl status secops",
          "systemctl enable --now secops && systemctl status secops")),
    spec("secops.unit_sandbox", "medium", ("Hộp cát của dịch vụ systemd", "systemd sandbox"),
         ("Hộp cát systemd giới hạn thiệt hại nếu chính secops bị khai thác.",
          "The systemd sandbox limits the damage if secops itself is exploited."),
         ("Cài tệp dịch vụ đi kèm: install -m 644 systemd/secops.service /etc/systemd/system/ "
          "&& systemctl daemon-reload (xem docs/systemd.md)",
          "Install the shipped unit: install -m 644 systemd/secops.service "
          "/etc/systemd/system/ && systemctl daemon-reload (docs/systemd.md)")),
    spec("secops.state_perms", "high", ("Quyền thư mục trạng thái", "State folder permissions"),
         ("state_dir chứa mật khẩu kho sao lưu và khóa ký; người khác đọc được là lộ hết.",
          "state_dir holds the repository passwords and signing keys."),
         ("chmod 700 /var/lib/secops && chmod 600 /var/lib/secops/keys/*",
          "chmod 700 /var/lib/secops && chmod 600 /var/lib/secops/keys/*")),
    spec("secops.config_perms", "high", ("Quyền tệp cấu hình secops", "secops config permissions"),
         ("Ai sửa được cấu hình thì tắt được giám sát hoặc đổi nơi sao lưu.",
          "Whoever edits the config can turn off monitoring or redirect backups."),
         ("chown root:root /etc/secops/secops.toml && chmod 640 /etc/secops/secops.toml; "
          "env_file: chmod 600", "chown root:root /etc/secops/secops.toml && chmod 640 "
          "/etc/secops/secops.toml; env_file: chmod 600")),
    spec("secops.backup_fresh", "medium", ("Bản sao lưu gần đây", "Recent backup per target"),
         ("Một kho không nhận được bản sao lưu nào trong một ngày thì dữ liệu mới không được "
          "bảo vệ ở đó.", "A target with no backup for a day does not protect the newest "
          "data."),
         ("secops backup now --target TÊN; xem lỗi: secops status", "secops backup now "
          "--target NAME; see the error: secops status")),
)

DRILL_MAX_AGE_S = 8 * 86400
BACKUP_MAX_AGE_S = 86400
HEARTBEAT_MAX_AGE_S = 60
UNIT_WANTS = {"NoNewPrivileges": "yes", "ProtectSystem": "strict|full|yes",
              "PrivateTmp": "yes", "ProtectHome": "yes|read-only|tmpfs",
              "UMask": "0?077", "WatchdogSec": r"[1-9]\d*s?", "LimitNOFILE": r"\d{5,}",
              "CapabilityBoundingSet": r".+"}


@dataclass(frozen=True)
class Target:
    name: str
    kind: str            # local, rest, sftp, s3, other
    append_only: bool


@dataclass
class Posture:
    now: float
    targets: list[Target]
    k0: str | None                       # the path of K_0 when it still exists
    last_drill: tuple[float, str] | None  # newest successful drill: time, target
    seal: list[str]
    seal_every: int
    integrity: bool
    fanotify: bool
    monitor: dict[str, object] | None
    heartbeat: float | None
    unit: tuple[str, str, bool] | None    # path, text (drop-ins appended), installed?
    state_problems: list[str] = field(default_factory=list)
    config_problems: list[str] = field(default_factory=list)
    last_ok: dict[str, float | None] = field(default_factory=dict)


def unit_settings(text: str) -> dict[str, str]:
    """[Service] settings; a later assignment wins, an empty one resets."""
    out: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").lower()
            continue
        key, sep, value = line.partition("=")
        if sep and section == "service":
            out[key.strip().lower()] = value.strip()
    return out


def _age(now: float, then: float) -> str:
    days = (now - then) / 86400
    return f"{days:.1f}"


def evaluate(p: Posture) -> list[Finding]:
    out = [_targets(p, "secops.offsite_target"), _targets(p, "secops.append_only_target")]
    if p.last_drill is None:
        out.append(bad("secops.drill_age", "chưa có lần diễn tập thành công nào",
                       "no successful drill yet"))
    else:
        when, target = p.last_drill
        age = _age(p.now, when)
        texts = (f"lần thành công gần nhất {age} ngày trước (kho {target})",
                 f"last successful drill {age} days ago (target {target})")
        out.append(ok("secops.drill_age", *texts) if p.now - when <= DRILL_MAX_AGE_S
                   else bad("secops.drill_age", *texts))
    out.append(bad("secops.k0_gone", f"{p.k0} vẫn còn trên máy chủ", f"{p.k0} is still on "
                   "the server") if p.k0 else ok("secops.k0_gone", "K_0 không còn trên máy chủ",
                                                 "K_0 is not on the server"))
    if p.seal and p.seal_every > 0:
        shown = f"{', '.join(p.seal)} mỗi {p.seal_every} phút"
        out.append(ok("secops.log_sealing", shown, f"{', '.join(p.seal)} every "
                      f"{p.seal_every} minutes"))
    else:
        out.append(bad("secops.log_sealing", "[logs] seal trống hoặc seal_every_minutes = 0",
                       "[logs] seal is empty or seal_every_minutes = 0"))
    out.append(_monitor(p))
    out.append(_daemon(p))
    out.append(_unit(p.unit))
    out.append(judged("secops.state_perms", p.state_problems, "quyền quá rộng", "too open",
                      "state_dir 0700, khóa 0600", "state_dir 0700, keys 0600"))
    out.append(judged("secops.config_perms", p.config_problems, "quyền quá rộng", "too open",
                      "chỉ root sửa được", "writable by root only"))
    stale = [f"{name}: " + ("chưa từng" if t is None else f"{_age(p.now, t)} ngày")
             for name, t in p.last_ok.items() if t is None or p.now - t > BACKUP_MAX_AGE_S]
    stale_en = [s.replace("chưa từng", "never").replace(" ngày", " days") for s in stale]
    if stale:
        out.append(bad("secops.backup_fresh", "; ".join(stale), "; ".join(stale_en)))
    else:
        out.append(ok("secops.backup_fresh", f"{len(p.last_ok)} kho có bản sao lưu trong 24 giờ",
                      f"{len(p.last_ok)} targets backed up within 24 hours"))
    return out


def _targets(p: Posture, cid: str) -> Finding:
    listed = ", ".join(f"{t.name} ({t.kind}{', append-only' if t.append_only else ''})"
                       for t in p.targets)
    if cid == "secops.offsite_target":
        good = any(t.kind != "local" for t in p.targets)
    else:  # a local repository flagged append_only is still deletable by root here
        good = any(t.append_only and t.kind != "local" for t in p.targets)
    return ok(cid, listed, listed) if good else bad(cid, listed, listed)


def _monitor(p: Posture) -> Finding:
    cid = "secops.integrity_monitor"
    if not p.integrity or not p.fanotify:
        return bad(cid, f"[integrity] enabled = {str(p.integrity).lower()}, fanotify = "
                   f"{str(p.fanotify).lower()}", f"[integrity] enabled = "
                   f"{str(p.integrity).lower()}, fanotify = {str(p.fanotify).lower()}")
    status = str((p.monitor or {}).get("status") or "")
    error = (p.monitor or {}).get("error")
    alive = p.heartbeat is not None and p.now - p.heartbeat <= HEARTBEAT_MAX_AGE_S
    why = f" ({error})" if error else ""
    vi = f"state.db: monitor {status or 'chưa từng được ghi nhận'}{why}"
    en = f"state.db: monitor {status or 'never recorded'}{why}"
    if status == "running" and alive:
        return ok(cid, vi, en)
    return bad(cid, vi + ("" if alive else "; daemon không chạy"),
               en + ("" if alive else "; daemon not running"))


def _daemon(p: Posture) -> Finding:
    if p.heartbeat is None:
        return bad("secops.daemon", "state.db chưa có nhịp tim nào của daemon",
                   "state.db holds no daemon heartbeat")
    age = int(p.now - p.heartbeat)
    if age <= HEARTBEAT_MAX_AGE_S:
        return ok("secops.daemon", f"nhịp tim {age} giây trước", f"heartbeat {age} s ago")
    return bad("secops.daemon", f"nhịp tim cuối {age} giây trước",
               f"last heartbeat {age} s ago")


def _unit(unit: tuple[str, str, bool] | None) -> Finding:
    cid = "secops.unit_sandbox"
    if unit is None:
        return na(cid, "không tìm thấy secops.service", "no secops.service found")
    path, text, installed = unit
    where_vi = path if installed else f"{path} (chưa cài vào systemd)"
    where_en = path if installed else f"{path} (not installed in systemd)"
    have = unit_settings(text)
    missing = [f"{k}={have.get(k.lower(), '')}" for k, want in UNIT_WANTS.items()
               if not re.fullmatch(want, have.get(k.lower(), ""), re.I)]
    if missing:
        return bad(cid, f"{where_vi}: thiếu hoặc sai {', '.join(missing)}",
                   f"{where_en}: missing or wrong {', '.join(missing)}")
    return ok(cid, f"{where_vi}: đủ {len(UNIT_WANTS)} thiết lập",
              f"{where_en}: all {len(UNIT_WANTS)} settings")
