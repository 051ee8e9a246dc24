"""Checks of the files inside the watched folders (pure): what a file's mode and owner say,
and the findings from what the bounded walk (``secops/review/walk.py``) flagged."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from secops.review.model import Finding, Spec, bad, ok, spec

SPECS: tuple[Spec, ...] = (
    spec("files.world_writable", "high",
         ("Tệp ai cũng ghi được trong thư mục dữ liệu", "World-writable election files"),
         ("Mọi tài khoản trên máy chủ (kể cả dịch vụ bị chiếm quyền) sửa được danh sách cử "
          "tri hay biên bản này.",
          "Every account on the server, a compromised service too, can change these voter "
          "lists or minutes."),
         ("chmod -R o-w THƯ_MỤC_DỮ_LIỆU   (hoặc từng tệp: chmod o-w TỆP)",
          "chmod -R o-w DATA_FOLDER   (or each file: chmod o-w FILE)")),
    spec("files.setuid", "high", ("Tệp setuid/setgid trong dữ liệu", "setuid/setgid data files"),
         ("Thư mục dữ liệu không có chương trình; tệp setuid ở đó là cách leo thang lên root.",
          "Data folders hold no programs; a setuid file there is a way to become root."),
         ("chmod ug-s TỆP   (và tìm hiểu ai đã đặt nó ở đó)",
          "chmod ug-s FILE   (and find out who put it there)")),
    spec("files.unowned", "medium", ("Tệp không có chủ", "Files without an owner"),
         ("Tệp của UID không còn tài khoản sẽ thuộc về bất kỳ ai được cấp lại UID đó.",
          "A file of a UID with no account belongs to whoever gets that UID next."),
         ("chown NGƯỜI_DÙNG:NHÓM TỆP   (tìm: find THƯ_MỤC -nouser -o -nogroup)",
          "chown USER:GROUP FILE   (find them: find FOLDER -nouser -o -nogroup)")),
    spec("files.owner", "medium", ("Tệp của tài khoản dịch vụ", "Files owned by a service account"),
         ("Dữ liệu bầu cử thuộc root hoặc cán bộ (UID từ 1000); tệp của tài khoản dịch vụ "
          "(www-data, nobody...) cho thấy một dịch vụ đã ghi vào đó.",
          "Election data belongs to root or the clerks (UID 1000 and up); a file of a service "
          "account (www-data, nobody...) means a service wrote there."),
         ("chown CÁN_BỘ:NHÓM TỆP   sau khi xác minh tệp", "chown CLERK:GROUP FILE   after "
          "checking the file")),
)

WALK_MAX_ENTRIES = 200_000
NOBODY = 65534


@dataclass
class Flagged:
    """What the walk found, per check id, and how far it got."""

    items: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    entries: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)

    def add(self, cid: str, text: str, limit: int) -> None:
        self.counts[cid] = self.counts.get(cid, 0) + 1
        items = self.items.setdefault(cid, [])
        if len(items) < limit:
            items.append(text)


def flags(mode: int, uid: int, known_uids: set[int] | None) -> list[str]:
    """The check ids a file of this mode and owner fails (links: none)."""
    if stat.S_ISLNK(mode):
        return []
    out = []
    if mode & stat.S_IWOTH:
        out.append("files.world_writable")
    if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
        out.append("files.setuid")
    if known_uids is not None and uid not in known_uids:
        out.append("files.unowned")
    elif 0 < uid < 1000 or uid == NOBODY:
        out.append("files.owner")
    return out


def describe(path: str, mode: int, uid: int) -> str:
    return f"{path} ({stat.filemode(mode)} uid {uid})"


def file_findings(f: Flagged, folders: list[str]) -> list[Finding]:
    scope_vi = f"{f.entries} mục trong {', '.join(folders)}"
    scope_en = f"{f.entries} entries in {', '.join(folders)}"
    if f.truncated:
        scope_vi += f" (dừng ở {WALK_MAX_ENTRIES} mục)"
        scope_en += f" (stopped at {WALK_MAX_ENTRIES} entries)"
    out = []
    for s in SPECS:
        items = f.items.get(s.id, [])
        count = f.counts.get(s.id, 0)
        if not count:
            out.append(ok(s.id, f"không có ({scope_vi})", f"none ({scope_en})"))
            continue
        more = count - len(items)
        shown = "; ".join(items)
        out.append(bad(s.id, f"{count} mục: {shown}" + (f"; và {more} mục khác" if more else ""),
                       f"{count} entries: {shown}" + (f"; and {more} more" if more else "")))
    return out
