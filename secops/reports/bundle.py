"""The incident's evidence bundle: a deterministic ``.tar.gz`` (optionally GPG-encrypted to
the police) with a detached OpenPGP signature by the office key beside it. Its
verification is ``bundle_verify.py``; the audit excerpt it carries, ``excerpt.py``.

Layout (one top folder, the incident id)::

    INC-.../report.html report.md report.pdf report.json   the report (vi or en)
            incident.json timeline.json                    the incident as recorded
            evidence/...  evidence/custody.jsonl            items + chain of custody
            audit/audit-excerpt.jsonl audit/checkpoints.jsonl audit/excerpt.json
            keys/office-ed25519.pub keys/audit-root.pub     check the audit checkpoints
            README.txt                                      how to verify by hand (vi, en)
            SHA256SUMS                                      `sha256sum -c` format, every file

The audit excerpt runs from the last signed checkpoint before the incident opened (that
record's predecessor hash is in excerpt.json, so the chain is checked from there) to the
first signed checkpoint after the incident's last activity (a fresh one is made), with the
checkpoint chain from its root to that checkpoint. The Ed25519 key that certifies the
chain's root, and the root itself, are vouched for by the GPG signature over the whole
bundle; a verifier who holds the office's ``audit-root.pub`` pins the root with it.

A bundle is only ever written together with its signature: signing happens before either
file is in place, and a failure leaves nothing behind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from secops import pathtext
from secops.config.schema import Config
from secops.errors import OperationalError, SigningError
from secops.files import atomic_write, ensure_private_dir
from secops.keys.gpg import Gpg
from secops.layout import StateDir
from secops.reports.excerpt import audit_excerpt, check_excerpt

if TYPE_CHECKING:
    from secops.playbooks.incidents import Incident, IncidentStore


SUMS = "SHA256SUMS"


def make_bundle(cfg: Config, incident_id: str, lang: str, encrypt_to: list[str]
                ) -> tuple[Path, Path, dict[str, Any] | None]:
    """Write ``state_dir/reports/<id>-<time>.tar.gz[.gpg]`` and its ``.asc`` signature;
    the third value says how the PDF inside is PAdES-signed (``pades_summary``), None when
    ``[signing]`` is not set."""
    from secops.keys.escrow import resolve_recipients
    from secops.playbooks.incidents import IncidentStore

    state = StateDir(Path(cfg.paths.state_dir))
    store = IncidentStore(state.root / "state.db", cfg.office.code)
    try:
        inc = store.get(incident_id)
        gpg, signer = office_signer(state)
        recipients = resolve_recipients(gpg, encrypt_to) if encrypt_to else []
        ensure_private_dir(state.reports)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = _free_name(state.reports, f"{incident_id}-{stamp}.tar.gz"
                          + (".gpg" if recipients else ""))
        with tempfile.TemporaryDirectory(dir=state.reports, prefix=".staging-") as tmp:
            plain, pades = _stage_and_pack(cfg, store, inc, lang, Path(tmp), signer=signer,
                                           name=name, recipients=recipients)
            data = plain.read_bytes()
    finally:
        store.close()
    if recipients:
        # No signature inside: the detached .asc covers the encrypted file, and an inner
        # one by the office key makes the police's plain `gpg --decrypt` (their own keyring,
        # without the office key) exit 2 "Can't check signature: No public key".
        data = gpg.encrypt(data, recipients, sign_with=None)
    signature = gpg.sign_detached(data, signer)
    bundle, sig = state.reports / name, state.reports / f"{name}.asc"
    atomic_write(sig, signature, 0o600)   # the signature first: no bundle ever stands alone
    try:
        atomic_write(bundle, data, 0o600)
    except BaseException:
        sig.unlink(missing_ok=True)
        raise
    return bundle, sig, pades


def office_signer(state: StateDir) -> tuple[Gpg, str]:
    """The office GPG home and signing key, proven usable by signing a probe: a missing,
    expired or revoked key is a clear SigningError before any work is done."""
    hint = "restore the office key with 'secops keys recover ESCROW', or run 'secops init'"
    if not state.gnupg.is_dir():
        raise SigningError(f"the office GPG home {state.gnupg} does not exist: no key to sign "
                           "the bundle with", hint=hint)
    gpg = Gpg(state.gnupg)
    fprs = gpg.secret_fingerprints()
    if not fprs:
        raise SigningError(f"there is no office signing key in {state.gnupg}", hint=hint)
    gpg.sign_detached(b"secops signing probe", fprs[0])
    return gpg, fprs[0]


def _free_name(folder: Path, name: str) -> str:
    base, n = name, 1
    while (folder / name).exists() or (folder / f"{name}.asc").exists():
        n += 1
        stem, _, ext = base.partition(".tar.gz")
        name = f"{stem}-{n}.tar.gz{ext}"
    return name


def _stage_and_pack(cfg: Config, store: IncidentStore, inc: Incident, lang: str, tmp: Path,
                    *, signer: str, name: str, recipients: list[str]
                    ) -> tuple[Path, dict[str, Any] | None]:
    from secops.audit.log import audit_root_path
    from secops.playbooks.summary import summary
    from secops.reports import incident_report as ir
    from secops.reports.incident_render import pdf_meta
    from secops.reports.pdf import pades_summary, render_report_pdf

    state = StateDir(Path(cfg.paths.state_dir))
    timeline = store.timeline(inc.id)
    now = time.time()
    # the span the report counts (first evidence to close, or now while open), and after
    # the incident's last entry (a notice recorded after the close)
    since, until = ir.incident_span(inc.event, inc.opened, inc.closed, now)
    last = max([until, *(e for t in timeline if (e := ir.epoch(t["time"])))])
    excerpt = audit_excerpt(state.root, cfg.office.code, inc.id, since, last)
    staged: dict[str, bytes] = {
        "audit/audit-excerpt.jsonl": b"".join(line + b"\n" for line in excerpt.lines),
        "audit/checkpoints.jsonl": b"".join(line + b"\n" for line in excerpt.checkpoints),
        "audit/excerpt.json": _json(excerpt.meta),
        "keys/office-ed25519.pub": state.ed25519_pub.read_bytes(),
    }
    root = audit_root_path(state.root)
    if root.exists():
        staged["keys/audit-root.pub"] = root.read_bytes()
    _write_tree(tmp, staged)
    ok, found = check_excerpt(tmp / "audit", tmp / "keys" / "office-ed25519.pub",
                              [root] if root.exists() else None)
    audit = {**excerpt.meta, "ok": ok, "problem": None if ok else found,
             "key_id": _ed25519_id(state.ed25519_pub),
             "root_id": _ed25519_id(root) if root.exists() else None,
             "entries": [r for line in excerpt.lines if (r := _record(line)) is not None]}
    doc = ir.build(cfg, store, inc.id, lang, now=now, signer=signer, audit=audit,
                   bundle_name=name, encrypted_to=recipients)
    html = ir.render_html(doc, lang)
    # PAdES-signed by the office's certificate when [signing] is set (inside the GPG-signed
    # bundle too: the police can check the PDF on its own)
    pdf, signed = render_report_pdf(html, pdf_meta(doc, lang), cfg.signing, cfg.office.name,
                                    lang)
    staged = {
        "report.html": html.encode("utf-8"), "report.md": ir.render_md(doc, lang).encode(),
        "report.pdf": pdf, "report.json": _json(doc),
        "incident.json": _json(summary(store, inc.id)), "timeline.json": _json(timeline),
        "README.txt": readme(inc.id, cfg.office.name, signer, name, doc["generated"],
                             encrypted=bool(recipients)).encode(),
    }
    _write_tree(tmp, staged)
    members: dict[str, Path] = {p.relative_to(tmp).as_posix(): p
                                for p in tmp.rglob("*") if p.is_file()}
    evidence = store.folder(inc.id) / "evidence"
    for path in sorted(evidence.rglob("*")) if evidence.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            members[f"evidence/{path.relative_to(evidence).as_posix()}"] = path
    sums = "".join(f"{sha256_file(p)}  {_sum_name(n)}\n" for n, p in sorted(members.items()))
    _write_tree(tmp, {SUMS: sums.encode()})
    members[SUMS] = tmp / SUMS
    out = tmp / "bundle.tar.gz"
    with out.open("wb") as f:
        pack(inc.id, members, int(inc.opened), f)
    return out, pades_summary(signed) if signed else None


def _json(doc: Any) -> bytes:
    # UTF-8 whatever the file names: one that is not UTF-8 as b64:... (secops.pathtext)
    return (pathtext.dumps(doc, indent=1, default=str) + "\n").encode("utf-8")


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        ensure_private_dir(path.parent)
        path.write_bytes(data)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    # a file name that is not UTF-8 as it is on disk (the report shows it readably)
    return dict(pathtext.decode_tree(rec)) if isinstance(rec, dict) else None


def _ed25519_id(path: Path) -> str:
    from secops.keys.signature import load_public_key, public_key_id

    return public_key_id(load_public_key(path))


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sum_name(name: str) -> str:
    if "\n" in name or "\\" in name:
        raise OperationalError(f"evidence file name {name!r} cannot be listed in {SUMS}")
    return name


def pack(top: str, members: dict[str, Path], mtime: int, out: IO[bytes]) -> None:
    """A deterministic tar.gz: sorted names, fixed mtime/owner/modes, gzip header mtime 0."""
    dirs = {top} | {f"{top}/{'/'.join(parts[:i])}"
                    for n in members for parts in [n.split("/")] for i in range(1, len(parts))}
    entries: list[tuple[str, Path | None]] = sorted(
        [(d, None) for d in dirs] + [(f"{top}/{n}", p) for n, p in members.items()],
        key=lambda e: e[0])
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, path in entries:
            info = tarfile.TarInfo(arcname)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if path is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.mode, info.size = 0o644, path.stat().st_size
            with path.open("rb") as f:
                tar.addfile(info, f)


# --- README.txt: how the police check the bundle by hand -------------------------------------
# Each command line of README.txt is indented by exactly COMMAND_INDENT spaces (prose never
# is): tests/integration/test_police_steps.py runs those lines, as written, on real bundles.

COMMAND_INDENT = 6
PS_SUMS = ("Get-Content -Encoding UTF8 SHA256SUMS | ForEach-Object { $h, $f = $_ -split '  ', "
           "2; if ((Test-Path -LiteralPath $f) -and (Get-FileHash -Algorithm SHA256 "
           "-LiteralPath $f).Hash -eq $h) { \"OK      $f\" } else { \"FAILED  $f\" } }")


def readme(incident_id: str, office: str, fpr: str, name: str, generated: str, *,
           encrypted: bool) -> str:
    """The bundle's README.txt (Vietnamese, then English): what it holds and how to check it
    with gpg, tar and sha256sum only (steps 1-3), then with secops (step 4), on Linux and
    on Windows. ``name`` is the bundle file; ``encrypted``: it is ``name``.gpg for the
    police's key (then step 3 decrypts it first)."""
    head = (f"HỒ SƠ CHỨNG CỨ SỰ CỐ / INCIDENT EVIDENCE BUNDLE {incident_id}\n"
            f"{office} — {generated}\n"
            f"Tệp hồ sơ / Bundle file: {name}"
            + (" (đã mã hóa / encrypted)" if encrypted else "") + "\n"
            "Dấu vân tay khóa GPG của cơ quan theo hồ sơ này / Office GPG key fingerprint "
            "as this bundle states it:\n"
            f"   {grouped_fingerprint(fpr)}\n")
    parts = [head]
    for lang, home in (("vi", "gpg-kiem-tra"), ("en", "gpg-check")):
        words = _README[lang]
        cmds = {k: "\n".join(" " * COMMAND_INDENT + c for c in v)
                for k, v in police_commands(incident_id, name, encrypted, home).items()}
        plain = name.removesuffix(".gpg")
        values = {"id": incident_id, "name": name, "plain": plain, "home": home,
                  "fpr": grouped_fingerprint(fpr), "ps_sums": " " * COMMAND_INDENT + PS_SUMS,
                  **{f"cmd_{k}": v for k, v in cmds.items()}}
        step3 = (words["decrypt"] if encrypted else "") + words["unpack"]
        windows_decrypt = words["win_decrypt"] if encrypted else ""
        body = (words["main"].replace("{step3}", step3)
                .replace("{win_decrypt}", windows_decrypt))
        parts.append("=" * 78 + "\n" + body.format(**values))
    return "\n".join(parts)


def police_commands(incident_id: str, name: str, encrypted: bool, home: str
                    ) -> dict[str, list[str]]:
    """The command lines of README.txt, by step (``home``: the fresh GnuPG folder)."""
    plain = name.removesuffix(".gpg")
    return {
        "fingerprint": [f"mkdir -m 700 {home}",
                        f"gpg --homedir {home} --show-keys --with-fingerprint office-gpg.asc"],
        "verify": [f"gpg --homedir {home} --import office-gpg.asc",
                   f"gpg --homedir {home} --verify {name}.asc {name}"],
        "decrypt": [f"gpg --output {plain} --decrypt {name}"] if encrypted else [],
        "unpack": [f"tar xzf {plain}", f"cd {incident_id}", "sha256sum -c SHA256SUMS"],
        "secops": ["cd ..",
                   f"secops bundle verify {name} --office-key office-gpg.asc "
                   "--audit-root audit-root.pub",
                   f"secops audit verify --log {incident_id}/audit/ --public-key "
                   f"{incident_id}/keys/office-ed25519.pub --audit-root audit-root.pub"],
    }


def grouped_fingerprint(fpr: str) -> str:
    """The fingerprint as gpg prints it: ten groups of four, two spaces in the middle."""
    groups = [fpr[i:i + 4] for i in range(0, len(fpr), 4)]
    return " ".join(groups[:5]) + "  " + " ".join(groups[5:]) if len(groups) == 10 else fpr


_README_VI = """\
NỘI DUNG HỒ SƠ (thư mục {id}/)
   report.html, report.pdf, report.md, report.json  báo cáo sự cố (HTML, PDF in được)
   incident.json, timeline.json   sự cố và diễn biến như secops đã ghi
   evidence/          các chứng cứ đã thu thập (tiến trình, kết nối mạng, người dùng, tệp
                      đang mở, mã băm các tệp liên quan, bản sao nhật ký), mỗi mục một tệp
   evidence/custody.jsonl  biên bản chuỗi lưu giữ chứng cứ: mỗi mục một dòng (tên tệp, mã
                      băm SHA-256, thời điểm thu thập, người/máy thu thập), mỗi dòng mang
                      mã băm của dòng trước nên không thể sửa, xóa, đổi thứ tự một dòng
   audit/             đoạn trích nhật ký kiểm toán quanh sự cố (audit-excerpt.jsonl), các
                      điểm kiểm tra có chữ ký Ed25519 (checkpoints.jsonl) và mô tả đoạn
                      trích (excerpt.json: từ điểm kiểm tra nào đến điểm kiểm tra nào)
   keys/              office-ed25519.pub (khóa kiểm tra các điểm kiểm tra) và audit-root.pub:
                      đây chỉ là điều hồ sơ tự khai; hãy dùng bản audit-root.pub cơ quan
                      bàn giao trực tiếp cho đồng chí
   README.txt, SHA256SUMS   hướng dẫn này; mã băm SHA-256 của mọi tệp trong thư mục

A. KIỂM TRA CHỈ CẦN gpg, tar, sha256sum (LINUX) — BƯỚC 1 ĐẾN 3
Trong thư mục chứa hồ sơ, chữ ký của nó:
   {name}
   {name}.asc
và các khóa công khai cơ quan bàn giao trực tiếp: office-gpg.asc, audit-root.pub (dấu vân
tay của khóa in trên báo cáo giấy có đóng dấu):
1. Xem dấu vân tay của khóa TRƯỚC khi nhập, trong một thư mục GnuPG riêng, mới:
{cmd_fingerprint}
   Dòng số dưới "pub" (10 nhóm 4 ký tự) phải trùng từng ký tự với dấu vân tay in trên báo
   cáo giấy có đóng dấu. Không trùng: dừng lại, khóa không phải của cơ quan. Đừng so với
   dòng ở đầu tệp này: tệp này nằm trong hồ sơ, chỉ là điều hồ sơ tự khai.
2. Nhập khóa và kiểm tra chữ ký số:
{cmd_verify}
   Phải thấy "Good signature from ..." và "Primary key fingerprint:" đúng dấu vân tay ở
   bước 1. gpg in thêm "WARNING: This key is not certified with a trusted signature!" —
   điều này bình thường với khóa nhập bằng tay: gpg chỉ báo rằng chưa ai trong thư mục
   GnuPG này ký xác nhận khóa. Việc đối chiếu dấu vân tay ở bước 1 mới là điều quyết định.
   "BAD signature" hoặc dấu vân tay khác: hồ sơ không phải là hồ sơ cơ quan đã ký.
3. {step3}
B. BƯỚC 4 — CẦN SECOPS (kiểm tra thêm chuỗi lưu giữ và đoạn trích nhật ký kiểm toán)
   Quay lại thư mục chứa hồ sơ và các khóa công khai:
{cmd_secops}
   Lệnh thứ nhất kiểm tra lại chữ ký, mã băm, chuỗi lưu giữ chứng cứ và đoạn trích nhật
   ký; lệnh thứ hai kiểm tra riêng đoạn trích như một đoạn trích: từ một điểm kiểm tra có
   chữ ký đến một điểm kiểm tra có chữ ký, gắn với audit-root.pub cơ quan bàn giao (không
   phải bản trong keys/). Mã thoát 0: đạt; mã thoát 1: in ra bước không đạt.

C. TRÊN WINDOWS (Gpg4win / Kleopatra, PowerShell)
   Cài Gpg4win (có Kleopatra và lệnh gpg). Bước 1, 2 ở trên chạy được y nguyên trong
   PowerShell (tạo thư mục bằng "mkdir {home}" thay cho "mkdir -m 700 {home}").
   Với Kleopatra: nhập chứng thư (Import) office-gpg.asc; mở chi tiết chứng thư để xem dấu
   vân tay (Fingerprint) và so với báo cáo giấy như bước 1 (Kleopatra có thể hỏi có chứng
   nhận chứng thư không, hoặc ghi là chưa được chứng nhận: cùng ý nghĩa với dòng WARNING ở
   bước 2); chọn "Decrypt/Verify" trên tệp {name}.asc (để {name} cùng thư mục): phải báo
   chữ ký hợp lệ của khóa cơ quan.{win_decrypt}
   Giải nén trong PowerShell (Windows 10 trở lên có sẵn tar), rồi kiểm tra mã băm mọi tệp:
      tar -xzf {plain}
      cd {id}
{ps_sums}
   Mỗi dòng in ra là "OK" hoặc "FAILED" kèm tên tệp; mọi dòng phải là OK. FAILED: tệp đó bị
   sửa hoặc bị thiếu. Kiểm tra một tệp: "Get-FileHash -Algorithm SHA256 TỆP" hoặc
   "certutil -hashfile TỆP SHA256", rồi so với dòng của tệp đó trong SHA256SUMS (không
   phân biệt chữ hoa, chữ thường).
"""

_README_EN = """\
WHAT THE BUNDLE HOLDS (folder {id}/)
   report.html, report.pdf, report.md, report.json  the incident report (HTML, printable PDF)
   incident.json, timeline.json   the incident and its timeline as secops recorded them
   evidence/          the collected evidence (processes, network connections, users, open
                      files, hashes of the files concerned, copies of logs), one file each
   evidence/custody.jsonl  the chain of custody: one line per item (file name, SHA-256,
                      when it was collected, by whom/which host), each line carrying the
                      hash of the line before, so no line can be edited, removed or moved
   audit/             the audit log excerpt around the incident (audit-excerpt.jsonl), its
                      Ed25519-signed checkpoints (checkpoints.jsonl) and what the excerpt
                      spans (excerpt.json: from which checkpoint to which)
   keys/              office-ed25519.pub (checks the checkpoints) and audit-root.pub: only
                      what the bundle claims; use the audit-root.pub the office handed over
                      to you in person
   README.txt, SHA256SUMS   these steps; the SHA-256 of every file in the folder

A. CHECKING WITH gpg, tar AND sha256sum ONLY (LINUX) — STEPS 1 TO 3
In the folder holding the bundle and its signature:
   {name}
   {name}.asc
and the office's public keys, handed over in person: office-gpg.asc, audit-root.pub (the
key's fingerprint is printed on the stamped paper report):
1. Look at the key's fingerprint BEFORE importing it, in a new GnuPG folder of its own:
{cmd_fingerprint}
   The line of digits under "pub" (10 groups of 4) must match, character for character,
   the fingerprint printed on the stamped paper report. If it does not, stop: the key is
   not the office's. Do not compare with the line at the top of this file: this file is
   inside the bundle, it is only what the bundle claims.
2. Import the key and check the signature:
{cmd_verify}
   Expect "Good signature from ..." and "Primary key fingerprint:" equal to step 1. gpg
   also prints "WARNING: This key is not certified with a trusted signature!": expected
   for a key imported by hand; it only means nobody certified the key in this GnuPG folder.
   The fingerprint check of step 1 is what counts. "BAD signature" or another fingerprint:
   the bundle is not the one the office signed.
3. {step3}
B. STEP 4 — NEEDS SECOPS (also checks the chain of custody and the audit log excerpt)
   Back in the folder with the bundle and the public keys:
{cmd_secops}
   The first command checks the signature, the hashes, the chain of custody and the audit
   excerpt again; the second checks the excerpt as an excerpt: from one signed checkpoint
   to another, pinned to the audit-root.pub the office handed over (not the copy in
   keys/). Exit 0: passed; exit 1: it names what failed.

C. ON WINDOWS (Gpg4win / Kleopatra, PowerShell)
   Install Gpg4win (it brings Kleopatra and the gpg command). Steps 1 and 2 above work
   as written in PowerShell (make the folder with "mkdir {home}" instead of
   "mkdir -m 700 {home}").
   With Kleopatra: Import the certificate office-gpg.asc; open its details to see the
   fingerprint and compare it with the paper report as in step 1 (Kleopatra may offer to
   certify it, or show it as not certified: the same as the WARNING line of step 2);
   choose "Decrypt/Verify" on {name}.asc (with {name} in the same folder): it must report
   a valid signature by the office key.{win_decrypt}
   Unpack in PowerShell (Windows 10 and later ship tar), then check every file's hash:
      tar -xzf {plain}
      cd {id}
{ps_sums}
   Each line printed is "OK" or "FAILED" with a file name; every line must be OK. FAILED:
   that file was changed or is missing. To check one file: "Get-FileHash -Algorithm SHA256
   FILE" or "certutil -hashfile FILE SHA256", and compare with that file's line in
   SHA256SUMS (upper or lower case does not matter).
"""

_README: dict[str, dict[str, str]] = {
    "vi": {
        "main": _README_VI,
        "decrypt": """\
Hồ sơ đã mã hóa cho khóa của đồng chí: giải mã bằng thư mục GnuPG của chính đồng chí
   (nơi có khóa bí mật, không phải {home}); gpg báo "encrypted with ..." và kết thúc
   không lỗi (bên trong không có chữ ký nào khác: chữ ký ở bước 2 đã phủ tệp mã hóa):
{cmd_decrypt}
   """,
        "unpack": """\
Giải nén và kiểm tra mã băm của từng tệp:
{cmd_unpack}
   Mọi dòng phải là "TỆP: OK"; một dòng FAILED là tệp đó đã bị sửa hoặc bị thiếu.
""",
        "win_decrypt": """
   Hồ sơ đã mã hóa: chọn "Decrypt/Verify" trên {name} bằng khóa của đồng chí trong
   Kleopatra; Kleopatra ghi ra {plain}.""",
    },
    "en": {
        "main": _README_EN,
        "decrypt": """\
The bundle is encrypted to your key: decrypt it with your own GnuPG folder (the one
   with your secret key, not {home}); gpg says "encrypted with ..." and ends without an
   error (there is no other signature inside: the signature of step 2 covers this file):
{cmd_decrypt}
   """,
        "unpack": """\
Unpack and check the hash of every file:
{cmd_unpack}
   Every line must say "FILE: OK"; a FAILED line is a file that was changed or is missing.
""",
        "win_decrypt": """
   An encrypted bundle: choose "Decrypt/Verify" on {name} with your own key in
   Kleopatra; Kleopatra writes {plain}.""",
    },
}
