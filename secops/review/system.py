"""Updates, time and disk checks (pure): APT configuration text, ``apt-get -s`` output,
the clock's synchronisation state, free space of the folders secops depends on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from secops.review.model import Finding, Spec, bad, judged, na, ok, spec

SPECS: tuple[Spec, ...] = (
    spec("updates.unattended", "high", ("Tự động cập nhật bảo mật", "Automatic security updates"),
         ("Lỗ hổng được vá trong vài ngày; máy chủ không tự cập nhật thì mở cửa cho mã độc "
          "khai thác lỗ hổng đã công bố.",
          "Holes are patched within days; a server that does not update itself stays open "
          "to published exploits."),
         ("apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades"
          "   (tạo /etc/apt/apt.conf.d/20auto-upgrades)",
          "apt-get install unattended-upgrades && dpkg-reconfigure -plow unattended-upgrades"
          "   (writes /etc/apt/apt.conf.d/20auto-upgrades)")),
    spec("updates.security_origin", "medium", ("Nguồn cập nhật bảo mật", "Security origin"),
         ("unattended-upgrades chỉ cài những gì từ các nguồn được liệt kê; thiếu nguồn "
          "Debian-Security thì bản vá bảo mật không được cài.",
          "unattended-upgrades installs only from its listed origins; without "
          "Debian-Security the security fixes are not installed."),
         ('Thêm "origin=Debian,codename=${distro_codename},label=Debian-Security"; vào '
          "Unattended-Upgrade::Origins-Pattern trong /etc/apt/apt.conf.d/50unattended-upgrades",
          'Add "origin=Debian,codename=${distro_codename},label=Debian-Security"; to '
          "Unattended-Upgrade::Origins-Pattern in /etc/apt/apt.conf.d/50unattended-upgrades")),
    spec("updates.pending_security", "high",
         ("Bản vá bảo mật chưa cài", "Pending security updates"),
         ("Các gói này có lỗ hổng đã công bố và đã có bản vá.",
          "These packages have published holes with fixes available."),
         ("apt-get update && apt-get upgrade   (hoặc: unattended-upgrade -v)",
          "apt-get update && apt-get upgrade   (or: unattended-upgrade -v)")),
    spec("updates.lists_age", "low", ("Danh sách gói cũ", "Package lists out of date"),
         ("Danh sách gói cũ thì không biết có bản vá mới; kiểm tra bản vá ở trên cũng kém tin cậy.",
          "With old package lists new fixes are unknown, and the check above is less sure."),
         ("apt-get update", "apt-get update")),
    spec("updates.reboot_required", "medium", ("Cần khởi động lại", "Reboot required"),
         ("Nhân hoặc thư viện đã vá chỉ có hiệu lực sau khi khởi động lại.",
          "A patched kernel or library takes effect only after a reboot."),
         ("Khởi động lại ngoài giờ làm việc: systemctl reboot",
          "Reboot outside office hours: systemctl reboot")),
    spec("time.sync", "medium", ("Đồng bộ thời gian", "Time synchronisation"),
         ("Giờ sai làm sai thời điểm trong nhật ký, biên bản sự cố và chữ ký; chứng cứ có "
          "thể bị bác bỏ.",
          "A wrong clock puts wrong times in logs, incident records and signatures; "
          "evidence can be disputed."),
         ("timedatectl set-ntp true   (hoặc: apt-get install systemd-timesyncd)",
          "timedatectl set-ntp true   (or: apt-get install systemd-timesyncd)")),
    spec("time.service", "low", ("Dịch vụ đồng bộ giờ", "Time sync service at boot"),
         ("Không có dịch vụ đồng bộ giờ bật khi khởi động thì đồng hồ trôi dần.",
          "Without a time service started at boot the clock drifts."),
         ("systemctl enable --now systemd-timesyncd   (hoặc chrony)",
          "systemctl enable --now systemd-timesyncd   (or chrony)")),
    spec("disk.watch", "high", ("Dung lượng thư mục dữ liệu", "Free space: data folders"),
         ("Đầy đĩa thì cán bộ không lưu được tệp và bản sao lưu thất bại.",
          "A full disk stops the clerks saving files and makes backups fail."),
         ("Giải phóng dung lượng (du -xsh /srv/* | sort -h) hoặc mở rộng đĩa",
          "Free space (du -xsh /srv/* | sort -h) or grow the disk")),
    spec("disk.state", "high", ("Dung lượng thư mục trạng thái", "Free space: state folder"),
         ("Đầy đĩa trạng thái thì nhật ký kiểm toán, bản kê và cảnh báo không ghi được.",
          "A full state disk stops the audit log, manifests and alerts."),
         ("Giải phóng dung lượng trên đĩa chứa state_dir (du -xsh /var/lib/secops/*)",
          "Free space on the state_dir disk (du -xsh /var/lib/secops/*)")),
    spec("disk.target", "medium", ("Dung lượng kho sao lưu tại chỗ", "Free space: local target"),
         ("Kho sao lưu đầy thì bản sao lưu mới thất bại.",
          "A full repository makes new backups fail."),
         ("Chạy dọn theo chính sách lưu giữ (restic forget --prune) hoặc mở rộng đĩa",
          "Apply retention (restic forget --prune) or grow the disk")),
    spec("disk.inodes", "medium", ("Số inode còn trống", "Free inodes"),
         ("Hết inode thì không tạo được tệp mới dù đĩa còn dung lượng.",
          "Out of inodes, no new file can be made even with space left."),
         ("Xóa các tệp nhỏ không cần (bộ đệm, tệp tạm): find THƯ_MỤC -xdev -type f | wc -l",
          "Remove unneeded small files (caches, temp files): find FOLDER -xdev -type f | "
          "wc -l")),
)

LISTS_MAX_AGE_S = 7 * 86400
MIN_FREE_RATIO = 0.10
MIN_FREE_BYTES = 1 << 30


def _tokens(text: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"//[^\n]*", " ", "\n".join(lines))
    return re.findall(r'"[^"\n]*"|[{};]|[^\s{};"]+', text)


def parse_apt_conf(text: str) -> list[tuple[str, str]]:
    """APT configuration text -> (key lower-cased with ``::`` scopes, value) in order; the
    items of a list (``Key { "a"; "b"; };``) come as (key, item)."""
    out: list[tuple[str, str]] = []
    stack: list[str] = []
    key: str | None = None
    for tok in _tokens(text):
        if tok == "{":
            stack.append(key or "")
            key = None
        elif tok == "}":
            if stack:
                stack.pop()
            key = None
        elif tok == ";":
            key = None
        elif key is None and tok.startswith('"') and stack:
            out.append(("::".join(stack).lower(), tok.strip('"')))
        elif key is None:
            key = tok.strip('"')
        else:
            out.append(("::".join([*stack, key]).lower(), tok.strip('"')))
            key = None
    return out


def package_installed(status: str, name: str) -> bool:
    """Whether dpkg's status file has ``name`` installed."""
    for block in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(name)}$", block, re.M) and \
                re.search(r"^Status: install ok installed$", block, re.M):
            return True
    return False


def unattended_findings(installed: bool, conf: list[tuple[str, str]]) -> list[Finding]:
    values = dict(conf)
    upgrade = values.get("apt::periodic::unattended-upgrade", "0")
    lists = values.get("apt::periodic::update-package-lists", "0")
    shown = (f"unattended-upgrades {'đã' if installed else 'chưa'} cài; "
             f"APT::Periodic::Unattended-Upgrade \"{upgrade}\"; "
             f"APT::Periodic::Update-Package-Lists \"{lists}\"")
    shown_en = (f"unattended-upgrades {'installed' if installed else 'not installed'}; "
                f"APT::Periodic::Unattended-Upgrade \"{upgrade}\"; "
                f"APT::Periodic::Update-Package-Lists \"{lists}\"")
    on = installed and upgrade not in ("0", "") and lists not in ("0", "")
    first = ok("updates.unattended", shown, shown_en) if on else \
        bad("updates.unattended", shown, shown_en)
    origins = [v for k, v in conf if k in ("unattended-upgrade::origins-pattern",
                                           "unattended-upgrade::allowed-origins")]
    if not installed:
        return [first, na("updates.security_origin", "unattended-upgrades chưa cài",
                          "unattended-upgrades is not installed")]
    security = [o for o in origins if "security" in o.lower()]
    if security:
        return [first, ok("updates.security_origin", "; ".join(security), "; ".join(security))]
    listed = "; ".join(origins) or "(không có)"
    return [first, bad("updates.security_origin", f"các nguồn: {listed}",
                       f"origins: {listed.replace('(không có)', '(none)')}")]


_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*)\)")


def pending_upgrades(apt_output: str) -> list[tuple[str, bool]]:
    """(``name old -> new``, is it from a security origin) per ``Inst`` line."""
    out = []
    for line in apt_output.splitlines():
        m = _INST.match(line)
        if m:
            label = f"{m[1]} {m[2] or '-'} -> {m[3]}"
            out.append((label, "security" in m[4].lower()))
    return out


def pending_finding(upgrades: list[tuple[str, bool]], lists_age_s: float | None) -> Finding:
    security = [label for label, sec in upgrades if sec]
    note_vi = note_en = ""
    if lists_age_s is not None and lists_age_s > LISTS_MAX_AGE_S:
        days = int(lists_age_s // 86400)
        note_vi, note_en = f" (danh sách gói đã {days} ngày)", f" (package lists {days} days old)"
    return judged("updates.pending_security", security,
                  f"{len(security)} gói có bản vá bảo mật chưa cài{note_vi}",
                  f"{len(security)} packages with security fixes not installed{note_en}",
                  f"không còn bản vá bảo mật chưa cài ({len(upgrades)} bản nâng cấp khác)"
                  f"{note_vi}", f"no pending security fix ({len(upgrades)} other upgrades)"
                  f"{note_en}")


def lists_finding(age_s: float | None) -> Finding:
    if age_s is None:
        return bad("updates.lists_age", "chưa từng chạy apt-get update",
                   "apt-get update never ran")
    days = age_s / 86400
    shown_vi, shown_en = f"cập nhật {days:.1f} ngày trước", f"updated {days:.1f} days ago"
    if age_s > LISTS_MAX_AGE_S:
        return bad("updates.lists_age", shown_vi, shown_en)
    return ok("updates.lists_age", shown_vi, shown_en)


@dataclass(frozen=True)
class Space:
    label: str          # what the folder is (watch, state, target NAME)
    path: str
    total: int
    free: int
    inodes: int
    inodes_free: int

    def short(self) -> bool:
        return self.total > 0 and (self.free < MIN_FREE_BYTES or
                                   self.free < MIN_FREE_RATIO * self.total)

    def text(self) -> str:
        pct = 100 * self.free / self.total if self.total else 0
        return f"{self.path}: {self.free / (1 << 30):.1f} GiB ({pct:.0f}%) free"


def disk_findings(watch: list[Space], state: list[Space], targets: list[Space]
                  ) -> list[Finding]:
    out = []
    for cid, spaces in (("disk.watch", watch), ("disk.state", state), ("disk.target", targets)):
        if not spaces:
            out.append(na(cid, "không có thư mục nào", "no such folder"))
            continue
        short = [s.text() for s in spaces if s.short()]
        fine = "; ".join(s.text() for s in spaces)
        out.append(judged(cid, short, "sắp đầy (dưới 10% hoặc 1 GiB)",
                          "nearly full (under 10% or 1 GiB)", fine, fine))
    every = [*watch, *state, *targets]
    few = [f"{s.path}: {s.inodes_free}/{s.inodes} inodes free" for s in every
           if s.inodes and s.inodes_free < MIN_FREE_RATIO * s.inodes]
    out.append(judged("disk.inodes", few, "sắp hết inode", "nearly out of inodes",
                      "đủ inode", "enough inodes"))
    return out


def time_finding(source: str, synchronised: bool, detail: str) -> Finding:
    """``source``: who said (timedatectl, the kernel); ``detail``: what it said."""
    shown = f"{source}: {detail}"
    if synchronised:
        return ok("time.sync", shown, shown)
    return bad("time.sync", shown, shown)


TIME_SERVICES = ("systemd-timesyncd", "chrony", "chronyd", "ntp", "ntpsec", "openntpd")


def time_service_finding(enabled: list[str]) -> Finding:
    """``enabled``: the unit links found under /etc/systemd/system/*.wants."""
    if enabled:
        shown = "; ".join(enabled)
        return ok("time.service", shown, shown)
    names = ", ".join(TIME_SERVICES)
    return bad("time.service", f"không dịch vụ nào được bật: {names}",
               f"none enabled: {names}")
