"""The incident report for the office leadership and the police: what Decree 13/2023/NĐ-CP
Art. 23 (Mẫu số 03) asks a personal-data breach notification to say, NIST SP 800-61 style
sections (detection and analysis, containment, recovery, lessons learned), the recovery and
drill results, and a signature block to print, sign and stamp.

``build`` gathers the facts (the incident store, the audit log, the drill history, the
affected voter lists) and composes one document of plain data; ``render_html`` and
``render_md`` are pure: the same sections in both, Vietnamese or English. The report never
calls itself signed unless a signing key is named (``signer``): the bundle that carries it is
only ever written with its signature (``bundle.make_bundle``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secops.config.schema import Config
from secops.playbooks.incidents import IncidentStore

FORMAT = "secops-incident-report/1"
DEADLINE_S = 72 * 3600
NOTIFIED_STEPS = ("notified", "notified-late")   # the personal-data-breach playbook's
VOTER_LISTS = "danh-sach-cu-tri"
CSV_MAX_BYTES = 64 << 20
DIFF_MAX_LINES = 40

WORDS: dict[str, dict[str, str]] = {
    "vi": {
        "nation": "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "motto": "Độc lập - Tự do - Hạnh phúc",
        "title": "BÁO CÁO SỰ CỐ VÀ THÔNG BÁO VI PHẠM DỮ LIỆU CÁ NHÂN",
        "subtitle": "Theo Mẫu số 03, Nghị định số 13/2023/NĐ-CP ngày 17/4/2023 của Chính phủ "
                    "về bảo vệ dữ liệu cá nhân (Điều 23)",
        "date_line": "{place}, ngày {d} tháng {m} năm {y}",
        "draft": "BẢN NHÁP — CHƯA KÝ SỐ",
        "general": "Thông tin chung",
        "incident": "Mã sự cố", "office": "Cơ quan", "kind": "Loại sự kiện",
        "severity": "Mức độ", "state": "Trạng thái", "playbook": "Kịch bản xử lý",
        "opened": "Mở sự cố lúc", "generated": "Lập báo cáo lúc",
        "s_breach": "1. Mô tả vi phạm dữ liệu cá nhân",
        "s_time_place": "1.1. Thời gian, địa điểm",
        "event_time": "Thời điểm xảy ra (theo bộ phát hiện)", "first_seen": "Dấu hiệu đầu tiên",
        "detected_by": "Phát hiện bởi", "address": "Địa chỉ", "host": "Máy chủ",
        "paths": "Tệp, thư mục bị ảnh hưởng",
        "s_act": "1.2. Hành vi vi phạm", "changes": "Thay đổi ghi nhận",
        "s_parties": "1.3. Tổ chức, cá nhân liên quan",
        "controller": "Bên kiểm soát, xử lý dữ liệu",
        "suspects": "Tiến trình, người dùng bị nghi ngờ",
        "logged_in": "Người dùng đăng nhập khi thu thập chứng cứ", "handlers": "Người xử lý sự cố",
        "recipients": "Cơ quan tiếp nhận thông báo",
        "recipients_v": "Bộ Công an (Cục An ninh mạng và phòng, chống tội phạm sử dụng công nghệ "
                        "cao, A05); Công an xã",
        "s_data": "1.4. Loại và số lượng dữ liệu cá nhân",
        "list": "Danh sách", "records": "Số bản ghi", "fields": "Loại dữ liệu (các trường)",
        "source": "Nguồn đếm", "total": "Tổng số bản ghi dữ liệu cá nhân",
        "no_personal": "Chưa xác định dữ liệu cá nhân (danh sách cử tri) trong các tệp bị ảnh "
                       "hưởng.",
        "voters": "cử tri",
        "src_snapshot": "bản sao lưu đã ghim {id}", "src_live": "tệp hiện tại",
        "s_contact": "2. Thông tin liên hệ của bộ phận bảo vệ dữ liệu",
        "contact_name": "Họ và tên", "contact_title": "Chức vụ", "contact_phone": "Điện thoại",
        "contact_email": "Thư điện tử",
        "s_consequences": "3. Hậu quả, thiệt hại có thể xảy ra",
        "s_measures": "4. Biện pháp đã và sẽ thực hiện",
        "taken": "Đã thực hiện", "planned": "Sẽ thực hiện",
        "s_deadline": "5. Thời hạn 72 giờ và tình trạng thông báo",
        "deadline": "Hạn chót thông báo (72 giờ kể từ khi phát hiện)",
        "status": "Tình trạng thông báo",
        "st_notified": "Đã thông báo lúc {at} (xác nhận bởi {by})",
        "st_notified_late": "Đã thông báo lúc {at} (xác nhận bởi {by}), TRỄ HẠN",
        "st_pending": "Chưa thông báo — còn {left}",
        "st_overdue": "QUÁ HẠN — chưa thông báo, đã quá hạn {late}",
        "delay_reason": "Lý do thông báo chậm (Điều 23 khoản 2)",
        "hours": "{h} giờ {m} phút",
        "s_detection": "6. Phát hiện và phân tích",
        "source_kind": "Nguồn phát hiện", "score": "Điểm đánh giá", "diff": "Nội dung thay đổi",
        "evidence_count": "Số chứng cứ đã thu thập",
        "s_containment": "7. Ngăn chặn",
        "pinned": "Bản sao lưu trước sự cố được ghim", "to_contain": "Thời gian đến khi ngăn chặn",
        "none": "Không có", "not_contained": "Chưa ghi nhận trạng thái ngăn chặn",
        "s_recovery": "8. Khôi phục",
        "s_drills": "Kết quả khôi phục và diễn tập",
        "restores": "Khôi phục trong sự cố", "drills": "Diễn tập gần nhất",
        "recovered": "Khôi phục xong lúc",
        "target": "Nơi sao lưu", "time": "Thời điểm", "snapshot": "Bản sao lưu",
        "result": "Kết quả", "files": "Số tệp đã kiểm tra", "rto": "RTO (giây)",
        "pass": "ĐẠT", "fail": "KHÔNG ĐẠT",
        "s_lessons": "9. Bài học kinh nghiệm",
        "root_cause": "Nguyên nhân gốc rễ", "went_well": "Điều đã làm tốt",
        "improve": "Cần cải thiện",
        "s_timeline": "10. Diễn biến", "what": "Sự việc", "detail": "Chi tiết",
        "s_evidence": "11. Chứng cứ và chuỗi lưu giữ",
        "seq": "STT", "name": "Tên", "size": "Kích thước (byte)",
        "custody_note": "Mỗi chứng cứ được băm SHA-256 và ghi vào biên bản chuỗi lưu giữ "
                        "(evidence/custody.jsonl), mỗi dòng nối với dòng trước bằng mã băm.",
        "s_audit": "12. Nhật ký kiểm toán",
        "audit_range": "Các bản ghi trích", "audit_cps": "Điểm kiểm tra có chữ ký (Ed25519)",
        "audit_key": "Khóa Ed25519 của cơ quan", "audit_check": "Kiểm tra khi lập hồ sơ",
        "audit_none": "Không trích được nhật ký kiểm toán",
        "s_signatures": "13. Chữ ký",
        "preparer": "Người lập báo cáo", "approver": "Lãnh đạo phê duyệt",
        "sign_hint": "(Ký, ghi rõ họ tên)", "stamp_hint": "(Ký tên, đóng dấu)",
        "digital": "Chữ ký số",
        "signed_stmt": "Hồ sơ chứng cứ chứa báo cáo này ({bundle}) được ký số bằng chữ ký "
                       "OpenPGP tách rời ({sig}) bởi khóa GPG của cơ quan, dấu vân tay {fpr}. "
                       "Chỉ tin cậy báo cáo sau khi kiểm tra chữ ký (xem README.txt).",
        "encrypted_stmt": "Hồ sơ được mã hóa cho khóa: {fprs}.",
        "unsigned_stmt": "Báo cáo này CHƯA được ký số: đây là bản nháp, không có giá trị "
                         "chứng cứ.",
        "yes": "có", "no": "không", "unknown": "chưa xác định", "not_declared": "chưa khai báo",
        "ok": "thành công", "failed": "thất bại",
    },
    "en": {
        "nation": "SOCIALIST REPUBLIC OF VIET NAM",
        "motto": "Independence - Freedom - Happiness",
        "title": "INCIDENT REPORT AND PERSONAL DATA BREACH NOTIFICATION",
        "subtitle": "Following Form No. 03 of Decree No. 13/2023/ND-CP of 17 April 2023 on "
                    "personal data protection (Article 23)",
        "date_line": "{place}, {d}/{m}/{y}",
        "draft": "DRAFT — NOT DIGITALLY SIGNED",
        "general": "General information",
        "incident": "Incident", "office": "Office", "kind": "Event kind",
        "severity": "Severity", "state": "State", "playbook": "Playbook",
        "opened": "Incident opened", "generated": "Report prepared",
        "s_breach": "1. Description of the personal data breach",
        "s_time_place": "1.1. Time and place",
        "event_time": "When it happened (per the detector)", "first_seen": "First sign",
        "detected_by": "Detected by", "address": "Address", "host": "Server",
        "paths": "Files and folders affected",
        "s_act": "1.2. The act", "changes": "Changes recorded",
        "s_parties": "1.3. Organisations and individuals involved",
        "controller": "Data controller and processor", "suspects": "Suspected processes and users",
        "logged_in": "Users logged in when evidence was collected", "handlers": "Handled by",
        "recipients": "Notified authorities",
        "recipients_v": "Ministry of Public Security (Department of Cyber Security and High-Tech "
                        "Crime Prevention, A05); the commune police",
        "s_data": "1.4. Types and amount of personal data",
        "list": "List", "records": "Records", "fields": "Types of data (fields)",
        "source": "Counted from", "total": "Total personal-data records",
        "no_personal": "No personal data (voter list) identified among the affected files.",
        "voters": "voters",
        "src_snapshot": "pinned snapshot {id}", "src_live": "the live file",
        "s_contact": "2. Data-protection contact",
        "contact_name": "Name", "contact_title": "Title", "contact_phone": "Phone",
        "contact_email": "E-mail",
        "s_consequences": "3. Possible consequences and damage",
        "s_measures": "4. Measures taken and planned",
        "taken": "Taken", "planned": "Planned",
        "s_deadline": "5. The 72-hour deadline and notification status",
        "deadline": "Notification deadline (72 hours after detection)",
        "status": "Notification status",
        "st_notified": "Notified at {at} (confirmed by {by})",
        "st_notified_late": "Notified at {at} (confirmed by {by}), LATE",
        "st_pending": "Not yet notified — {left} left",
        "st_overdue": "OVERDUE — not notified, {late} past the deadline",
        "delay_reason": "Reason for the late notification (Article 23(2))",
        "hours": "{h} h {m} min",
        "s_detection": "6. Detection and analysis",
        "source_kind": "Detection source", "score": "Score", "diff": "What changed",
        "evidence_count": "Evidence items collected",
        "s_containment": "7. Containment",
        "pinned": "Pre-incident snapshots pinned", "to_contain": "Time to containment",
        "none": "None", "not_contained": "No containment recorded",
        "s_recovery": "8. Recovery",
        "s_drills": "Recovery and drill results",
        "restores": "Restores during the incident", "drills": "Latest drills",
        "recovered": "Recovered at",
        "target": "Target", "time": "Time", "snapshot": "Snapshot",
        "result": "Result", "files": "Files checked", "rto": "RTO (s)",
        "pass": "PASSED", "fail": "FAILED",
        "s_lessons": "9. Lessons learned",
        "root_cause": "Root cause", "went_well": "What worked", "improve": "What to improve",
        "s_timeline": "10. Timeline", "what": "What", "detail": "Detail",
        "s_evidence": "11. Evidence and chain of custody",
        "seq": "No.", "name": "Name", "size": "Size (bytes)",
        "custody_note": "Each item is hashed (SHA-256) into the chain-of-custody record "
                        "(evidence/custody.jsonl); each line carries the hash of the line "
                        "before it.",
        "s_audit": "12. Audit log excerpt",
        "audit_range": "Records included", "audit_cps": "Signed checkpoints (Ed25519)",
        "audit_key": "The office's Ed25519 key", "audit_check": "Checked when the bundle was made",
        "audit_none": "No audit log excerpt could be made",
        "s_signatures": "13. Signatures",
        "preparer": "Prepared by", "approver": "Approved by (office leadership)",
        "sign_hint": "(signature and full name)", "stamp_hint": "(signature and official stamp)",
        "digital": "Digital signature",
        "signed_stmt": "The evidence bundle carrying this report ({bundle}) is signed with a "
                       "detached OpenPGP signature ({sig}) by the office GPG key, fingerprint "
                       "{fpr}. Rely on this report only after checking that signature (see "
                       "README.txt).",
        "encrypted_stmt": "The bundle is encrypted to the keys: {fprs}.",
        "unsigned_stmt": "This report is NOT digitally signed: it is a draft and has no value "
                         "as evidence.",
        "yes": "yes", "no": "no", "unknown": "unknown", "not_declared": "not declared",
        "ok": "succeeded", "failed": "failed",
    },
}

ACTS: dict[str, dict[str, str]] = {
    "vi": {
        "integrity.unauthorized_change": "Tệp được bảo vệ bị thay đổi ngoài khung giờ cho phép "
            "và ngoài thời gian bảo trì đã khai báo (thay đổi trái phép).",
        "ransomware.suspected": "Nghi ngờ mã độc tống tiền: nhiều tệp bị ghi đè bằng nội dung "
            "đã mã hóa.",
        "canary.touched": "Tệp mồi (canary) trong thư mục dữ liệu bị mở hoặc sửa: dấu hiệu "
            "truy cập trái phép.",
        "audit.tampered": "Nhật ký kiểm toán có dấu hiệu bị sửa, xóa hoặc cắt bớt.",
        "logs.tampered": "Nhật ký hệ thống của máy chủ có dấu hiệu bị sửa hoặc xóa.",
        "backup.failed": "Sao lưu dữ liệu thất bại nhiều lần.",
        "target.unreachable": "Không kết nối được nơi lưu bản sao lưu.",
        "": "Sự kiện {kind}.",
    },
    "en": {
        "integrity.unauthorized_change": "A protected file was changed outside its permitted "
            "windows and outside any declared maintenance window (unauthorised change).",
        "ransomware.suspected": "Suspected ransomware: files overwritten with encrypted "
            "content.",
        "canary.touched": "A decoy (canary) file in the data folder was opened or changed: a "
            "sign of unauthorised access.",
        "audit.tampered": "The audit log shows signs of being edited, deleted or cut off.",
        "logs.tampered": "The server's system logs show signs of being edited or deleted.",
        "backup.failed": "Backups failed repeatedly.",
        "target.unreachable": "A backup target could not be reached.",
        "": "Event {kind}.",
    },
}

CHANGE_WORDS = {"vi": {"modified": "bị sửa", "added": "được thêm", "deleted": "bị xóa",
                       "renamed": "bị đổi tên", "meta": "đổi thuộc tính"},
                "en": {"modified": "modified", "added": "added", "deleted": "deleted",
                       "renamed": "renamed", "meta": "attributes changed"}}

CONSEQUENCES: dict[str, dict[str, list[str]]] = {
    "vi": {
        "personal": [
            "Thông tin cá nhân của cử tri có thể bị lộ, bị sao chép hoặc bị sử dụng trái phép.",
            "Danh sách cử tri bị sai lệch (thêm, bớt, sửa) có thể làm ảnh hưởng quyền bầu cử "
            "của cử tri.",
        ],
        "ransomware.suspected": ["Dữ liệu bị mã hóa không sử dụng được cho đến khi khôi phục; "
                                 "công tác bầu cử có thể bị gián đoạn."],
        "audit.tampered": ["Mất khả năng truy vết các thao tác trên máy chủ."],
        "logs.tampered": ["Mất khả năng truy vết các thao tác trên máy chủ."],
        "": ["Tính toàn vẹn, sẵn sàng của dữ liệu bầu cử và uy tín của cơ quan có thể bị ảnh "
             "hưởng."],
    },
    "en": {
        "personal": [
            "Voters' personal data may be disclosed, copied or misused.",
            "A voter list that was altered (records added, removed or changed) may affect "
            "voters' right to vote.",
        ],
        "ransomware.suspected": ["Encrypted data cannot be used until it is restored; the "
                                 "election work may be interrupted."],
        "audit.tampered": ["The ability to trace what was done on the server is lost."],
        "logs.tampered": ["The ability to trace what was done on the server is lost."],
        "": ["The integrity and availability of the election data, and the office's "
             "reputation, may be affected."],
    },
}

ACTION_WORDS: dict[str, dict[str, str]] = {
    "vi": {"snapshot": "Ghim bản sao lưu trước sự cố và sao lưu bổ sung",
           "freeze": "Ngăn chặn: dừng tiến trình ghi, khóa thư mục dữ liệu",
           "unfreeze": "Gỡ phong tỏa sau khi xem xét",
           "collect_evidence": "Thu thập chứng cứ theo thứ tự dễ mất (RFC 3227), lập biên bản "
                               "chuỗi lưu giữ",
           "notify": "Gửi thông báo", "report": "Lập báo cáo tóm tắt",
           "upload": "Chuyển chứng cứ lên máy chủ lưu trữ", "command": "Chạy lệnh xử lý",
           "restore": "Khôi phục dữ liệu từ bản sao lưu, kiểm tra từng tệp",
           "drill": "Diễn tập khôi phục",
           "incident.acknowledged": "Tiếp nhận sự cố", "incident.approved": "Phê duyệt bước",
           "incident.rejected": "Từ chối bước", "incident.closed": "Đóng sự cố",
           "report.incident": "Lập hồ sơ chứng cứ có chữ ký số"},
    "en": {"snapshot": "Pin the pre-incident snapshot and back up again",
           "freeze": "Containment: stop the writing processes, lock the data folders",
           "unfreeze": "Lift the containment after review",
           "collect_evidence": "Collect evidence in order of volatility (RFC 3227), record "
                               "the chain of custody",
           "notify": "Send notifications", "report": "Write the summary report",
           "upload": "Upload the evidence", "command": "Run a response command",
           "restore": "Restore data from the backup, verifying every file",
           "drill": "Recovery drill",
           "incident.acknowledged": "Incident acknowledged", "incident.approved": "Step approved",
           "incident.rejected": "Step rejected", "incident.closed": "Incident closed",
           "report.incident": "Signed evidence bundle made"},
}

PLANNED: dict[str, dict[str, str]] = {
    "vi": {"waiting": "Chờ phê duyệt: {prompt} (bước {step}, hạn {expires})",
           "compare": "Đối chiếu dữ liệu bị ảnh hưởng với bản sao lưu đã ghim trước sự cố; "
                      "khôi phục nếu sai lệch.",
           "access": "Rà soát tài khoản và quyền truy cập máy chủ; đổi mật khẩu nếu cần.",
           "notify": "Thông báo vi phạm tới Cục A05, Bộ Công an trong thời hạn 72 giờ.",
           "keep": "Giữ nguyên chứng cứ và các bản sao lưu đã ghim cho đến khi đóng sự cố."},
    "en": {"waiting": "Waiting for approval: {prompt} (step {step}, until {expires})",
           "compare": "Compare the affected data with the pinned pre-incident snapshot; "
                      "restore it if it differs.",
           "access": "Review accounts and access to the server; change passwords where needed.",
           "notify": "Notify the breach to A05, Ministry of Public Security, within 72 hours.",
           "keep": "Keep the evidence and the pinned snapshots until the incident is closed."},
}

LESSONS: dict[str, dict[str, str]] = {
    "vi": {"integrity.unauthorized_change": "Khai báo bảo trì (secops maintenance start) "
                                            "trước khi sửa tệp được bảo vệ.",
           "ransomware.suspected": "Kiểm tra nguồn lây nhiễm; hạn chế quyền ghi vào thư mục "
                                   "dữ liệu bầu cử.",
           "": "Rà soát kịch bản xử lý và cấu hình giám sát sau sự cố."},
    "en": {"integrity.unauthorized_change": "Declare maintenance (secops maintenance start) "
                                            "before editing protected files.",
           "ransomware.suspected": "Find how the malware got in; restrict write access to "
                                   "the election data folders.",
           "": "Review the playbooks and the monitoring configuration after the incident."},
}


# --- time ------------------------------------------------------------------------------------

def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def local(text: str | None) -> str:
    """ISO UTC -> what a person reads: local time with its offset."""
    ts = epoch(text)
    if ts is None:
        return text or ""
    dt = datetime.fromtimestamp(ts).astimezone()
    off = dt.strftime("%z")
    return f"{dt:%d/%m/%Y %H:%M:%S} (UTC{off[:3]}:{off[3:]})"


def span(seconds: float, lang: str) -> str:
    minutes = int(abs(seconds) // 60)
    return WORDS[lang]["hours"].format(h=minutes // 60, m=minutes % 60)


# --- gathering (I/O) -------------------------------------------------------------------------

def build(cfg: Config, store: IncidentStore, incident_id: str, lang: str, *,
          now: float | None = None, signer: str | None = None,
          audit: dict[str, Any] | None = None, bundle_name: str | None = None,
          encrypted_to: list[str] | None = None) -> dict[str, Any]:
    """Every field of the report as plain data (raises UsageError for an unknown id)."""
    facts = gather(cfg, store, incident_id)
    return compose(facts, lang, now=time.time() if now is None else now, signer=signer,
                   audit=audit, bundle_name=bundle_name, encrypted_to=encrypted_to or [])


def gather(cfg: Config, store: IncidentStore, incident_id: str) -> dict[str, Any]:
    from secops.playbooks.summary import summary

    doc = summary(store, incident_id)
    inc = store.get(incident_id)
    state_dir = Path(cfg.paths.state_dir)
    o = cfg.office
    return {
        "summary": doc, "opened_ts": inc.opened, "updated_ts": inc.updated,
        "office": {"name": o.name, "code": o.code, "address": o.address,
                   "contact_name": o.contact_name, "contact_title": o.contact_title,
                   "contact_phone": o.contact_phone, "contact_email": o.contact_email},
        "host": socket.gethostname(),
        "acts": incident_acts(state_dir, incident_id),
        "drills": latest_drills(state_dir / "state.db"),
        "voter_lists": voter_lists(cfg, doc),
        "logged_in": _logged_in(store.folder(incident_id) / "evidence" / "users.json"),
    }


def incident_acts(state_dir: Path, incident_id: str) -> list[dict[str, Any]]:
    """The audit records that name the incident (best effort: [] when unreadable)."""
    from secops.audit.log import segments

    needle = incident_id.encode()
    acts: list[dict[str, Any]] = []
    for path in segments(state_dir / "audit"):
        try:
            with path.open("rb") as f:
                for line in f:
                    if needle not in line:
                        continue
                    with contextlib.suppress(ValueError):
                        rec = json.loads(line)
                        data = rec.get("data") if isinstance(rec, dict) else None
                        if isinstance(data, dict) and data.get("incident") == incident_id:
                            acts.append(rec)
        except OSError:
            continue
    return acts


def latest_drills(db_path: Path) -> list[dict[str, Any]]:
    from secops.restore.history import recent

    latest: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(OSError, sqlite3.Error):
        for row in recent(db_path, ""):
            latest[str(row["target"])] = row
    return [latest[t] for t in sorted(latest)]


def affected_paths(event: dict[str, Any]) -> list[str]:
    details = event.get("details") or {}
    paths = details.get("paths") or []
    found = [str(p) for p in (paths if isinstance(paths, list) else [paths])]
    for c in details.get("changes") or []:
        if isinstance(c, dict) and c.get("path"):
            found.append(str(c["path"]))
    return list(dict.fromkeys(found))


def is_voter_list(path: str) -> bool:
    return VOTER_LISTS in Path(path).parts[:-1] and path.lower().endswith(".csv")


def count_records(data: bytes) -> tuple[int, list[str]] | None:
    """(records, field names) of a CSV list: the first row is the header unless it starts
    with a number. None when it is not readable as UTF-8 CSV."""
    try:
        rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig")))
                if any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error):
        return None
    if not rows:
        return 0, []
    header = rows[0] if not rows[0][0].strip().isdigit() else []
    return len(rows) - (1 if header else 0), [h.strip() for h in header]


def voter_lists(cfg: Config, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each affected voter list with its records counted: from the pinned pre-incident
    snapshot when it can be read, else the live file, else unknown (None)."""
    paths = [p for p in affected_paths(doc["event"]) if is_voter_list(p)]
    if not paths:
        return []
    found = _from_snapshots(cfg, doc["snapshots"], paths)
    out = []
    for p in paths:
        entry: dict[str, Any] = {"path": p, "records": None, "fields": [], "source": None,
                                 "snapshot": None}
        got = found.get(p)
        if got is None:
            data = _read_regular(Path(p))
            got = (data, None) if data is not None else None
        counted = count_records(got[0]) if got is not None else None
        if got is not None and counted is not None:
            entry.update(records=counted[0], fields=counted[1],
                         source="snapshot" if got[1] else "live", snapshot=got[1])
        out.append(entry)
    return out


def _read_regular(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > CSV_MAX_BYTES:
            return None
        return f.read(CSV_MAX_BYTES)


def _from_snapshots(cfg: Config, snapshots: list[dict[str, Any]], paths: list[str]
                    ) -> dict[str, tuple[bytes, str | None]]:
    """The affected files as they were in a pinned snapshot (restic restore --include into
    a private scratch folder); {} when no snapshot can be read."""
    import tempfile

    from secops.backup.engine import Engine
    from secops.backup.restic import Restic
    from secops.clock import SystemClock
    from secops.errors import SecopsError
    from secops.files import ensure_private_dir

    names = {t.name: t for t in cfg.backup.targets}
    usable = [s for s in snapshots if s.get("target") in names]
    usable.sort(key=lambda s: not names[s["target"]].repository.startswith(("/", "local:")))
    engine = Engine(cfg, Restic(cfg.backup.restic_binary, timeout=120), SystemClock())
    scratch = Path(cfg.paths.state_dir) / "report-scratch"
    for snap in usable:
        found: dict[str, tuple[bytes, str | None]] = {}
        try:
            ensure_private_dir(scratch)
            with tempfile.TemporaryDirectory(dir=scratch) as tmp:
                repo = engine.open(names[snap["target"]])
                engine.restic.restore(repo, str(snap["snapshot_id"]), Path(tmp),
                                      includes=paths)
                for p in paths:
                    data = _read_regular(Path(tmp) / p.lstrip("/"))
                    if data is not None:
                        found[p] = (data, str(snap["snapshot_id"])[:8])
        except (SecopsError, OSError):
            continue
        finally:
            with contextlib.suppress(OSError):
                scratch.rmdir()  # only when empty
        if found:
            return found
    return {}


def _logged_in(path: Path) -> list[str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return sorted({f"{u['user']}@{u.get('line') or '?'}" + (f" ({u['host']})" if
                                                                u.get("host") else "")
                       for u in doc.get("users", [])})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


# --- composing (pure) ------------------------------------------------------------------------

def compose(facts: dict[str, Any], lang: str, *, now: float, signer: str | None = None,
            audit: dict[str, Any] | None = None, bundle_name: str | None = None,
            encrypted_to: list[str] | None = None) -> dict[str, Any]:
    lang = "en" if lang == "en" else "vi"
    s = facts["summary"]
    event = s["event"] or {}
    details = event.get("details") or {}
    lists = facts["voter_lists"]
    counted = [v["records"] for v in lists if v["records"] is not None]
    total = sum(counted) if lists and len(counted) == len(lists) else None
    return {
        "format": FORMAT, "lang": lang, "generated": iso(now),
        "incident": {k: s[k] for k in ("id", "kind", "severity", "state", "opened",
                                       "playbook")} | {"acked_by": s["acked_by"]},
        "office": facts["office"], "host": facts["host"],
        "breach": {
            "event_time": event.get("time"), "first_seen": details.get("first_seen"),
            "source": event.get("source"), "paths": affected_paths(event),
            "act": ACTS[lang].get(s["kind"], ACTS[lang][""]).format(kind=s["kind"]),
            "changes": [{"kind": c.get("kind"), "path": c.get("path")}
                        for c in details.get("changes") or [] if isinstance(c, dict)],
            "parties": _parties(facts, details),
            "personal_data": {"lists": lists, "total_records": total,
                              "personal": bool(lists)},
            "consequences": _consequences(s["kind"], bool(lists), lang),
        },
        "measures": {"taken": _taken(facts["acts"], s["timeline"]),
                     "planned": _planned(s["approvals"], facts, lang, now)},
        "deadline": _deadline(facts["opened_ts"], s["approvals"], now),
        "detection": {"score": details.get("score"), "diffs": _diffs(details),
                      "evidence_count": len(s["evidence"])},
        "containment": _containment(facts, s),
        "recovery": {"restores": _restores(s["timeline"]), "drills": facts["drills"],
                     "recovered_at": _state_time(s["timeline"], "recovered")},
        "lessons": [LESSONS[lang].get(s["kind"], LESSONS[lang][""])],
        "timeline": [_timeline_row(t) for t in s["timeline"]],
        "evidence": s["evidence"], "snapshots": s["snapshots"],
        "audit": audit,
        "signature": {"signed": signer is not None, "gpg_fingerprint": signer,
                      "bundle": bundle_name,
                      "file": f"{bundle_name}.asc" if bundle_name else None,
                      "encrypted_to": list(encrypted_to or [])},
    }


def _parties(facts: dict[str, Any], details: dict[str, Any]) -> dict[str, list[str]]:
    suspects = []
    for p in details.get("processes") or []:
        if isinstance(p, dict):
            bits = [str(p.get(k)) for k in ("name", "comm", "exe") if p.get(k)]
            who = p.get("user") or (f"uid {p['uid']}" if p.get("uid") is not None else None)
            suspects.append(f"PID {p.get('pid')} {' '.join(bits[:2])}".strip()
                            + (f" ({who})" if who else ""))
    if details.get("user"):
        suspects.append(str(details["user"]))
    s = facts["summary"]
    handlers = [s["acked_by"]] if s["acked_by"] else []
    handlers += [a["by"] for a in s["approvals"] if a.get("by")]
    handlers += [str(a.get("actor")) for a in facts["acts"]
                 if str(a.get("actor", "")).startswith("cli:")]
    return {"suspects": suspects, "logged_in": facts["logged_in"],
            "handlers": list(dict.fromkeys(handlers))}


def _consequences(kind: str, personal: bool, lang: str) -> list[str]:
    c = CONSEQUENCES[lang]
    return (c["personal"] if personal else []) + c.get(kind, c[""])


def _taken(acts: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in acts:
        data = a.get("data") or {}
        if a.get("kind") == "playbook.step.finished":
            out.append({"time": a.get("time"), "what": data.get("action"),
                        "step": data.get("step"), "ok": bool(data.get("ok")),
                        "error": data.get("error")})
        elif a.get("kind") in ("incident.acknowledged", "incident.approved",
                               "incident.rejected", "incident.closed", "report.incident"):
            out.append({"time": a.get("time"), "what": a.get("kind"), "step": data.get("step"),
                        "ok": True, "error": None})
    if not out:  # no audit log to read: the timeline's steps, without their action names
        out = [{"time": t["time"], "what": None, "step": t.get("step"), "ok": t.get("ok"),
                "error": t.get("error")} for t in timeline
               if t["what"] == "step" and t.get("type") == "action"]
    return out


def _planned(approvals: list[dict[str, Any]], facts: dict[str, Any], lang: str, now: float
             ) -> list[str]:
    p = PLANNED[lang]
    out = [p["waiting"].format(prompt=a["prompt"], step=a["step"], expires=local(a["expires"]))
           for a in approvals if a["state"] == "waiting"]
    out += [p["compare"], p["access"]]
    if facts["voter_lists"] and _deadline(facts["opened_ts"], approvals, now)["status"] in (
            "pending", "overdue"):
        out.append(p["notify"])
    out.append(p["keep"])
    return out


def _deadline(opened: float, approvals: list[dict[str, Any]], now: float) -> dict[str, Any]:
    deadline = opened + DEADLINE_S
    done = [a for a in approvals if a["step"] in NOTIFIED_STEPS and a["state"] == "approved"]
    doc: dict[str, Any] = {"deadline": iso(deadline), "notified_at": None, "by": None,
                           "seconds_left": None}
    if done:
        first = min(done, key=lambda a: a["decided"] or "")
        at = epoch(first["decided"]) or now
        doc.update(status="notified" if at <= deadline else "notified-late",
                   notified_at=first["decided"], by=first["by"])
    else:
        doc.update(status="pending" if now < deadline else "overdue",
                   seconds_left=deadline - now)
    return doc


def _diffs(details: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for c in details.get("changes") or []:
        if isinstance(c, dict) and isinstance(c.get("diff"), str) and c["diff"]:
            lines = c["diff"].splitlines()
            text = "\n".join(lines[:DIFF_MAX_LINES]) + ("\n…" if len(lines) > DIFF_MAX_LINES
                                                        else "")
            out.append({"path": str(c.get("path")), "diff": text})
    return out


def _containment(facts: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    contained = _state_time(s["timeline"], "contained")
    c_ts = epoch(contained)
    return {"contained_at": contained,
            "seconds_to_contain": c_ts - facts["opened_ts"] if c_ts is not None else None,
            "steps": [t for t in _taken(facts["acts"], s["timeline"])
                      if t["what"] in ("freeze", "snapshot")],
            "snapshots": s["snapshots"]}


def _state_time(timeline: list[dict[str, Any]], state: str) -> str | None:
    return next((t["time"] for t in timeline if t["what"] == "state" and t.get("to") == state),
                None)


def _restores(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for t in timeline:
        o = t.get("outputs") if t["what"] == "step" else None
        if isinstance(o, dict) and "files_checked" in o:
            out.append({"time": t["time"], "step": t.get("step"), "ok": t.get("ok"),
                        "target": o.get("target"), "snapshot": o.get("snapshot"),
                        "files_checked": o.get("files_checked")})
        elif isinstance(o, dict) and o and all(isinstance(v, dict) and "rto_s" in v
                                                for v in o.values()):
            out += [{"time": t["time"], "step": t.get("step"), "ok": v.get("ok"),
                     "target": name, "snapshot": v.get("snapshot_id"),
                     "files_checked": v.get("files_checked")} for name, v in o.items()]
    return out


def _timeline_row(t: dict[str, Any]) -> dict[str, Any]:
    if t["what"] == "step":
        detail = f"{t.get('step')}: " + ("ok" if t.get("ok") else f"FAILED {t.get('error')}")
    elif t["what"] == "state":
        detail = f"{t.get('from')} → {t.get('to')} ({t.get('by')})"
    elif t["what"].startswith("approval."):
        detail = f"{t.get('step')}" + (f" ({t['by']})" if t.get("by") else "")
    elif t["what"] in ("incident.opened", "event.joined"):
        ev = t.get("event") or {}
        detail = f"{ev.get('kind')} ({ev.get('source')}, {ev.get('severity')})"
    else:
        detail = ", ".join(f"{k}={v}" for k, v in t.items() if k not in ("time", "what")
                           and isinstance(v, str | int | float))
    return {"time": t["time"], "what": t["what"], "detail": detail}


# --- rendering (pure) ------------------------------------------------------------------------

def sections(doc: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """The report as sections (title, fields, items, table, pre), shared by HTML and MD."""
    w = WORDS["en" if lang == "en" else "vi"]
    b, o = doc["breach"], doc["office"]
    inc = doc["incident"]
    nd = w["not_declared"]
    out: list[dict[str, Any]] = [
        _sec(w["general"], 2, fields=[
            (w["incident"], inc["id"]), (w["office"], f"{o['name']} ({o['code']})"),
            (w["kind"], inc["kind"]), (w["severity"], inc["severity"]),
            (w["state"], inc["state"]), (w["playbook"], inc["playbook"]),
            (w["opened"], local(inc["opened"])), (w["generated"], local(doc["generated"]))]),
        _sec(w["s_breach"], 2),
        _sec(w["s_time_place"], 3, fields=[
            (w["event_time"], local(b["event_time"]) or w["unknown"]),
            (w["first_seen"], local(b["first_seen"]) or w["unknown"]),
            (w["opened"], local(inc["opened"])),
            (w["detected_by"], b["source"] or w["unknown"]),
            (w["office"], o["name"]), (w["address"], o["address"] or nd),
            (w["host"], doc["host"]),
            (w["paths"], "; ".join(b["paths"]) or w["unknown"])]),
        _sec(w["s_act"], 3, items=[b["act"]] + [
            f"{w['changes']}: {c['path']} {CHANGE_WORDS[doc['lang']].get(c['kind'], c['kind'])}"
            for c in b["changes"]]),
        _sec(w["s_parties"], 3, fields=[
            (w["controller"], f"{o['name']}, {o['address'] or nd}"),
            (w["suspects"], "; ".join(b["parties"]["suspects"]) or w["unknown"]),
            (w["logged_in"], "; ".join(b["parties"]["logged_in"]) or w["none"]),
            (w["handlers"], "; ".join(b["parties"]["handlers"]) or w["none"]),
            (w["recipients"], w["recipients_v"])]),
        _data_section(doc, w),
        _sec(w["s_contact"], 2, fields=[
            (w["contact_name"], o["contact_name"] or nd),
            (w["contact_title"], o["contact_title"] or nd),
            (w["contact_phone"], o["contact_phone"] or nd),
            (w["contact_email"], o["contact_email"] or nd)]),
        _sec(w["s_consequences"], 2, items=b["consequences"]),
        *_measures_section(doc, w, lang),
        _deadline_section(doc, w, lang),
        _detection_section(doc, w),
        _containment_section(doc, w, lang),
        *_recovery_sections(doc, w),
        _sec(w["s_lessons"], 2, items=doc["lessons"], blanks=[
            w["root_cause"], w["went_well"], w["improve"]]),
        _sec(w["s_timeline"], 2, table=([w["time"], w["what"], w["detail"]], [
            [local(t["time"]), t["what"], t["detail"]] for t in doc["timeline"]])),
        _sec(w["s_evidence"], 2, items=[w["custody_note"]], table=(
            [w["seq"], w["name"], w["size"], "SHA-256"],
            [[str(e["seq"]), e["name"], str(e["size"]), e["sha256"]]
             for e in doc["evidence"]])),
        _audit_section(doc, w),
    ]
    return out


def _sec(title: str, level: int, *, fields: list[tuple[str, str]] | None = None,
         items: list[str] | None = None, table: tuple[list[str], list[list[str]]] | None = None,
         pre: list[tuple[str, str]] | None = None, blanks: list[str] | None = None,
         css: str = "") -> dict[str, Any]:
    return {"title": title, "level": level, "fields": fields or [], "items": items or [],
            "head": table[0] if table and table[1] else [],
            "rows": table[1] if table else [], "pre": pre or [], "blanks": blanks or [],
            "css": css}


def _data_section(doc: dict[str, Any], w: dict[str, str]) -> dict[str, Any]:
    pd = doc["breach"]["personal_data"]
    if not pd["lists"]:
        return _sec(w["s_data"], 3, items=[w["no_personal"]])
    rows = []
    for v in pd["lists"]:
        src = w["unknown"] if v["source"] is None else (
            w["src_snapshot"].format(id=v["snapshot"]) if v["source"] == "snapshot"
            else w["src_live"])
        rows.append([v["path"], w["unknown"] if v["records"] is None else str(v["records"]),
                     ", ".join(v["fields"]) or w["unknown"], src])
    total = pd["total_records"]
    return _sec(w["s_data"], 3, table=([w["list"], w["records"], w["fields"], w["source"]],
                                       rows),
                fields=[(w["total"], f"{total} {w['voters']}" if total is not None
                         else w["unknown"])])


def _measures_section(doc: dict[str, Any], w: dict[str, str], lang: str
                      ) -> list[dict[str, Any]]:
    words = ACTION_WORDS[lang]
    taken = []
    for t in doc["measures"]["taken"]:
        what = words.get(t["what"] or "", t["what"] or "")
        step = f" [{t['step']}]" if t["step"] else ""
        result = w["ok"] if t["ok"] else f"{w['failed']}: {t['error']}"
        taken.append(f"{local(t['time'])} — {what}{step}: {result}")
    return [_sec(w["s_measures"], 2),
            _sec(f"4.1. {w['taken']}", 3, items=taken or [w["none"]]),
            _sec(f"4.2. {w['planned']}", 3, items=doc["measures"]["planned"])]


def _deadline_section(doc: dict[str, Any], w: dict[str, str], lang: str) -> dict[str, Any]:
    d = doc["deadline"]
    status = d["status"]
    if status in ("notified", "notified-late"):
        key = "st_notified" if status == "notified" else "st_notified_late"
        text = w[key].format(at=local(d["notified_at"]), by=d["by"] or w["unknown"])
    elif status == "pending":
        text = w["st_pending"].format(left=span(d["seconds_left"], lang))
    else:
        text = w["st_overdue"].format(late=span(d["seconds_left"], lang))
    fields = [(w["opened"], local(doc["incident"]["opened"])),
              (w["deadline"], local(d["deadline"])), (w["status"], text)]
    blanks = [w["delay_reason"]] if status in ("overdue", "notified-late") else []
    return _sec(w["s_deadline"], 2, fields=fields, blanks=blanks,
                css="overdue" if status == "overdue" else "")


def _detection_section(doc: dict[str, Any], w: dict[str, str]) -> dict[str, Any]:
    inc, det = doc["incident"], doc["detection"]
    fields = [(w["kind"], inc["kind"]), (w["source_kind"], doc["breach"]["source"] or
                                         w["unknown"]),
              (w["severity"], inc["severity"]),
              (w["event_time"], local(doc["breach"]["event_time"]) or w["unknown"]),
              (w["evidence_count"], str(det["evidence_count"]))]
    if det["score"] is not None:
        fields.append((w["score"], str(det["score"])))
    return _sec(w["s_detection"], 2, fields=fields, items=[doc["breach"]["act"]],
                pre=[(f"{w['diff']}: {d['path']}", d["diff"]) for d in det["diffs"]])


def _containment_section(doc: dict[str, Any], w: dict[str, str], lang: str) -> dict[str, Any]:
    c = doc["containment"]
    words = ACTION_WORDS[lang]
    items = [f"{local(t['time'])} — {words.get(t['what'], t['what'])} [{t['step']}]: "
             + (w["ok"] if t["ok"] else f"{w['failed']}: {t['error']}") for t in c["steps"]]
    took = span(c["seconds_to_contain"], lang) if c["seconds_to_contain"] is not None \
        else w["not_contained"]
    pinned = "; ".join(f"{s['target']}: {s['snapshot_id'][:8]}" for s in c["snapshots"])
    return _sec(w["s_containment"], 2, items=items,
                fields=[(w["pinned"], pinned or w["none"]), (w["to_contain"], took)])


def _recovery_sections(doc: dict[str, Any], w: dict[str, str]) -> list[dict[str, Any]]:
    r = doc["recovery"]
    head = [w["time"], w["target"], w["snapshot"], w["result"], w["files"]]
    drills = [[local(d["time"]), d["target"], str(d["snapshot_id"])[:8],
               w["pass"] if d["ok"] else w["fail"], str(d["files_checked"]),
               f"{d['rto_s']:.1f}"] for d in r["drills"]]
    restore_items = [f"{local(x['time'])} — {x['target']} {str(x['snapshot'] or '')[:8]}: "
                     f"{w['pass'] if x['ok'] else w['fail']}, {w['files']}: "
                     f"{x['files_checked']}" for x in r["restores"]]
    return [
        _sec(w["s_recovery"], 2, fields=[(w["state"], doc["incident"]["state"])] + (
            [(w["recovered"], local(r["recovered_at"]))] if r["recovered_at"] else [])),
        _sec(f"8.1. {w['s_drills']}", 3,
             items=[f"{w['restores']}: " + (w["none"] if not restore_items else ""),
                    *restore_items, f"{w['drills']}:" + ("" if drills else f" {w['none']}")],
             table=([*head, w["rto"]], drills)),
    ]


def _audit_section(doc: dict[str, Any], w: dict[str, str]) -> dict[str, Any]:
    a = doc["audit"]
    if not a:
        return _sec(w["s_audit"], 2, items=[w["audit_none"]])
    check = w["ok"] if a.get("ok") else f"{w['failed']}: {a.get('problem')}"
    return _sec(w["s_audit"], 2, fields=[
        (w["audit_range"], f"{a['start_seq']} - {a['end_seq']} ({a['records']})"),
        (w["audit_cps"], ", ".join(str(s) for s in a["checkpoint_seqs"])),
        (w["audit_key"], str(a.get("key_id"))), (w["audit_check"], check)])


def signature_lines(doc: dict[str, Any], lang: str) -> list[str]:
    w = WORDS["en" if lang == "en" else "vi"]
    sig = doc["signature"]
    if not sig["signed"]:
        return [w["unsigned_stmt"]]
    lines = [w["signed_stmt"].format(bundle=sig["bundle"], sig=sig["file"],
                                     fpr=sig["gpg_fingerprint"])]
    if sig["encrypted_to"]:
        lines.append(w["encrypted_stmt"].format(fprs=", ".join(sig["encrypted_to"])))
    return lines


def date_line(doc: dict[str, Any], lang: str) -> str:
    ts = epoch(doc["generated"]) or 0.0
    dt = datetime.fromtimestamp(ts).astimezone()
    return WORDS[lang]["date_line"].format(place=doc["office"]["name"], d=dt.day, m=dt.month,
                                           y=dt.year)


def render_html(doc: dict[str, Any], lang: str) -> str:
    """The self-contained, printable page (A4), UTF-8, no external resource."""
    import jinja2

    from secops.reports.pdf import FONTS

    lang = "en" if lang == "en" else "vi"
    env = jinja2.Environment(loader=jinja2.PackageLoader("secops.reports", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("incident.html.j2").render(
        d=doc, w=WORDS[lang], lang=lang, sections=sections(doc, lang), fonts=FONTS,
        signature=signature_lines(doc, lang), date_line=date_line(doc, lang))


def render_md(doc: dict[str, Any], lang: str) -> str:
    lang = "en" if lang == "en" else "vi"
    w = WORDS[lang]
    out = [w["nation"], w["motto"], "", f"# {w['title']}", "", w["subtitle"], "",
           date_line(doc, lang), ""]
    if not doc["signature"]["signed"]:
        out += [f"**{w['draft']}**", ""]
    for s in sections(doc, lang):
        out += ["#" * s["level"] + " " + s["title"], ""]
        out += [f"- **{k}**: {_md(v)}" for k, v in s["fields"]]
        out += [f"- {_md(i)}" for i in s["items"]]
        if s["fields"] or s["items"]:
            out.append("")
        if s["rows"]:
            out += ["| " + " | ".join(s["head"]) + " |", "|" + "---|" * len(s["head"])]
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in s["rows"]]
            out.append("")
        for label, text in s["pre"]:
            out += [f"{label}:", "", "```", text, "```", ""]
        out += [f"- **{b}**: ____________________________________________" for b in s["blanks"]]
        if s["blanks"]:
            out.append("")
    out += [f"## {w['s_signatures']}", "",
            f"| {w['preparer']} | {w['approver']} |", "|---|---|",
            f"| {w['sign_hint']} | {w['stamp_hint']} |", "| | |", "| | |",
            "| ______________________ | ______________________ |", "",
            f"**{w['digital']}**: " + " ".join(signature_lines(doc, lang)), ""]
    return "\n".join(out)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
