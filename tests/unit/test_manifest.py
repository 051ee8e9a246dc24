"""Manifests: scanning with the hash cache, signing, and every tamper case with its twin."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secops.errors import IntegrityError
from secops.manifest.cache import HashCache
from secops.manifest.model import Entry, Manifest, parse, sign, verify
from secops.manifest.scan import excluded, scan
from secops.manifest.store import in_snapshot

EXCLUDES = ["*.tmp", "~$*", ".~lock.*#"]


def make_tree(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "danh-sach.csv").write_text("STT,Họ và tên\n1,Lê Văn An\n")
    (root / "b.txt").write_text("biên bản")
    (root / "x.tmp").write_text("temp")
    (root / "a" / "~$sheet.xlsx").write_text("lock")


def test_scan_hashes_once_and_respects_excludes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_tree(root)
    cache = HashCache(tmp_path / "state.db")
    first = scan([str(root)], EXCLUDES, cache)
    assert sorted(Path(p).name for p in first.files) == ["b.txt", "danh-sach.csv"]
    assert first.hashed == 2
    digest = first.files[str(root / "b.txt")][1]
    assert digest == hashlib.sha256("biên bản".encode()).hexdigest()
    second = scan([str(root)], EXCLUDES, cache)
    assert second.hashed == 0 and second.files == first.files  # unchanged metadata: no re-hash
    (root / "b.txt").write_text("biên bản đã sửa")
    third = scan([str(root)], EXCLUDES, cache)
    assert third.hashed == 1
    os.remove(root / "b.txt")
    assert str(root / "b.txt") not in scan([str(root)], EXCLUDES, cache).files


def test_excluded_patterns() -> None:
    assert excluded("x.tmp", "/d/x.tmp", EXCLUDES)
    assert excluded(".~lock.a.ods#", "/d/.~lock.a.ods#", EXCLUDES)
    assert not excluded("a.csv", "/d/a.csv", EXCLUDES)
    assert excluded("a.csv", "/d/private/a.csv", ["/d/private/*"])


def manifest() -> Manifest:
    return Manifest("tan-ky", "2026-11-28T00:00:00Z", ("/srv/bau-cu",),
                    {"/srv/bau-cu/a.csv": Entry(10, 1, "ab" * 32)})


def test_signature_verifies_untouched_manifest() -> None:
    key = Ed25519PrivateKey.generate()
    data = manifest().canonical()
    verify(data, sign(data, key), key.public_key(), "m")  # the untouched twin
    assert parse(data, "m") == manifest()


def test_manifest_edited_after_signing_fails() -> None:
    key = Ed25519PrivateKey.generate()
    data = manifest().canonical()
    sig = sign(data, key)
    edited = data.replace(b"ab", b"cd", 1)
    with pytest.raises(IntegrityError, match="BAD SIGNATURE"):
        verify(edited, sig, key.public_key(), "m")


def test_signature_from_another_key_fails() -> None:
    office, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    data = manifest().canonical()
    with pytest.raises(IntegrityError, match="signed by another key"):
        verify(data, sign(data, other), office.public_key(), "m")


def test_garbage_is_not_a_manifest() -> None:
    with pytest.raises(IntegrityError, match="not a valid secops manifest"):
        parse(b'{"format": "other"}', "m")
    with pytest.raises(IntegrityError, match="unreadable"):
        verify(b"x", b"not json", Ed25519PrivateKey.generate().public_key(), "m")


def test_canonical_bytes_are_stable() -> None:
    assert manifest().canonical() == parse(manifest().canonical(), "m").canonical()


def test_a_snapshot_s_manifest_folder_is_found_in_either_layout() -> None:
    """Per target (``STATE/snapshot-manifest/TARGET``), and in snapshots made before
    (``STATE/snapshot-manifest``): with the state folder it was backed up from."""
    now = ["/srv/bau-cu", "/var/lib/secops/audit", "/var/lib/secops/snapshot-manifest/local"]
    before = ["/srv/bau-cu", "/var/lib/secops/audit", "/var/lib/secops/snapshot-manifest"]
    assert in_snapshot(now) == ("/var/lib/secops/snapshot-manifest/local", "/var/lib/secops")
    assert in_snapshot(before) == ("/var/lib/secops/snapshot-manifest", "/var/lib/secops")
    assert in_snapshot(["/srv/bau-cu", "/var/lib/secops/audit"]) is None
