"""``secops bundle verify``: an evidence bundle checked as the police do, on a machine that
trusts nothing but the office's public key, each step only once the one before it held: the
detached signature by the pinned office key, decryption (streamed, capped), a confined
unpack (pre-scanned by ``tarscan``), SHA256SUMS, the chain of custody, the audit excerpt.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from secops.errors import SecopsError, UsageError
from secops.files import ensure_private_dir
from secops.keys.gpg import Gpg
from secops.reports import tarscan
from secops.reports.bundle import SUMS, sha256_file
from secops.reports.excerpt import check_excerpt
from secops.reports.tarscan import Limits, human

# ``bundle verify`` caps: the bundle file, its plaintext and its unpacked files, each
DEFAULT_MAX_SIZE = 2 << 30       # a real bundle is a few MiB; evidence copies may add more
MAX_SIGNATURE = 64 << 10         # a detached signature is well under 1 KiB
MAX_KEY_FILE = 1 << 20           # office-gpg.asc is a few KiB
MAX_TEXT = 16 << 20              # SHA256SUMS, report.json, timeline.json are read whole
_RAISE = " (raise the cap with --max-size if the office confirms the bundle is that large)"
UNPINNED = ("the signer is not pinned, and a signature by just any key proves nothing: pass "
            "the office's public key, --office-key office-gpg.asc (written by 'secops keys "
            "export-public' on the office server and handed over in person; its fingerprint "
            "is printed on the stamped paper report), or --office-key FINGERPRINT of that key "
            "in your keyring")
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


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
                  public_key_file: Path | None = None, expected_fpr: str | None = None,
                  *, max_size: int = DEFAULT_MAX_SIZE,
                  audit_roots: list[Path] | None = None) -> Report:
    """Check a bundle as the police do, each step only once the one before it held: the
    detached signature by the pinned office key (a key file, or a fingerprint in
    ``gnupghome``; with neither nothing is ever ok), decryption, a confined unpack,
    SHA256SUMS, the chain of custody and the audit excerpt (its checkpoint chain pinned to
    ``audit_roots``, the office's audit-root.pub, when given). Needs no secops configuration.

    Nothing is decrypted or unpacked unless the signature holds. The bundle is copied into a
    private work folder (removed afterwards) and checked there; the copy, its plaintext and
    the unpacked files are each capped at ``max_size``, and none of them is held in memory.
    """
    report = Report()
    if public_key_file is None and expected_fpr is None:
        report.add("signature", False, UNPINNED)
        return report
    home = gnupghome or Path(os.environ.get("GNUPGHOME") or Path.home() / ".gnupg")
    with tempfile.TemporaryDirectory(prefix="secops-bundle-") as tmp:
        work = Path(tmp)
        copy = _copy_in(report, path, work / "in" / path.name, max_size)
        if copy is None or not _check_signature(
                report, copy, path.name, sig_path or Path(f"{path}.asc"), home,
                public_key_file, expected_fpr, work):
            return report
        tar_gz = copy if _is_gzip(copy) else _decrypt(report, copy, path.name, home, max_size)
        if tar_gz is None:
            return report
        top = _unpack(report, tar_gz, work / "unpacked", Limits(max_total=max_size))
        tar_gz.unlink()
        if top is None:
            return report
        _check_sums(report, top)
        _check_custody(report, top)
        ok, detail = check_excerpt(top / "audit", top / "keys" / "office-ed25519.pub",
                                   audit_roots)
        report.add("audit-excerpt", ok, detail)
        if report.signer is not None:
            _check_claimed_signer(report, top)
    return report


def _copy_in(report: Report, path: Path, dest: Path, cap: int) -> Path | None:
    """The bundle copied into the work folder, so that what is checked is what was read;
    a file beyond the cap is refused unread. The file must be a regular file (not a fifo
    or a device that never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise UsageError(f"cannot read the bundle {path}: {e.strerror}") from None
    with open(fd, "rb") as src:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"the bundle {path} is not a regular file")
        if st.st_size > cap:
            report.add("unpack", False, f"{path.name} is {st.st_size} bytes, more than the "
                       f"{human(cap)} cap: refused unread{_RAISE}")
            return None
        ensure_private_dir(dest.parent)
        with _new_file(dest) as out:
            copied = _copy_capped(src, out, cap)
    if copied is None:
        report.add("unpack", False, f"{path.name} grew beyond the {human(cap)} cap while it "
                   "was read: refused")
        return None
    return dest


def _copy_capped(src: IO[bytes], dst: IO[bytes], cap: int) -> int | None:
    """Bytes copied, or None once more than ``cap`` were offered (the rest is not read)."""
    total = 0
    while chunk := src.read(1 << 20):
        total += len(chunk)
        if total > cap:
            return None
        dst.write(chunk)
    return total


def _new_file(path: Path) -> IO[bytes]:
    """A new private file: never an existing one, never through a link."""
    return open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                "wb")


def _read_capped(path: Path, limit: int) -> bytes:
    """A regular file read whole when it is at most ``limit`` bytes (ValueError if not; a
    fifo or a device is not waited on)."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY), "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {human(limit)}")
    return data


def _read_text(path: Path, limit: int = MAX_TEXT) -> str:
    """A small text file of the bundle, read whole only when it is small (ValueError if not,
    or if it is not UTF-8)."""
    return _read_capped(path, limit).decode("utf-8")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _check_signature(report: Report, data: Path, name: str,  # noqa: PLR0917
                     sig_path: Path, home: Path, key_file: Path | None, expected: str | None,
                     work: Path) -> bool:
    """The detached signature over ``data`` (the copy of the bundle ``name``) is by the
    pinned office key: the one key in ``key_file``, or the key ``expected`` in ``home``."""
    try:
        signature = _read_capped(sig_path, MAX_SIGNATURE)
    except OSError as e:
        return report.add("signature", False, f"no signature file {sig_path}: {e.strerror}")
    except ValueError as e:
        return report.add("signature", False, f"{e}: not a detached signature")
    problem = _signature_packets(signature)
    if problem is not None:
        return report.add("signature", False, f"{sig_path.name}: {problem}: not a detached "
                          "signature (not given to gpg)")
    office = _pinned(report, key_file, expected, work / "gnupg")
    if office is None:
        return False
    if key_file is not None:
        home = work / "gnupg"
    try:
        with _gpg_home(home, temporary=key_file is not None) as gpg:
            v = gpg.verify_detached(signature, data)
    except SecopsError as e:
        return report.add("signature", False,
                          f"gpg could not check the signature: {e.message}")
    who = v.fingerprint or v.key_id or "an unknown key"
    pinned = ", ".join(sorted(office))
    if not v.valid:
        if v.status == "no public key" and _is_office(v.fingerprint, v.key_id, office):
            detail = f"the office key {pinned} is not in {home}: import office-gpg.asc " \
                     "there, or pass the file: --office-key office-gpg.asc"
        elif v.status == "no public key":
            detail = f"signed by another key ({who}), not by the office key ({pinned})"
        elif v.status == "signature bad":
            detail = f"BAD signature: {name} was changed after it was signed by {who}"
        else:
            detail = f"no valid signature ({v.status or 'unreadable'}; key {who})"
        return report.add("signature", False, detail)
    if v.fingerprint not in office:
        return report.add("signature", False,
                          f"signed by {who}, not by the office key ({pinned})")
    report.signer = v.fingerprint
    return report.add("signature", True, f"good signature by the office key: {v.fingerprint}")


def _signature_packets(data: bytes) -> str | None:
    """What is wrong with a detached signature's packets, or None when it holds signature
    packets (tag 2) only. gpg inflates a compressed packet in a "signature" file to its end
    before it says there is no signature: minutes of work from a few KiB, before the signer
    is known."""
    raw = _dearmor(data) if data.lstrip()[:5] == b"-----" else data
    if raw is None:
        return "unreadable ASCII armor"
    pos, count = 0, 0
    while pos < len(raw):
        first = raw[pos]
        if not first & 0x80:
            return "not OpenPGP data"
        new_format = bool(first & 0x40)
        tag = first & 0x3F if new_format else (first >> 2) & 0x0F
        if tag != 2:
            return f"an OpenPGP packet of type {tag}, not a signature"
        if new_format:
            n = raw[pos + 1] if pos + 1 < len(raw) else 0
            if n < 192:
                head, length = 2, n
            elif n < 224 and pos + 2 < len(raw):
                head, length = 3, ((n - 192) << 8) + raw[pos + 2] + 192
            elif n == 255:
                head, length = 6, int.from_bytes(raw[pos + 2:pos + 6], "big")
            else:                             # partial lengths: never a signature
                return "a streamed OpenPGP packet"
        else:
            if first & 3 == 3:
                return "an OpenPGP packet of unknown length"
            head = 1 + (1, 2, 4)[first & 3]
            length = int.from_bytes(raw[pos + 1:pos + head], "big")
        pos, count = pos + head + length, count + 1
    return None if count and pos == len(raw) else "a truncated or empty signature"


def _dearmor(data: bytes) -> bytes | None:
    """The packets of one ASCII-armored ``PGP SIGNATURE`` block, nothing else around it."""
    import base64
    import binascii

    lines = [ln.strip() for ln in data.decode("ascii", "replace").strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN PGP SIGNATURE-----" \
            or lines[-1] != "-----END PGP SIGNATURE-----":
        return None
    body = lines[1:-1]
    if "" in body:                            # armor headers end at the first blank line
        body = body[body.index("") + 1:]
    if body and body[-1].startswith("="):     # the CRC-24 line
        body = body[:-1]
    try:
        return base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_office(fpr: str | None, key_id: str, office: set[str]) -> bool:
    return fpr in office or (bool(key_id) and any(f.endswith(key_id.upper())
                                                  for f in office))


def _pinned(report: Report, key_file: Path | None, expected: str | None,
            home: Path) -> set[str] | None:
    """The office key's fingerprint: from the key file (which must hold exactly one key) or
    as given; None (and a failed check) when the key file is unusable."""
    fpr = expected.replace(" ", "").upper() if expected else None
    if key_file is None:
        return {fpr} if fpr else None
    try:
        armored = _read_capped(key_file, MAX_KEY_FILE).decode("utf-8")
        keys = Gpg(home).import_keys(armored)
    except (OSError, ValueError, SecopsError) as e:
        report.add("signature", False, f"the office key file {key_file} is unusable: {e}")
        return None
    if len(keys) != 1:
        report.add("signature", False, f"the office key file {key_file} holds {len(keys)} "
                   "keys; the office's office-gpg.asc holds exactly one")
        return None
    if fpr is not None and keys[0] != fpr:
        report.add("signature", False, f"the key in {key_file} is {keys[0]}, not {fpr}")
        return None
    return set(keys)


def _decrypt(report: Report, src: Path, name: str, home: Path, cap: int) -> Path | None:
    """The plaintext, streamed by gpg into the work folder and stopped at the cap."""
    out = src.parent.parent / "plain.tar.gz"
    try:
        done = Gpg(home).decrypt_file(src, out, max_bytes=cap)
    except SecopsError as e:
        report.add("decrypt", False, f"cannot decrypt {name}: {e.message}")
        return None
    finally:
        src.unlink(missing_ok=True)   # only the plaintext is needed from here on
    if done.truncated:
        report.add("decrypt", False, f"{name} decrypts to more than {human(cap)}: gpg was "
                   f"stopped there and nothing was unpacked{_RAISE}")
        return None
    report.add("decrypt", True, f"decrypted with the key in {home} ({done.size} bytes)")
    return out


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


def _unpack(report: Report, source: Path, dest: Path, limits: Limits) -> Path | None:
    """Extract the ``.tar.gz`` at ``source`` into ``dest``: regular files and folders only,
    all in one top folder, each file new (O_EXCL|O_NOFOLLOW). The archive is first walked
    header by header within ``limits`` (tarscan), then its members as tarfile reads them are
    compared with that walk and their names checked; only then is anything written."""
    try:
        if not _is_gzip(source):
            return _refused(report, "not a .tar.gz (no gzip header)")
        with source.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            walk = tarscan.scan(gz, limits)
        if walk.problem is not None:
            return _refused(report, walk.problem)
        with source.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz, \
                tarfile.open(fileobj=gz, mode="r:") as tar:
            members = tar.getmembers()
            problem, top = _vet(members, walk.members)
            if problem is not None or top is None:
                return _refused(report, problem or "the bundle has no single top folder")
            try:
                _extract(tar, members, dest)
            except OSError as e:
                return _refused(report, f"could not unpack into {dest}: {e}")
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as e:
        return _refused(report, f"not a readable .tar.gz: {e}")
    files = [m for m in members if m.isreg()]
    report.add("unpack", True, f"{top}/: {len(files)} regular files "
               f"({sum(m.size for m in files)} bytes) and {len(members) - len(files)} "
               "folders, all inside one folder")
    return dest / top


def _refused(report: Report, detail: str) -> Path | None:
    report.add("unpack", False, detail)
    return None


def _vet(members: list[tarfile.TarInfo], walked: list[tarscan.Member]
         ) -> tuple[str | None, str | None]:
    """(problem, top folder): the members tarfile read are the ones walked, each name is
    safe, no path is given twice or both as a file and a folder, and all share one top
    folder. Checked before anything is written."""
    if len(members) != len(walked):
        return (f"tarfile reads {len(members)} members where the headers hold "
                f"{len(walked)}: refused"), None
    tops: set[str] = set()
    files: set[str] = set()
    dirs: set[str] = set()        # every folder, named or implied by a path inside it
    named: set[str] = set()       # the folders that have a member of their own
    for m, w in zip(members, walked, strict=True):
        same = (m.isdir() and w.kind == "dir") or \
            (m.type == tarfile.REGTYPE and w.kind == "file" and m.size == w.size)
        if not same:
            return f"member {m.name!r} reads differently from its header: refused", None
        problem = _refuse(m, tops)
        if problem is not None:
            return problem, None
        name = m.name.rstrip("/")
        parts = name.split("/")
        above = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if name in files or above & files or name in (named if m.isdir() else dirs):
            return f"member {name!r}: a path given twice, or as a file and a folder", None
        dirs |= above
        (named if m.isdir() else files).add(name)
        if m.isdir():
            dirs.add(name)
    if len(tops) != 1 or next(iter(tops)) in files:
        return None, None
    return None, tops.pop()


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    ensure_private_dir(dest)
    for m in members:
        target = dest / m.name.rstrip("/")
        if m.isdir():
            ensure_private_dir(target)
            continue
        ensure_private_dir(target.parent)
        src = tar.extractfile(m)
        assert src is not None
        with _new_file(target) as f:
            shutil.copyfileobj(src, f, 1 << 20)


def _refuse(m: tarfile.TarInfo, tops: set[str]) -> str | None:
    name = m.name.rstrip("/") if m.isdir() else m.name
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        return f"member {name!r}: absolute or escaping path refused"
    if "\0" in name:
        return f"member {name!r}: a NUL in the name refused"
    if len(os.fsencode(name)) > 4096 or any(len(os.fsencode(p)) > 255 for p in parts):
        return f"member {name[:80]!r}...: a name longer than a file system allows"
    if not (m.isreg() or m.isdir()) or m.type not in (tarfile.REGTYPE, tarfile.DIRTYPE):
        return f"member {name!r}: links, devices and other special files are refused"
    tops.add(parts[0])
    if len(tops) > 1:
        return f"member {name!r}: outside the bundle's top folder"
    return None


def _check_sums(report: Report, top: Path) -> None:
    try:
        text = _read_text(top / SUMS)
    except (OSError, ValueError) as e:
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
        elif sha256_file(top / name) != digest:
            problems.append(f"{name}: SHA-256 differs from {SUMS} (changed after signing)")
    problems += [f"{name}: not listed in {SUMS}" for name in sorted(present - set(listed))]
    report.add("sha256sums", not problems,
               "; ".join(problems) or f"{len(listed)} files match {SUMS}, none unlisted")


def _check_custody(report: Report, top: Path) -> None:
    from secops.playbooks.evidence import CUSTODY, verify_custody

    head = None
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, RecursionError):
        for t in json.loads(_read_text(top / "timeline.json")):
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
        claim = json.loads(_read_text(top / "report.json"))["signature"]
        if not isinstance(claim, dict):
            raise TypeError("its 'signature' is not an object")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        report.add("report-signer", False, f"report.json is unreadable: {e}")
        return
    if not claim.get("signed") or claim.get("gpg_fingerprint") != report.signer:
        report.add("report-signer", False, f"the report names signing key "
                   f"{claim.get('gpg_fingerprint')}, but the bundle is signed by "
                   f"{report.signer}")
        return
    report.add("report-signer", True, "the report names the key that signed the bundle")
