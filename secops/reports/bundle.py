"""The incident's evidence bundle: a deterministic ``.tar.gz`` (optionally GPG-encrypted to
the police) with a detached OpenPGP signature by the office key beside it, and its
verification on a machine that trusts nothing but the office's public key.

Layout (one top folder, the incident id)::

    INC-.../report.html report.md report.pdf report.json   the report (vi or en)
            incident.json timeline.json                    the incident as recorded
            evidence/...  evidence/custody.jsonl            items + chain of custody
            audit/audit-excerpt.jsonl audit/checkpoints.jsonl audit/excerpt.json
            keys/office-ed25519.pub                         checks the audit checkpoints
            README.txt                                      how to verify by hand (vi, en)
            SHA256SUMS                                      `sha256sum -c` format, every file

The audit excerpt runs from the last signed checkpoint before the incident opened (that
record's predecessor hash is in excerpt.json, so the chain is checked from there) to the
first signed checkpoint after the incident's last activity (a fresh one is made). The
Ed25519 key that checks those checkpoints is vouched for by the GPG signature over the
whole bundle.

A bundle is only ever written together with its signature: signing happens before either
file is in place, and a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from secops.config.schema import Config
from secops.errors import OperationalError, SecopsError, SigningError, UsageError
from secops.files import atomic_write, ensure_private_dir
from secops.keys.gpg import Gpg
from secops.layout import StateDir

if TYPE_CHECKING:
    from secops.playbooks.incidents import Incident, IncidentStore

SUMS = "SHA256SUMS"
MAX_UNPACKED = 16 << 30          # refuse a bundle that unpacks to more than this
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_SEQ = re.compile(rb'^\{"seq":(-?\d+),')


# --- the audit excerpt -----------------------------------------------------------------------

@dataclass(frozen=True)
class _Checkpoint:
    raw: bytes
    seq: int
    ts: float


@dataclass
class Excerpt:
    lines: list[bytes]
    checkpoints: list[bytes]
    meta: dict[str, Any]


def audit_excerpt(state_dir: Path, office: str, incident_id: str, opened: float,
                  last_activity: float) -> Excerpt:
    """The records around the incident, from one signed checkpoint to another."""
    from secops.audit.chain import GENESIS_PREV
    from secops.audit.log import AuditLog, segments

    fresh = AuditLog(state_dir, office).checkpoint()
    folder = StateDir(state_dir).audit
    cps = _read_checkpoints(folder / "checkpoints.jsonl")
    before = [c for c in cps if c.seq >= 0 and c.ts < opened]
    start_seq = max(c.seq for c in before) if before else 0
    needle = incident_id.encode()
    kept: list[tuple[int, bytes]] = []
    last_mention = start_seq
    for path in segments(folder):
        with path.open("rb") as f:
            for raw in f:
                m = _SEQ.match(raw)
                if m is None or int(m.group(1)) < start_seq or not raw.endswith(b"\n"):
                    continue
                seq = int(m.group(1))
                kept.append((seq, raw[:-1]))
                if needle in raw:
                    last_mention = max(last_mention, seq)
    after = [c for c in cps if c.seq >= last_mention and c.ts >= math.floor(last_activity)]
    end_seq = min(c.seq for c in after) if after else int(fresh["seq"])
    lines = [raw for seq, raw in kept if seq <= end_seq]
    prev = GENESIS_PREV
    if lines:
        start_seq = kept[0][0]
        with contextlib.suppress(ValueError, KeyError, TypeError):
            prev = str(json.loads(lines[0])["prev"])
    chosen = [c for c in cps if start_seq <= c.seq <= end_seq]
    meta = {"office": office, "incident": incident_id, "start_seq": start_seq, "prev": prev,
            "end_seq": end_seq, "records": len(lines),
            "checkpoint_seqs": [c.seq for c in chosen]}
    return Excerpt(lines, [c.raw for c in chosen], meta)


def _read_checkpoints(path: Path) -> list[_Checkpoint]:
    from secops.reports.incident_report import epoch

    out = []
    with contextlib.suppress(FileNotFoundError):
        for raw in path.read_bytes().split(b"\n"):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = json.loads(raw)
                ts = epoch(str(d["time"]))
                if ts is not None:
                    out.append(_Checkpoint(raw, int(d["seq"]), ts))
    return out


def check_excerpt(audit_dir: Path, public_key_file: Path) -> tuple[bool, str]:
    """The excerpt's chain from its start state, every checkpoint's Ed25519 signature, and
    both ends vouched for by a checkpoint. (ok, what was found)."""
    from secops.audit.chain import GENESIS_PREV, ChainState
    from secops.audit.verify import Report as AuditReport
    from secops.audit.verify import read_checkpoints, verify
    from secops.keys.signature import load_public_key, public_key_id

    try:
        meta = json.loads((audit_dir / "excerpt.json").read_text(encoding="utf-8"))
        start, prev, end = int(meta["start_seq"]), str(meta["prev"]), int(meta["end_seq"])
        pub = load_public_key(public_key_file)
    except (OSError, ValueError, KeyError, TypeError, SecopsError) as e:
        return False, f"the excerpt cannot be read: {e}"
    log, cp_file = audit_dir / "audit-excerpt.jsonl", audit_dir / "checkpoints.jsonl"
    rep = verify(audit_dir, checkpoints=cp_file, public_key=pub, log_file=log,
                 start=ChainState(start, prev, None))
    if not rep.ok:
        return False, f"record {rep.first_bad_seq}: {rep.problem}: {rep.detail}"
    seqs = [c.seq for c in read_checkpoints(cp_file, AuditReport())]
    last = rep.state.next_seq - 1 if rep.state is not None else start - 1
    if last != end or rep.records != end - start + 1:
        return False, f"the excerpt holds records up to {last}; excerpt.json says " \
                      f"{start} to {end}"
    if end not in seqs:
        return False, f"the last record ({end}) is not vouched for by a signed checkpoint"
    if start not in seqs and not (start == 0 and prev == GENESIS_PREV):
        return False, f"the first record ({start}) is not vouched for by a signed checkpoint"
    return True, (f"records {start} to {end} chained; {rep.checkpoints_verified} signed "
                  f"checkpoint(s) verified with Ed25519 key {public_key_id(pub)}")


# --- making the bundle -----------------------------------------------------------------------

def make_bundle(cfg: Config, incident_id: str, lang: str, encrypt_to: list[str]
                ) -> tuple[Path, Path]:
    """Write ``state_dir/reports/<id>-<time>.tar.gz[.gpg]`` and its ``.asc`` signature."""
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
            plain = _stage_and_pack(cfg, store, inc, lang, Path(tmp), signer=signer,
                                    name=name, recipients=recipients)
            data = plain.read_bytes()
    finally:
        store.close()
    if recipients:
        data = gpg.encrypt(data, recipients, sign_with=signer)
    signature = gpg.sign_detached(data, signer)
    bundle, sig = state.reports / name, state.reports / f"{name}.asc"
    atomic_write(sig, signature, 0o600)   # the signature first: no bundle ever stands alone
    try:
        atomic_write(bundle, data, 0o600)
    except BaseException:
        sig.unlink(missing_ok=True)
        raise
    return bundle, sig


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
                    *, signer: str, name: str, recipients: list[str]) -> Path:
    from secops.playbooks.summary import summary
    from secops.reports import incident_report as ir
    from secops.reports.pdf import render_pdf

    state = StateDir(Path(cfg.paths.state_dir))
    timeline = store.timeline(inc.id)
    last = max([inc.updated, *(e for t in timeline if (e := ir.epoch(t["time"])))])
    excerpt = audit_excerpt(state.root, cfg.office.code, inc.id, inc.opened, last)
    staged: dict[str, bytes] = {
        "audit/audit-excerpt.jsonl": b"".join(line + b"\n" for line in excerpt.lines),
        "audit/checkpoints.jsonl": b"".join(line + b"\n" for line in excerpt.checkpoints),
        "audit/excerpt.json": _json(excerpt.meta),
        "keys/office-ed25519.pub": state.ed25519_pub.read_bytes(),
    }
    _write_tree(tmp, staged)
    ok, found = check_excerpt(tmp / "audit", tmp / "keys" / "office-ed25519.pub")
    audit = {**excerpt.meta, "ok": ok, "problem": None if ok else found,
             "key_id": _ed25519_id(state.ed25519_pub)}
    doc = ir.build(cfg, store, inc.id, lang, signer=signer, audit=audit, bundle_name=name,
                   encrypted_to=recipients)
    html = ir.render_html(doc, lang)
    staged = {
        "report.html": html.encode("utf-8"), "report.md": ir.render_md(doc, lang).encode(),
        "report.pdf": render_pdf(html), "report.json": _json(doc),
        "incident.json": _json(summary(store, inc.id)), "timeline.json": _json(timeline),
        "README.txt": readme(inc.id, cfg.office.name, signer, name, doc["generated"]).encode(),
    }
    _write_tree(tmp, staged)
    members: dict[str, Path] = {p.relative_to(tmp).as_posix(): p
                                for p in tmp.rglob("*") if p.is_file()}
    evidence = store.folder(inc.id) / "evidence"
    for path in sorted(evidence.rglob("*")) if evidence.is_dir() else []:
        if path.is_file() and not path.is_symlink():
            members[f"evidence/{path.relative_to(evidence).as_posix()}"] = path
    sums = "".join(f"{_sha256(p)}  {_sum_name(n)}\n" for n, p in sorted(members.items()))
    _write_tree(tmp, {SUMS: sums.encode()})
    members[SUMS] = tmp / SUMS
    out = tmp / "bundle.tar.gz"
    with out.open("wb") as f:
        pack(inc.id, members, int(inc.opened), f)
    return out


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1, default=str) + "\n").encode("utf-8")


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        ensure_private_dir(path.parent)
        path.write_bytes(data)


def _ed25519_id(path: Path) -> str:
    from secops.keys.signature import load_public_key, public_key_id

    return public_key_id(load_public_key(path))


def _sha256(path: Path) -> str:
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


def readme(incident_id: str, office: str, fpr: str, name: str, generated: str) -> str:
    plain = name.removesuffix(".gpg")
    return f"""\
HỒ SƠ CHỨNG CỨ SỰ CỐ / INCIDENT EVIDENCE BUNDLE {incident_id}
{office} — {generated}
Khóa GPG của cơ quan / Office GPG key: {fpr}

KIỂM TRA KHÔNG CẦN SECOPS
1. Nhận khóa công khai của cơ quan (office-gpg.asc) qua kênh tin cậy; dấu vân tay phải trùng
   với dấu vân tay in trên báo cáo giấy có đóng dấu (ở trên).
2. Kiểm tra chữ ký số trong một thư mục GnuPG riêng:
     mkdir -m 700 gpg-kiem-tra
     gpg --homedir gpg-kiem-tra --import office-gpg.asc
     gpg --homedir gpg-kiem-tra --verify {name}.asc {name}
   Phải thấy "Good signature" và đúng dấu vân tay trên.
   Hồ sơ đã mã hóa (.gpg): sau khi kiểm tra chữ ký, giải mã bằng khóa của đồng chí:
     gpg --output {plain} --decrypt {name}
3. Giải nén và kiểm tra mã băm của từng tệp (mọi dòng phải là OK):
     tar xzf {plain}
     cd {incident_id}
     sha256sum -c SHA256SUMS
4. Nhật ký kiểm toán trích (audit/) cùng các điểm kiểm tra ký bằng khóa Ed25519
   (keys/office-ed25519.pub) được kiểm tra bằng:
     secops bundle verify {name} --office-key office-gpg.asc

CHECKING WITHOUT SECOPS
1. Get the office's public key (office-gpg.asc) through a channel you trust; its fingerprint
   must match the one printed on the stamped paper report (above).
2. Check the signature in a GnuPG home of its own:
     mkdir -m 700 gpg-check
     gpg --homedir gpg-check --import office-gpg.asc
     gpg --homedir gpg-check --verify {name}.asc {name}
   Expect "Good signature" and the fingerprint above.
   An encrypted bundle (.gpg): after checking the signature, decrypt it with your key:
     gpg --output {plain} --decrypt {name}
3. Unpack and check the hash of every file (every line must say OK):
     tar xzf {plain}
     cd {incident_id}
     sha256sum -c SHA256SUMS
4. The audit log excerpt (audit/) and its checkpoints signed with the Ed25519 key
   (keys/office-ed25519.pub) are checked by:
     secops bundle verify {name} --office-key office-gpg.asc
"""


# --- verification ----------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    signer: str | None = None

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail}
                                          for c in self.checks]}


def verify_bundle(path: Path, sig_path: Path | None = None, gnupghome: Path | None = None,
                  public_key_file: Path | None = None, expected_fpr: str | None = None
                  ) -> Report:
    """Check a bundle as the police do: the GPG signature (by the office key when it is
    given as a key file or a fingerprint), decryption, a confined unpack, SHA256SUMS, the
    chain of custody and the audit excerpt. Needs no secops configuration."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the bundle {path}: {e.strerror}") from None
    report = Report()
    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    with tempfile.TemporaryDirectory(prefix="secops-bundle-") as tmp:
        work = Path(tmp)
        _check_signature(report, path, sig_path or Path(f"{path}.asc"), home,
                         public_key_file, expected_fpr, work)
        if data[:2] != b"\x1f\x8b":
            try:
                data = Gpg(home).decrypt(data).data
                report.add("decrypt", True, f"decrypted with the key in {home}")
            except SecopsError as e:
                report.add("decrypt", False, f"cannot decrypt {path.name}: {e.message}")
                return report
        top = _unpack(report, data, work / "unpacked")
        if top is None:
            return report
        _check_sums(report, top)
        _check_custody(report, top)
        ok, detail = check_excerpt(top / "audit", top / "keys" / "office-ed25519.pub")
        report.add("audit-excerpt", ok, detail)
        if report.signer is not None:
            _check_claimed_signer(report, top)
    return report


def _check_signature(report: Report, path: Path, sig_path: Path, home: Path,  # noqa: PLR0917
                     key_file: Path | None, expected: str | None, work: Path) -> None:
    try:
        signature = sig_path.read_bytes()
    except OSError as e:
        report.add("signature", False, f"no signature file {sig_path}: {e.strerror}")
        return
    office: set[str] = {expected.replace(" ", "").upper()} if expected else set()
    if key_file is not None:
        home = work / "gnupg"
        try:
            office = set(Gpg(home).import_keys(key_file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, SecopsError) as e:
            report.add("signature", False, f"the office key file {key_file} is unusable: {e}")
            return
    try:
        with _gpg_home(home, temporary=key_file is not None) as gpg:
            v = gpg.verify_detached(signature, path)
    except SecopsError as e:
        report.add("signature", False, f"gpg could not check the signature: {e.message}")
        return
    who = v.fingerprint or v.key_id or "an unknown key"
    if not v.valid:
        if v.status == "no public key" and office:
            detail = f"signed by another key ({who}), not by the office key " \
                     f"({', '.join(sorted(office))})"
        elif v.status == "no public key":
            detail = f"the signing key {who} is not in {home}: pass the office's public key " \
                     "with --office-key office-gpg.asc"
        elif v.status == "signature bad":
            detail = f"BAD signature: {path.name} was changed after it was signed by {who}"
        else:
            detail = f"no valid signature ({v.status or 'unreadable'}; key {who})"
        report.add("signature", False, detail)
    elif office and v.fingerprint not in office:
        report.add("signature", False, f"signed by {who}, not by the office key "
                   f"({', '.join(sorted(office))})")
    else:
        report.signer = v.fingerprint
        note = "the office key" if office else \
            "a key of your keyring (no --office-key given: compare the fingerprint with the " \
            "office's)"
        report.add("signature", True, f"good signature by {note}: {v.fingerprint}")


@contextlib.contextmanager
def _gpg_home(home: Path, temporary: bool) -> Iterator[Gpg]:
    try:
        yield Gpg(home)
    finally:
        if temporary:
            from secops import process

            with contextlib.suppress(SecopsError, OSError):
                process.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                            env=process.base_env(), timeout=30)


def _unpack(report: Report, data: bytes, dest: Path) -> Path | None:
    """Extract only regular files and folders, each confined to one top folder."""
    ensure_private_dir(dest)
    tops: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar:
                problem = _refuse(m, tops)
                if problem is not None:
                    report.add("unpack", False, problem)
                    return None
                target = dest / m.name
                if m.isdir():
                    ensure_private_dir(target)
                    continue
                total += m.size
                if total > MAX_UNPACKED:
                    report.add("unpack", False, "the bundle unpacks to more than "
                               f"{MAX_UNPACKED >> 30} GiB: refused")
                    return None
                ensure_private_dir(target.parent)
                src = tar.extractfile(m)
                assert src is not None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600)
                with open(fd, "wb") as f:
                    shutil.copyfileobj(src, f)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        report.add("unpack", False, f"not a readable .tar.gz: {e}")
        return None
    if len(tops) != 1:
        report.add("unpack", False, "the bundle has no single top folder")
        return None
    top = dest / tops.pop()
    report.add("unpack", True, f"{top.name}/: regular files only, all inside one folder")
    return top


def _refuse(m: tarfile.TarInfo, tops: set[str]) -> str | None:
    name = m.name
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        return f"member {name!r}: absolute or escaping path refused"
    if not (m.isreg() or m.isdir()):
        return f"member {name!r}: links, devices and other special files are refused"
    tops.add(parts[0])
    if len(tops) > 1:
        return f"member {name!r}: outside the bundle's top folder"
    return None


def _check_sums(report: Report, top: Path) -> None:
    try:
        text = (top / SUMS).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        report.add("sha256sums", False, f"{SUMS} is missing or unreadable: {e}")
        return
    listed: dict[str, str] = {}
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        m = _SUM_LINE.match(line)
        if m is None or m.group(2).startswith("/") or ".." in m.group(2).split("/"):
            problems.append(f"{SUMS} line {n} is malformed")
            continue
        listed[m.group(2)] = m.group(1)
    present = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()} - {SUMS}
    for name, digest in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name}: listed but missing")
        elif _sha256(top / name) != digest:
            problems.append(f"{name}: SHA-256 differs from {SUMS} (changed after signing)")
    problems += [f"{name}: not listed in {SUMS}" for name in sorted(present - set(listed))]
    report.add("sha256sums", not problems,
               "; ".join(problems) or f"{len(listed)} files match {SUMS}, none unlisted")


def _check_custody(report: Report, top: Path) -> None:
    from secops.playbooks.evidence import CUSTODY, verify_custody

    head = None
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        for t in json.loads((top / "timeline.json").read_text(encoding="utf-8")):
            outputs = t.get("outputs") if isinstance(t, dict) else None
            if isinstance(outputs, dict) and outputs.get("custody_head"):
                head = str(outputs["custody_head"])
    folder = top / "evidence"
    if not (folder / CUSTODY).exists() and head is None:
        report.add("custody", True, "no evidence was collected for this incident")
        return
    problems = [p.replace(f"{top}/", "") for p in verify_custody(folder, head=head)]
    report.add("custody", not problems, "; ".join(problems) or
               "every item matches its custody line; the chain is intact"
               + (" up to the head recorded in the timeline" if head else ""))


def _check_claimed_signer(report: Report, top: Path) -> None:
    try:
        claim = json.loads((top / "report.json").read_text(encoding="utf-8"))["signature"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        report.add("report-signer", False, f"report.json is unreadable: {e}")
        return
    if not claim.get("signed") or claim.get("gpg_fingerprint") != report.signer:
        report.add("report-signer", False, f"the report names signing key "
                   f"{claim.get('gpg_fingerprint')}, but the bundle is signed by "
                   f"{report.signer}")
        return
    report.add("report-signer", True, "the report names the key that signed the bundle")
