"""The wording of signing and verification, Vietnamese (default) and English (pure)."""

from __future__ import annotations

from secops.reports.i18n import lang_of

_VI: dict[str, str] = {
    "box_title": "Đã ký số bởi",
    "box_office": "Cơ quan",
    "box_signer": "Người ký",
    "box_time": "Thời gian ký",
    "box_serial": "Số hiệu chứng thư",
    "box_level": "Mức chữ ký",
    "level_B-B": "PAdES B-B (không có dấu thời gian)",
    "level_B-T": "PAdES B-T (có dấu thời gian)",
    "level_B-LT": "PAdES B-LT (có dấu thời gian và dữ liệu thu hồi)",
    "level_unknown": "không xác định (chữ ký hỏng)",
    "reason": "Xác nhận báo cáo",
    "check_intact": "Chữ ký nguyên vẹn",
    "check_unchanged": "Tài liệu không bị sửa sau khi ký",
    "check_chain": "Chứng thư số chuỗi tới gốc tin cậy",
    "check_validity": "Chứng thư số còn hiệu lực lúc ký",
    "check_timestamp": "Dấu thời gian",
    "ok": "đạt",
    "failed": "KHÔNG ĐẠT",
    "verified": "chữ ký số hợp lệ",
    "not_verified": "chữ ký số KHÔNG hợp lệ",
    "intact_yes": "chữ ký khớp với nội dung đã ký",
    "intact_no": "nội dung đã ký bị thay đổi hoặc chữ ký hỏng (mã băm không khớp)",
    "intact_malformed": "chữ ký hỏng hoặc bị làm giả: không đọc được phần đã ký hay giá trị "
                        "chữ ký ({why})",
    "unchanged_yes": "chữ ký bao trùm toàn bộ tệp",
    "unchanged_harmless": "sau khi ký chỉ bổ sung dữ liệu xác thực (dấu thời gian, dữ liệu "
                          "thu hồi), không đổi nội dung",
    "unchanged_no": "tệp đã bị bổ sung nội dung sau khi ký ({n} lần cập nhật thêm sau chữ "
                    "ký; {what})",
    "unchanged_metadata": "thông tin tài liệu đã bị ghi lại sau khi ký ({n} lần cập nhật thêm "
                          "sau chữ ký; đã đổi: {fields}): trình đọc PDF hiển thị thông tin này "
                          "ở tiêu đề cửa sổ và thuộc tính tài liệu",
    "unchanged_hidden": "tệp có {n} byte sau phần đã ký không thuộc lần cập nhật hợp lệ nào: "
                        "một số phần mềm đọc PDF vẫn hiển thị chúng (cập nhật bị giấu)",
    "chain_yes": "chuỗi tới gốc tin cậy {root}",
    "chain_none": "không có gốc tin cậy nào để đối chiếu (dùng --trust GOC.pem)",
    "chain_no": "chứng thư của người ký không chuỗi tới gốc tin cậy đã cho ({why})",
    "chain_revoked": "chứng thư của người ký đã bị thu hồi",
    "validity_yes": "hiệu lực từ {nb} đến {na}; lúc ký {when} ({source})",
    "validity_expired": "chứng thư đã HẾT HẠN lúc ký: hết hạn {na}, ký lúc {when} ({source})",
    "validity_early": "chứng thư CHƯA CÓ HIỆU LỰC lúc ký: hiệu lực từ {nb}, ký lúc {when} "
                      "({source})",
    "validity_unproven": "không có dấu thời gian chứng minh lúc ký và chứng thư không còn hiệu "
                         "lực lúc này (hiệu lực từ {nb} đến {na}, nay {now}): không gì chứng "
                         "minh chữ ký được tạo lúc {when} như người ký tự ghi",
    "source_timestamp": "theo dấu thời gian",
    "source_claimed": "theo lời khai của người ký, chưa được chứng thực",
    "timestamp_yes": "dấu thời gian hợp lệ lúc {when}, do {tsa} cấp",
    "timestamp_none": "không có dấu thời gian (PAdES B-B): thời gian ký là do người ký tự ghi",
    "timestamp_bad": "dấu thời gian KHÔNG hợp lệ ({why})",
    "signer": "Người ký",
    "serial": "số hiệu",
    "level": "mức",
    "revinfo_unavailable": "không nhúng được dữ liệu thu hồi chứng thư (CRL/OCSP) vào chữ "
                           "ký: {why}; báo cáo vẫn được ký, ở mức {level}, không kèm dữ liệu "
                           "thu hồi (không phải B-LT)",
    "revinfo_tsa": "không nhúng được dữ liệu thu hồi của chứng thư dịch vụ dấu thời gian: "
                   "{why}; báo cáo được ký ở mức {level}, có dữ liệu thu hồi của người ký "
                   "(không phải B-LT)",
    "revinfo_why_timeout": "{urls} không trả lời trong {seconds} giây",
    "revinfo_why_failed": "không nhận được dữ liệu thu hồi hợp lệ từ {urls} ({detail})",
}

_EN: dict[str, str] = {
    "box_title": "Digitally signed by",
    "box_office": "Office",
    "box_signer": "Signer",
    "box_time": "Signed at",
    "box_serial": "Certificate serial",
    "box_level": "Level",
    "level_B-B": "PAdES B-B (no timestamp)",
    "level_B-T": "PAdES B-T (timestamped)",
    "level_B-LT": "PAdES B-LT (timestamped, revocation data embedded)",
    "level_unknown": "unknown (damaged signature)",
    "reason": "Report approval",
    "check_intact": "Signature intact",
    "check_unchanged": "Unchanged since signing",
    "check_chain": "Certificate chains to a trusted root",
    "check_validity": "Certificate valid at signing time",
    "check_timestamp": "Timestamp",
    "ok": "ok",
    "failed": "FAILED",
    "verified": "digital signature valid",
    "not_verified": "digital signature NOT valid",
    "intact_yes": "the signature matches the signed content",
    "intact_no": "the signed content was changed or the signature is broken (digest mismatch)",
    "intact_malformed": "the signature is damaged or forged: its signed range or its value "
                        "cannot be read ({why})",
    "unchanged_yes": "the signature covers the whole file",
    "unchanged_harmless": "only validation data (timestamps, revocation data) was added after "
                          "signing; the content is unchanged",
    "unchanged_no": "content was added to the file after signing ({n} update(s) after the "
                    "signature; {what})",
    "unchanged_metadata": "the document information was rewritten after signing ({n} "
                          "update(s) after the signature; changed: {fields}): PDF readers "
                          "show it in the window title and the document properties",
    "unchanged_hidden": "the file has {n} bytes after the signed part that belong to no proper "
                        "update: some PDF readers still show them (a hidden update)",
    "chain_yes": "chains to the trusted root {root}",
    "chain_none": "no trust root to check against (pass --trust ROOT.pem)",
    "chain_no": "the signer's certificate does not chain to the given trust roots ({why})",
    "chain_revoked": "the signer's certificate is revoked",
    "validity_yes": "valid from {nb} to {na}; signed at {when} ({source})",
    "validity_expired": "the certificate had EXPIRED at signing time: expired {na}, signed "
                        "at {when} ({source})",
    "validity_early": "the certificate was NOT YET VALID at signing time: valid from {nb}, "
                      "signed at {when} ({source})",
    "validity_unproven": "no timestamp proves when it was signed and the certificate is not "
                         "valid now (valid from {nb} to {na}, now {now}): nothing shows it was "
                         "signed at {when}, as the signer claims",
    "source_timestamp": "per the timestamp",
    "source_claimed": "as the signer claims, not attested",
    "timestamp_yes": "valid timestamp at {when}, issued by {tsa}",
    "timestamp_none": "no timestamp (PAdES B-B): the signing time is the signer's own claim",
    "timestamp_bad": "the timestamp is NOT valid ({why})",
    "signer": "Signer",
    "serial": "serial",
    "level": "level",
    "revinfo_unavailable": "no revocation data (CRL/OCSP) could be embedded in the "
                           "signature: {why}; the report is signed at {level}, without "
                           "revocation data (not B-LT)",
    "revinfo_tsa": "no revocation data of the time-stamping service's certificate could be "
                   "embedded: {why}; the report is signed at {level}, with the signer's "
                   "revocation data (not B-LT)",
    "revinfo_why_timeout": "{urls} did not answer within {seconds} s",
    "revinfo_why_failed": "no valid revocation data came from {urls} ({detail})",
}


def text(lang: str, key: str, **values: object) -> str:
    table = _EN if lang_of(lang) == "en" else _VI
    return table[key].format(**values) if values else table[key]


def same_keys() -> bool:
    """Both languages say everything (a test checks)."""
    return _VI.keys() == _EN.keys()
