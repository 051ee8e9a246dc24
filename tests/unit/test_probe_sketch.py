"""The probe's similarity sketch, entropy and text body check: what an honest edit keeps,
what encryption (whole or intermittent) takes away, and a baseline recorded by an older
version (its sketch is unknown, never "dissimilar", and ``fim scan`` measures it anew)."""

from __future__ import annotations

import dataclasses
import os
import random
from array import array
from pathlib import Path

import pytest

from integration.fimdata import encrypt, probe, record
from secops.fim.baseline import Baseline
from secops.fim.detect import changed_indicators
from secops.fim.probe import (
    FP_CHUNKS,
    FP_LINES,
    FP_LINES_BELOW,
    FP_WINDOW,
    SAMPLE,
    entropy,
    fingerprint,
    fingerprint_current,
    similarity,
)
from secops.fim.scan import run as run_scan

NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hữu Cường", "Phạm Đức Dũng", "Hoàng Minh Giang",
         "Võ Ngọc Hà", "Đặng Thanh Hải", "Bùi Quốc Hạnh")


def voter_rows(rng: random.Random, first: int, n: int) -> list[str]:
    return [f"{i},{rng.choice(NAMES)},{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/"
            f"{rng.randint(1940, 2006)},{rng.choice(('Nam', 'Nữ'))},0{rng.getrandbits(36):011d},"
            f"thôn {rng.randint(1, 9)}\n" for i in range(first, first + n)]


def big_csv(rows: int = 16_000, seed: int = 7) -> list[str]:
    """About 1 MB of a commune-wide voter list: well past the sketch window and the head."""
    return ["STT,Họ và tên,Ngày sinh,Giới tính,Số CCCD,Nơi thường trú\n",
            *voter_rows(random.Random(seed), 1, rows)]  # noqa: S311 - test data


def joined(lines: list[str]) -> bytes:
    return "".join(lines).encode("utf-8")


def intermittent(data: bytes) -> bytes:
    """Head 4 KiB and tail 64 KiB kept, 64 KiB of every 128 KiB between encrypted."""
    out = bytearray(data)
    at, end = 4096, len(out) - 65536
    while at < end:
        n = min(65536, end - at)
        out[at:at + n] = encrypt(bytes(out[at:at + n]))
        at += 131072
    return bytes(out)


def honest_edits(lines: list[str]) -> dict[str, bytes]:
    rng = random.Random(11)  # noqa: S311 - test data
    fixed = list(lines)
    for i in rng.sample(range(1, 1000), 12):  # a dozen corrections inside the window
        fixed[i] = fixed[i].replace("thôn", "xóm")
    inserted = [*lines[:40], *voter_rows(rng, 90_000, 3), *lines[40:]]  # rows near the top
    appended = [*lines, *voter_rows(rng, len(lines), 500)]
    deleted = [*lines[:200], *lines[260:]]
    return {"corrected": joined(fixed), "inserted": joined(inserted),
            "appended": joined(appended), "deleted": joined(deleted)}


def test_an_untouched_twin_is_the_same_probe() -> None:
    data = joined(big_csv())
    a, b = probe(data), probe(bytes(data))
    assert a == b
    assert a.ftype == "text" and a.parses
    assert a.fp[0] == FP_CHUNKS and fingerprint_current(a.fp)
    assert similarity(a.fp, b.fp) == 1.0
    assert changed_indicators(a.ftype, a.parses, a.entropy, a.fp, b) == []


@pytest.mark.parametrize("edit", ["corrected", "inserted", "appended", "deleted"])
def test_an_honest_edit_to_a_large_text_file_stays_similar(edit: str) -> None:
    lines = big_csv()
    before = record("/d/danh-sach.csv", joined(lines))
    after = probe(honest_edits(lines)[edit])
    sim = similarity(before.fp, after.fp)
    assert sim is not None and sim >= 0.5, (edit, sim)
    assert changed_indicators(before.ftype, before.parses, before.entropy, before.fp,
                              after) == []


def test_intermittent_encryption_of_a_large_text_file_is_dissimilar_and_broken() -> None:
    data = joined(big_csv())
    assert len(data) > 7 * 131072  # several encrypted blocks, past the head and the tail
    before, after = record("/d/danh-sach.csv", data), probe(intermittent(data))
    assert after.ftype == "text", "the head was kept: the type cannot tell"
    sim = similarity(before.fp, after.fp)
    assert sim is not None and sim < 0.05
    found = changed_indicators(before.ftype, before.parses, before.entropy, before.fp, after)
    assert "dissimilar" in found and "container_broken" in found


def test_whole_encryption_shares_nothing() -> None:
    data = joined(big_csv())
    before, after = record("/d/danh-sach.csv", data), probe(encrypt(data))
    assert similarity(before.fp, after.fp) == 0.0
    assert {"type_changed", "entropy_jump", "dissimilar"} <= set(
        changed_indicators(before.ftype, before.parses, before.entropy, before.fp, after))


def test_a_small_text_file_is_sketched_by_its_lines() -> None:
    lines = big_csv(40)
    data = joined(lines)
    assert len(data) < FP_LINES_BELOW
    fp = fingerprint(data)
    assert fp[0] == FP_LINES
    edited = joined([*lines[:10], "11,Lê Thị Mai,01/01/1990,Nữ,001234567890,thôn 3\n",
                     *lines[11:]])
    sim = similarity(fp, fingerprint(edited))
    assert sim is not None and sim > 0.6
    note = "\n".join(f"Your files are encrypted. Line {i}: pay in bitcoin." for i in range(30))
    assert similarity(fp, fingerprint(note.encode()[:len(data)])) == 0.0


def test_sketches_of_different_kinds_do_not_compare() -> None:
    """A file that grew across FP_LINES_BELOW: unknown, not dissimilar."""
    small = joined(big_csv(40))
    grown = joined(big_csv(400))
    assert fingerprint(small)[0] != fingerprint(grown)[0]
    assert similarity(fingerprint(small), fingerprint(grown)) is None


def test_the_sketch_reads_the_window_only() -> None:
    data = joined(big_csv())
    past = data[:FP_WINDOW] + encrypt(data[FP_WINDOW:])
    assert fingerprint(data) == fingerprint(past)


def old_sketch(data: bytes) -> bytes:
    """What a baseline recorded before sketches had a kind byte: newline-cut, bare uint32s."""
    import zlib
    hashes = set(map(zlib.crc32, data[:256 * 1024].split(b"\n")))
    hashes.discard(0)
    return array("I", sorted(hashes)[:32]).tobytes()


def test_an_old_baseline_sketch_is_unknown_not_dissimilar() -> None:
    data = joined(big_csv())
    old = old_sketch(data)
    assert len(old) == 128 and not fingerprint_current(old)
    assert similarity(old, probe(data).fp) is None
    assert similarity(probe(data).fp, old) is None
    before = dataclasses.replace(record("/d/danh-sach.csv", data), fp=old)
    replaced = probe("Hết rồi\n".encode() * 9000)  # rewritten from scratch: text still
    assert "dissimilar" not in changed_indicators(before.ftype, before.parses, before.entropy,
                                                  before.fp, replaced)
    assert fingerprint_current(b"")  # containers keep no sketch, in every version


def test_a_scan_measures_an_old_sketch_anew_and_reports_no_change(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "danh-sach.csv").write_bytes(joined(big_csv(2000)))
    (tree / "a.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n")
    base = Baseline(tmp_path / "state" / "state.db")
    try:
        run_scan([str(tree)], [], base, "baseline")
        path = str(tree / "danh-sach.csv")
        rec = base.get(path)
        assert rec is not None and fingerprint_current(rec.fp)
        base.apply([dataclasses.replace(rec, fp=old_sketch(joined(big_csv(2000))))], [])
        report = run_scan([str(tree)], [], base, "scan")
        assert report.hashed == 1 and report.changes == []  # the CSV only, once
        again = base.get(path)
        assert again is not None and again.fp == rec.fp
        assert run_scan([str(tree)], [], base, "scan").hashed == 0
    finally:
        base.close()


def test_a_small_encrypted_block_in_a_text_body_is_found() -> None:
    """The body screen (bytes text never holds): a 1 KiB block of ciphertext deep in the
    file, past the head and the tail, breaks it; a stray control byte alone does not."""
    data = bytearray(joined(big_csv()))
    at = 600_000
    broken = bytes(data[:at]) + encrypt(bytes(data[at:at + 1024])) + bytes(data[at + 1024:])
    assert probe(bytes(data)).parses and not probe(broken).parses
    stray = bytes(data[:at]) + b"\x01" + bytes(data[at + 1:])  # one control byte: 0.02%
    assert probe(stray).parses


def test_entropy_of_text_and_of_random_bytes() -> None:
    rng = random.Random(3)  # noqa: S311 - test data
    text = joined(big_csv())[:SAMPLE]
    noise = rng.randbytes(SAMPLE)
    assert 4.0 < entropy(text) < 5.5
    assert entropy(noise) >= 7.7  # the opaque_new and gate threshold is 7.2
    assert entropy(b"") == 0.0 and entropy(b"a" * 5000) == 0.0
    import math
    from collections import Counter
    small = rng.randbytes(700)  # below 2 KiB every byte counts: the exact Shannon entropy
    exact = -sum(c / 700 * math.log2(c / 700) for c in Counter(small).values())
    assert entropy(small) == pytest.approx(exact, abs=1e-9)
