"""``secops bundle verify`` against a forger and hostile input (issue 12, item 7).

The forger makes a bundle and signs it with a key that is not the office's; hostile input is
a bundle that *is* signed by the pinned key (an insider on the office server, or a stolen
key) but whose contents are built to exhaust the verifier: a decryption bomb, a tar with
gigantic extended headers, members bigger than the disk, too many members, links and
special files. Each is checked by the real CLI in a subprocess whose peak memory (wait4),
largest file (RLIMIT_FSIZE) and TMPDIR are watched; each has its untouched twin, a genuine
bundle made by ``secops report incident``, which still verifies with exit 0.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from integration import test_incident_bundle as bundle_tests
from integration.servers import GpgHome
from integration.test_incident_bundle import Made, gpg, repack, resum
from secops.reports.bundle import pack
from secops.reports.bundle_verify import Report, verify_bundle

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

# the real office and its bundle (``secops report incident``), and a fresh police GNUPGHOME
made = bundle_tests.made
police_home = bundle_tests.police_home

MiB, GiB = 1 << 20, 1 << 30
RSS_BOUND = GiB        # generous: the verifier needs ~100 MiB; the bombs needed 2-5 GiB
FSIZE = 256 * MiB      # no file the verifier writes may grow beyond this (SIGXFSZ kills it)
BLOCK = 512

# A small launcher: RLIMIT_FSIZE for the CLI, which it runs and waits for, then its peak RSS
# (RUSAGE_CHILDREN: the CLI and the programs it waited for). Not measured from pytest itself:
# a child forked from this big process would start with this process's RSS as its peak.
_LAUNCHER = """
import os, resource, subprocess, sys
limit, report = int(sys.argv[1]), sys.argv[2]
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
code = subprocess.call([sys.executable, "-m", "secops", *sys.argv[3:]])
with open(report, "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class Run:
    code: int
    out: str
    err: str
    max_rss: int      # bytes: the verifier, and the programs it waited for
    left: list[str]   # what it left behind in its TMPDIR

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.out)
        return doc

    def checks(self) -> dict[str, str]:
        return {c["name"]: c["detail"] for c in self.json()["checks"]}

    def failed(self) -> set[str]:
        return {c["name"] for c in self.json()["checks"] if not c["ok"]}


def police_verify(bundle: Path, *args: str, home: Path, fsize: int = FSIZE,
                  as_json: bool = True) -> Run:
    """``secops bundle verify`` as the police run it: no config, a TMPDIR of its own."""
    tmpdir, rss = home / "tmp", home / "rss"
    tmpdir.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
           "TMPDIR": str(tmpdir)}
    argv = [sys.executable, "-c", _LAUNCHER, str(fsize), str(rss), "bundle", "verify",
            str(bundle), *args, *(["--json"] if as_json else [])]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900,
                          check=False)
    run = Run(done.returncode, done.stdout, done.stderr, int(rss.read_text()) * 1024,
              sorted(os.listdir(tmpdir)))
    assert "Traceback" not in run.err, short(run.err[-3000:], 3000)
    return run


def refused(run: Run, check: str, why: str) -> None:
    """Exit 1, ``check`` failed saying ``why``; nothing after it ran; memory bounded and
    nothing left in TMPDIR."""
    assert run.code == 1, (run.code, short(run.out), short(run.err))
    checks = run.checks()
    assert run.failed() == {check}, short(str(checks))
    assert list(checks)[-1] == check, short(str(checks))  # it stopped there
    assert why in checks[check], short(checks[check])
    assert run.max_rss < RSS_BOUND, f"peak RSS {run.max_rss >> 20} MiB"
    assert run.left == [], run.left


def short(text: str, n: int = 600) -> str:
    """An assertion message of bounded size (a failing verifier may print gigabytes)."""
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def office_signed(made: Made, path: Path) -> Path:
    """Signed by the genuine office key: the attacker is an insider on the office server."""
    done = gpg(made.office.state / "gnupg", "--yes", "--detach-sign", "--armor", "--output",
               f"{path}.asc", str(path))
    assert done.returncode == 0, done.stderr
    return path


# -- building hostile archives ---------------------------------------------------------------

class GzStream:
    """A gzip stream written piece by piece; ``fill`` adds gigabytes of one byte cheaply (after
    a few chunks deflate's output for the same chunk repeats, so it is copied, not redone)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._parts = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
        self._crc = 0
        self._size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH))
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def fill(self, byte: bytes, n: int) -> None:
        chunk = byte * MiB
        full, rest = divmod(n, MiB)
        done, seen = 0, b""
        while done < full:
            if done < 4:
                before = len(self._parts)
                self.write(chunk)
                out = b"".join(self._parts[before:])
                repeats, seen = out == seen, out
            elif repeats:
                self._parts.append(seen)
                self._crc = zlib.crc32(chunk, self._crc)
                self._size += MiB
            else:
                self.write(chunk)
            done += 1
        self.write(byte * rest)

    def pad(self) -> None:
        self.write(b"\0" * (-self._size % BLOCK))

    def close(self, path: Path) -> Path:
        self._parts.append(self._z.flush(zlib.Z_FINISH))
        self._parts.append(zlib.crc32(b"", self._crc).to_bytes(4, "little")
                           + (self._size & 0xFFFFFFFF).to_bytes(4, "little"))
        path.write_bytes(b"".join(self._parts))
        return path


Format = Literal[0, 1, 2]   # tarfile.USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT


def header(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0,
           fmt: Format = tarfile.USTAR_FORMAT, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.linkname = kind, size, 0, link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def rechecksum(block: bytes) -> bytes:
    b = bytearray(block)
    b[148:156] = b" " * 8
    b[148:155] = b"%06o\0" % sum(b)
    return bytes(b)


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n += 1
    return str(n).encode() + body


END = b"\0" * (2 * BLOCK)


# -- 1. the signer must be pinned ------------------------------------------------------------

def forge(made: Made, tmp_path: Path, signer: GpgHome) -> Path:
    """The office's bundle with the voter count changed and report.json naming the forger's
    key, signed by the forger."""
    def edit(top: Path) -> None:
        html = top / "report.html"
        html.write_text(html.read_text(encoding="utf-8").replace("30", "3"), encoding="utf-8")
        doc = json.loads((top / "report.json").read_text(encoding="utf-8"))
        doc["signature"]["gpg_fingerprint"] = signer.fingerprint
        (top / "report.json").write_text(json.dumps(doc), encoding="utf-8")
        resum(top)

    out = repack(made, tmp_path, edit)
    done = signer.run("--yes", "--detach-sign", "--armor", "--output", f"{out}.asc", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def keyring(police_home: Path, made: Made, custodian_gpg: GpgHome) -> Path:
    """The police's keyring: the office key and other keys (here the custodian's)."""
    other = police_home / "other.asc"
    other.write_text(custodian_gpg.export_public())
    for key in (made.office_key, other):
        assert gpg(police_home, "--import", str(key)).returncode == 0
    return police_home


def test_without_office_key_nothing_verifies(made: Made, tmp_path: Path, keyring: Path,
                                             custodian_gpg: GpgHome) -> None:
    forged = forge(made, tmp_path, custodian_gpg)
    for bundle in (forged, made.bundle):   # the forgery, and even the genuine bundle
        run = police_verify(bundle, "--gnupghome", str(keyring), home=tmp_path, as_json=False)
        assert run.code == 2, (run.code, short(run.out), short(run.err))
        assert "--office-key" in run.err and "export-public" in run.err, run.err
        assert "in person" in run.err and "verified" not in run.out
    # the library call without a pinned key: a failed signature check, nothing else
    report = verify_bundle(forged, gnupghome=keyring)
    assert not report.ok and [c.name for c in report.checks] == ["signature"]
    assert "not pinned" in report.checks[0].detail


def test_a_compressed_packet_posing_as_the_signature_is_refused_unread(
        made: Made, tmp_path: Path, police_gpg: GpgHome) -> None:
    """gpg would inflate it to its end (5 s of CPU per GiB, 45 GiB fit in the 64 KiB a
    signature file may have) before saying it holds no signature; no key is needed."""
    bundle = tmp_path / made.bundle.name
    bundle.write_bytes(made.bundle.read_bytes())
    with subprocess.Popen(["head", "-c", str(128 * MiB), "/dev/zero"],
                          stdout=subprocess.PIPE) as zero:
        done = subprocess.run(police_gpg.gpg_argv(
            "--store", "--armor", "--compress-algo", "bzip2", "-z", "9", "--output", "-"),
            stdin=zero.stdout, env=police_gpg.env(), capture_output=True, timeout=120,
            check=False)
    assert done.returncode == 0, done.stderr
    posing = done.stdout.replace(b"PGP MESSAGE", b"PGP SIGNATURE")
    assert len(posing) < 4096
    Path(f"{bundle}.asc").write_bytes(posing)
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "signature", "type 8, not a signature")


def test_a_forgery_fails_against_the_pinned_key_and_stops(made: Made, tmp_path: Path,
                                                          keyring: Path,
                                                          custodian_gpg: GpgHome) -> None:
    forged = forge(made, tmp_path, custodian_gpg)
    two_keys = tmp_path / "two-keys.asc"   # a key file "from the office" with a second key
    two_keys.write_text(made.office_key.read_text() + custodian_gpg.export_public())
    for pin, why in ((["--office-key", made.fingerprint, "--gnupghome", str(keyring)],
                      f"signed by {custodian_gpg.fingerprint}, not by the office key"),
                     (["--office-key", str(made.office_key)], "another key"),
                     (["--office-key", str(two_keys)], "holds 2 keys")):
        run = police_verify(forged, *pin, home=tmp_path)
        refused(run, "signature", why)
    # the twin: the genuine bundle, pinned the same ways
    for pin in (["--office-key", made.fingerprint, "--gnupghome", str(keyring)],
                ["--office-key", str(made.office_key)]):
        run = police_verify(made.bundle, *pin, home=tmp_path)
        assert run.code == 0, short(run.out)
        assert made.fingerprint in run.checks()["signature"]


# -- 2. nothing is decrypted before the signature holds, and never beyond the cap --------------

@pytest.fixture(scope="module")
def decryption_bomb(police_gpg: GpgHome, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros, compressed by gpg to about 1 MiB, encrypted to the police."""
    out = tmp_path_factory.mktemp("bomb") / "INC-bomb.tar.gz.gpg"
    with subprocess.Popen(["head", "-c", str(GiB), "/dev/zero"], stdout=subprocess.PIPE) as zero:
        done = subprocess.run(police_gpg.gpg_argv(
            "--trust-model", "always", "--compress-algo", "zlib", "-z", "9", "--encrypt",
            "--recipient", police_gpg.fingerprint, "--output", str(out)),
            stdin=zero.stdout, env=police_gpg.env(), capture_output=True, timeout=300,
            check=False)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size < 2 * MiB
    return out


def test_an_unsigned_decryption_bomb_is_never_decrypted(made: Made, tmp_path: Path,
                                                        decryption_bomb: Path,
                                                        police_gpg: GpgHome) -> None:
    bomb = tmp_path / decryption_bomb.name
    bomb.write_bytes(decryption_bomb.read_bytes())
    Path(f"{bomb}.asc").write_bytes(made.signature.read_bytes())  # the office's, not for this
    run = police_verify(bomb, "--office-key", str(made.office_key), "--gnupghome",
                        str(police_gpg.home), home=tmp_path)
    refused(run, "signature", "BAD signature")
    assert list(run.checks()) == ["signature"]  # no decrypt, no unpack


def test_a_signed_decryption_bomb_is_stopped_at_the_cap(made: Made, tmp_path: Path,
                                                        decryption_bomb: Path,
                                                        police_gpg: GpgHome) -> None:
    bomb = tmp_path / decryption_bomb.name
    bomb.write_bytes(decryption_bomb.read_bytes())
    run = police_verify(office_signed(made, bomb), "--office-key", str(made.office_key),
                        "--gnupghome", str(police_gpg.home), "--max-size", "64M",
                        home=tmp_path)
    refused(run, "decrypt", "decrypts to more than 64 MiB")
    assert "signature" not in run.failed()


# -- 3. nothing is unpacked beyond the caps -----------------------------------------------------

@pytest.mark.parametrize("kind,why", [(tarfile.XHDTYPE, "PAX"),
                                      (tarfile.GNUTYPE_LONGNAME, "GNU long-name"),
                                      (tarfile.GNUTYPE_LONGLINK, "GNU long-link")])
def test_a_gigantic_extended_header_is_refused_unread(made: Made, tmp_path: Path,
                                                      kind: bytes, why: str) -> None:
    gz = GzStream()
    gz.write(header("././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink", kind,
                    GiB))
    prefix = b"1073741824 comment=" if kind == tarfile.XHDTYPE else b"INC-1/"
    gz.write(prefix)
    gz.fill(b"a", GiB - len(prefix) - 1)
    gz.write(b"\n")
    gz.write(header("INC-1/report.md") + END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    assert bundle.stat().st_size < 2 * MiB
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", f"a {why} header of 1073741824 bytes")


def test_a_member_bigger_than_the_cap_is_refused_before_writing(made: Made,
                                                               tmp_path: Path) -> None:
    gz = GzStream()
    gz.write(header("INC-1", tarfile.DIRTYPE))
    gz.write(header("INC-1/zeros", size=3 * GiB))
    gz.fill(b"\0", 3 * GiB)
    gz.write(END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", "unpacks to more than 2 GiB")


def test_members_adding_up_beyond_the_cap_are_refused(made: Made,
                                                      tmp_path: Path) -> None:
    gz = GzStream()
    gz.write(header("INC-1", tarfile.DIRTYPE))
    for n in range(3):
        gz.write(header(f"INC-1/part{n}", size=30 * MiB))
        gz.fill(b"\0", 30 * MiB)
    gz.write(END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), "--max-size", "64M",
                        home=tmp_path)
    refused(run, "unpack", "unpacks to more than 64 MiB")


def test_too_many_members_are_refused(made: Made, tmp_path: Path) -> None:
    gz = GzStream()
    gz.write(header("INC-1", tarfile.DIRTYPE))
    gz.write(b"".join(header(f"INC-1/f{n:05}") for n in range(20_000)) + END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", "more than 10000 members")


def test_a_chain_of_extended_headers_is_refused(made: Made, tmp_path: Path) -> None:
    gz = GzStream()
    name = b"INC-1/x".ljust(BLOCK, b"\0")
    gz.write((header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 8) + name) * 5000)
    gz.write(header("INC-1/x") + END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", "more than one GNU long-name header")


def test_a_pax_header_full_of_digits_is_refused(made: Made, tmp_path: Path) -> None:
    # Python 3.11's tar reader takes quadratic time on long runs of digits (CVE-2024-6232):
    # 60 KB of them cost ~3 s per header
    record = pax_record("path", b"INC-1/" + b"1" * 60_000)
    gz = GzStream()
    for n in range(4):
        gz.write(header(f"PaxHeader/{n}", tarfile.XHDTYPE, len(record)) + record)
        gz.pad()
        gz.write(header(f"INC-1/{n}"))
    gz.write(END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", "digits")


def test_a_sparse_member_is_refused(made: Made, tmp_path: Path) -> None:
    """An old GNU sparse member: no data, 1 GiB of zeros when extracted."""
    block = bytearray(header("INC-1/holes", tarfile.GNUTYPE_SPARSE, 0, tarfile.GNU_FORMAT))
    block[386:398] = b"%011o\0" % 0     # one sparse (offset, numbytes)
    block[398:410] = b"%011o\0" % 0
    block[483:495] = b"%011o\0" % GiB   # the real size
    gz = GzStream()
    gz.write(header("INC-1", tarfile.DIRTYPE) + rechecksum(bytes(block)) + END)
    bundle = office_signed(made, gz.close(tmp_path / "INC-1.tar.gz"))
    run = police_verify(bundle, "--office-key", str(made.office_key), home=tmp_path)
    refused(run, "unpack", "links, devices")


def test_a_bundle_file_bigger_than_the_cap_is_refused_unread(made: Made,
                                                            tmp_path: Path) -> None:
    big = tmp_path / made.bundle.name
    big.write_bytes(made.bundle.read_bytes() + os.urandom(3 * MiB))
    office_signed(made, big)
    run = police_verify(big, "--office-key", str(made.office_key), "--max-size", "1M",
                        home=tmp_path)
    refused(run, "unpack", "more than the 1 MiB cap")
    assert list(run.checks()) == ["unpack"]


# -- the untouched twins ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def encrypted(made: Made, police_gpg: GpgHome,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("police-key") / "police.asc"
    key.write_text(police_gpg.export_public())
    done = made.report("--encrypt-to", str(key), "--json")
    assert done.code == 0, done.err
    return Path(done.json()["bundle"])


@pytest.mark.parametrize("options", [[], ["--max-size", "64M"]], ids=["default", "64M"])
@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_the_genuine_bundle_still_verifies(made: Made, encrypted: Path,  # noqa: PLR0917
                                           police_gpg: GpgHome, tmp_path: Path, kind: str,
                                           options: list[str]) -> None:
    bundle = made.bundle if kind == "plain" else encrypted
    extra = ["--gnupghome", str(police_gpg.home)] if kind == "encrypted" else []
    run = police_verify(bundle, "--office-key", str(made.office_key), *extra, *options,
                        home=tmp_path)
    assert run.code == 0, (short(run.out), short(run.err))
    expected = {"signature", "unpack", "sha256sums", "custody", "audit-excerpt",
                "report-signer"} | ({"decrypt"} if kind == "encrypted" else set())
    assert set(run.checks()) == expected and run.failed() == set()
    assert run.max_rss < RSS_BOUND and run.left == []


# -- 4. the unpacker, property-tested -----------------------------------------------------------

def unpack(source: Path, dest: Path) -> tuple[Report, Path | None]:
    from secops.reports.bundle_verify import _unpack
    from secops.reports.tarscan import Limits

    report = Report()
    top = _unpack(report, source, dest, Limits(max_total=4 * MiB, max_members=64))
    return report, top


HOSTILE_NAMES = ["INC-1/../../escaped", "../escaped", "{abs}/escaped", "INC-1/a\\..\\..\\x",
                 "INC-1/a\0b", "INC-1/" + "x" * 300, "INC-1/" + "/".join(["d"] * 150),
                 "INC-1/./x", "INC-1//x", "", ".", "..", "INC-1/", "OTHER/x", "INC-1/..",
                 "INC-1/ü/ß.txt", "INC-1/\udcff", "INC-1/a\nb", "/", "INC-1/x/"]
KINDS = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE,
         tarfile.GNUTYPE_SPARSE]
names = st.one_of(st.sampled_from(HOSTILE_NAMES),
                  st.lists(st.sampled_from(["a", "b", "ü", "..", ".", "", "x" * 120]),
                           min_size=0, max_size=4).map(lambda p: "/".join(["INC-1", *p])),
                  st.text(max_size=200))
extended = st.one_of(
    st.none(), st.none(), st.none(),
    st.tuples(st.just(tarfile.XHDTYPE), st.lists(st.tuples(
        st.sampled_from(["path", "size", "linkpath", "GNU.sparse.map", "comment",
                         "hdrcharset", "mtime", "uid"]),
        st.one_of(st.integers(-5, 10**6).map(lambda n: str(n).encode()),
                  names.map(lambda s: s.encode("utf-8", "surrogateescape")))), max_size=3)),
    st.tuples(st.sampled_from([tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                               tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE]),
              names.map(lambda s: [("", s.encode("utf-8", "surrogateescape"))])))
members = st.lists(st.tuples(names,
                             st.one_of(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE]),
                                       st.sampled_from(KINDS)),
                             st.integers(0, 3000),
                             st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                                              tarfile.PAX_FORMAT]),
                             st.sampled_from(["", "/etc/passwd", "../../escaped", "INC-1/a"]),
                             extended),
                   min_size=1, max_size=6)


def hostile_tar(root: Path, spec: list[Any]) -> bytes:
    out = [header("INC-1", tarfile.DIRTYPE)]
    for raw_name, kind, size, fmt, link, ext in spec:
        name = raw_name.replace("{abs}", str(root / "abs"))
        if ext is not None:
            ext_kind, records = ext
            data = b"".join(pax_record(k, v) if k else v for k, v in records)
            out.append(header("././@Ext", ext_kind, len(data)) + data
                       + b"\0" * (-len(data) % BLOCK))
        data_size = size if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else 0
        try:
            block = header(name, kind, data_size, fmt, link)
        except (ValueError, UnicodeError):
            block = header(name[:100].encode("utf-8", "replace")[:100].decode("utf-8", "ignore"),
                           kind, data_size, tarfile.GNU_FORMAT, link)
        out.append(block + os.urandom(data_size) + b"\0" * (-data_size % BLOCK))
    return b"".join(out) + END


def outside(root: Path, dest: Path, source: Path) -> list[Path]:
    """Everything under ``root`` that is neither the input (and what it was packed from, in
    ``root/src``) nor inside ``dest``."""
    allowed = {source, dest.parent, dest.parent.parent, dest, root / "src"}
    return [p for p in root.rglob("*") if p not in allowed and dest not in p.parents
            and root / "src" not in p.parents]


def assert_confined(report: Report, top: Path | None, root: Path, dest: Path,
                    source: Path) -> None:
    assert [c.name for c in report.checks] == ["unpack"]
    assert report.checks[0].ok == (top is not None)
    event("unpacked" if top is not None else report.checks[0].detail.split(":")[-1][:40])
    assert outside(root, dest, source) == []
    for p in dest.rglob("*"):
        mode = os.lstat(p).st_mode
        assert p.is_dir() or p.is_file(), p
        assert not p.is_symlink() and mode & 0o7000 == 0, p
    if top is not None:
        assert top.parent == dest
    else:   # refused before anything was written
        assert not dest.exists() or not any(dest.iterdir()), list(dest.rglob("*"))


PROPERTY = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROPERTY
@given(members)
def test_the_unpacker_never_escapes_and_never_raises(spec: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "in.tar.gz"
        source.write_bytes(gzip.compress(hostile_tar(root, spec), mtime=0))
        dest = root / "a" / "b" / "out"
        report, top = unpack(source, dest)
        assert_confined(report, top, root, dest, source)


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
                min_size=1, max_size=8), st.booleans(), st.booleans(), st.integers(0, 1 << 16))
def test_the_unpacker_survives_damaged_archives(edits: list[tuple[int, bytes]], fix: bool,
                                                truncate: bool, cut: int) -> None:
    """Bytes of a real bundle's tar overwritten (and, with ``fix``, every header's checksum
    made right again, so that the damage reaches the fields), or the tar cut short."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        files = {"report.md": root / "src" / "r", "evidence/a.json": root / "src" / "e",
                 "SHA256SUMS": root / "src" / "s"}
        for n, path in enumerate(files.values()):
            path.write_bytes(b"x" * (n * 700))
        pack("INC-1", files, 0, buf)
        raw = bytearray(gzip.decompress(buf.getvalue()))
        with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
            headers = {o for m in tar.getmembers() for o in (m.offset, m.offset_data - BLOCK)}
        for at, data in edits:
            pos = at % len(raw)
            raw[pos:pos + len(data)] = data
        for o in headers if fix else ():
            raw[o:o + BLOCK] = rechecksum(bytes(raw[o:o + BLOCK]))
        if truncate:
            del raw[cut % len(raw):]
        source = root / "in.tar.gz"
        source.write_bytes(gzip.compress(bytes(raw), mtime=0))
        dest = root / "a" / "b" / "out"
        report, top = unpack(source, dest)
        assert_confined(report, top, root, dest, source)


safe_part = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"),
                                  whitelist_characters="._-"), min_size=1, max_size=40
                    ).filter(lambda s: s not in (".", ".."))


@PROPERTY
@given(st.dictionaries(st.lists(safe_part, min_size=1, max_size=4).map("/".join),
                       st.binary(max_size=2000), min_size=1, max_size=12))
def test_a_well_formed_bundle_always_unpacks(contents: dict[str, bytes]) -> None:
    names = sorted(contents)
    # a name that is also a folder of another cannot be packed: drop such cases
    assume(not any(b.startswith(f"{a}/") for a in names for b in names))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        files: dict[str, Path] = {}
        for n, (name, data) in enumerate(sorted(contents.items())):
            files[name] = root / "src" / f"f{n}"
            files[name].write_bytes(data)
        source = root / "in.tar.gz"
        with source.open("wb") as f:
            pack("INC-1", files, 1_700_000_000, f)
        dest = root / "a" / "b" / "out"
        report, top = unpack(source, dest)
        assert_confined(report, top, root, dest, source)
        assert top is not None, report.checks
        found = {p.relative_to(top).as_posix(): p.read_bytes()
                 for p in top.rglob("*") if p.is_file()}
        assert found == contents

