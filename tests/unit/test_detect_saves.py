"""What office software really writes is not an attack; the same steps with ciphertext are.

Each benign pattern here was a false alarm (issue 14): LibreOffice's member order, mogrify's
rename-to-backup save, truncate-then-rewrite, Excel's temp names, a git repository, a rename
to an unusual extension. Each has its attacking twin that must still be caught: partial
(intermittent) encryption that keeps head and tail, the same save steps ending in
ciphertext, a wiper, a process pacing one file a minute.
"""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from integration.fimdata import encrypt, probe, record
from secops.demo.documents import docx_bytes, pdf_bytes, xlsx_bytes
from secops.fim.detect import Detector, Observation
from secops.fim.probe import probe_path

_TEXT = ("cử tri danh sách bầu cử xã phường ủy ban nhân dân biên bản kiểm phiếu đại biểu Hội "
         "đồng thôn tổ bầu cử số phiếu hợp lệ")
WORDS = _TEXT.split()


def intermittent(data: bytes) -> bytes:
    """The evaluation's variant: the first 4 KiB and the last 64 KiB kept, 64 KiB of every
    128 KiB between encrypted."""
    out = bytearray(data)
    end = len(out) - 65536
    at = 4096
    while at < end:
        n = min(65536, end - at)
        out[at:at + n] = encrypt(bytes(out[at:at + n]))
        at += 131072
    return bytes(out)


def paragraphs(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(n)]


def jpeg(rng: random.Random, size: tuple[int, int] = (900, 1200)) -> bytes:
    img = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def png(rng: random.Random) -> bytes:
    img = Image.frombytes("RGB", (500, 400), rng.randbytes(500 * 400 * 3))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def big_documents() -> dict[str, bytes]:
    """Documents over 72 KB of each kind an office keeps (the intermittent variant leaves
    smaller files alone)."""
    rng = random.Random(5)  # noqa: S311 - test data
    text = paragraphs(rng, 3000)
    return {
        "docx": docx_bytes(text),
        "xlsx": xlsx_bytes([[i, t[:60], rng.randint(1, 999)] for i, t in enumerate(text)]),
        "pdf": pdf_bytes([t[:80] for t in text]),
        "csv": "\n".join(f"{i},{t[:70]}" for i, t in enumerate(text * 4)).encode(),
        "jpg": jpeg(rng),
        "png": png(rng),
        "gz": gzip.compress("\n".join(text).encode() + rng.randbytes(200_000)),
    }


BIG = big_documents()


def libreoffice_order(data: bytes) -> bytes:
    """The same package, members in the order LibreOffice writes them (``_rels/.rels``
    first, ``[Content_Types].xml`` last)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    order = ["_rels/.rels", *[n for n in names if n not in ("_rels/.rels",
                                                          "[Content_Types].xml")],
             "[Content_Types].xml"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for n in order:
            dst.writestr(n, src.read(n))
    return out.getvalue()


# -- types and structure ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["docx", "xlsx"])
def test_an_office_package_is_one_type_whatever_its_member_order(kind: str) -> None:
    ms = probe(BIG[kind])
    lo = probe(libreoffice_order(BIG[kind]))
    assert zipfile.ZipFile(io.BytesIO(libreoffice_order(BIG[kind]))).namelist()[0] == \
        "_rels/.rels"
    assert (ms.ftype, ms.parses) == (lo.ftype, lo.parses) == ("ooxml", True)
    # the twin: a plain archive stays a zip
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("_rels/.rels", b"<x/>")
        z.writestr("bien-ban.txt", b"not an office package")
    assert probe(plain.getvalue()).ftype == "zip"


@pytest.mark.parametrize("kind", sorted(BIG))
def test_intermittent_encryption_breaks_the_container(kind: str) -> None:
    data = BIG[kind]
    assert len(data) > 72 * 1024
    before, after = probe(data), probe(intermittent(data))
    assert before.parses, kind
    assert after.ftype == before.ftype, "the head was kept: the type cannot tell"
    assert not after.parses, kind


def test_intermittent_encryption_is_found_in_real_files_on_disk(tmp_path: Path) -> None:
    """Through a descriptor, as the daemon reads (``probe_path``: pread)."""
    for kind, data in BIG.items():
        good, bad = tmp_path / f"good.{kind}", tmp_path / f"bad.{kind}"
        good.write_bytes(data)
        bad.write_bytes(intermittent(data))
        assert probe_path(str(good)).parses and not probe_path(str(bad)).parses, kind


def test_a_zip_member_bomb_costs_a_bounded_check() -> None:
    """A member stating a huge size: inflation stops at the output cap, not condemned."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", b"<Types/>")
        z.writestr("word/document.xml", b"\0" * (64 * 1024 * 1024))
    p = probe(out.getvalue())
    assert (p.ftype, p.parses) == ("ooxml", True)


# -- the detector: honest save patterns and their attacking twins ----------------------------

def observe_all(det: Detector, steps: list[Observation]) -> list[str]:
    verdicts = [det.observe(o) for o in steps]
    assert not any(verdicts), verdicts
    return [i for f in det._findings.values() for i in f.indicators]


def mogrify_steps(path: str, old: bytes, new: bytes, t: float) -> list[Observation]:
    """mogrify: rename x to x~, create an empty x, close, reopen, write, unlink x~."""
    return [Observation(t, "renamed", path + "~", before=record(path, old), old_path=path),
            Observation(t + 0.01, "added", path, after=probe(b"")),
            Observation(t + 0.02, "added", path, before=record(path, b""), after=probe(new)),
            Observation(t + 0.03, "deleted", path + "~", before=record(path + "~", old))]


def test_mogrify_saves_of_many_images_are_saves() -> None:
    det = Detector()
    rng = random.Random(1)  # noqa: S311 - test data
    steps = []
    for i in range(20):
        old, new = png(rng), png(rng)
        steps += mogrify_steps(f"/d/anh/{i}.png", old, new, float(i))
    assert observe_all(det, steps) == []
    assert det.score(30.0) == 0


def test_mogrify_steps_ending_in_ciphertext_are_caught() -> None:
    det = Detector()
    rng = random.Random(2)  # noqa: S311 - test data
    verdict = None
    for i in range(3):
        old = png(rng)
        for obs in mogrify_steps(f"/d/anh/{i}.png", old, encrypt(old), float(i)):
            verdict = verdict or det.observe(obs)
    assert verdict is not None
    assert all("type_changed" in f.indicators for f in verdict.findings)


def test_truncate_then_rewrite_is_judged_against_the_original() -> None:
    honest, attacked = Detector(), Detector()
    data = BIG["csv"]
    for i in range(10):
        p = f"/d/{i}.csv"
        for det, final in ((honest, data + b"\n1,them\n"), (attacked, encrypt(data))):
            det.observe(Observation(i, "modified", p, before=record(p, data),
                                    after=probe(b"")))
            # the baseline now holds the empty version: the good one is remembered
            det.observe(Observation(i + 0.5, "modified", p, before=record(p, b""),
                                    after=probe(final)))
    assert honest.score(11.0) == 0
    assert attacked.score(11.0) == 0  # fired (and started afresh) on the way
    again = Detector()
    v = None
    for i in range(3):
        p = f"/d/{i}.csv"
        again.observe(Observation(i, "modified", p, before=record(p, data), after=probe(b"")))
        v = v or again.observe(Observation(i + 0.5, "modified", p, before=record(p, b""),
                                           after=probe(encrypt(data))))
    assert v is not None and "type_changed" in v.findings[0].indicators


def test_excel_and_word_temp_names_are_saves() -> None:
    det = Detector()
    data = BIG["xlsx"]
    steps = []
    for i in range(40):
        p = f"/d/ket-qua/{i}.xlsx"
        tmp_new, tmp_old = f"/d/ket-qua/{i:08X}", f"/d/ket-qua/{i + 100:08X}"
        steps += [Observation(i, "added", tmp_new, after=probe(data)),
                  Observation(i + 0.1, "renamed", tmp_old, before=record(p, data), old_path=p),
                  Observation(i + 0.2, "renamed", p, before=record(tmp_new, data),
                              old_path=tmp_new),
                  Observation(i + 0.3, "deleted", tmp_old, before=record(tmp_old, data)),
                  Observation(i + 0.4, "deleted", f"/d/ket-qua/~WRL{i:04d}.tmp",
                              before=record("/d/x", b"x"))]
    assert observe_all(det, steps) == []


def test_a_git_repository_is_the_tool_s_own_store() -> None:
    det = Detector()
    blob = encrypt(b"x" * 4000)  # zlib-compressed objects look random
    for i in range(50):
        assert det.observe(Observation(i, "added", f"/d/.git/objects/{i:02x}/{'a' * 38}",
                                       after=probe(blob))) is None
    assert det.score(60.0) == 0
    # the twin: the same opaque files outside a tool folder
    twin = Detector()
    verdicts = [twin.observe(Observation(i, "added", f"/d/tai-lieu/{i:02x}{'a' * 38}",
                                         after=probe(blob))) for i in range(10)]
    assert any(verdicts)


def test_a_rename_alone_damages_nothing_a_rename_with_ciphertext_counts() -> None:
    det = Detector()
    for i in range(30):
        det.observe(Observation(i, "renamed", f"/d/{i}.cu", old_path=f"/d/{i}.csv",
                                before=record(f"/d/{i}.csv", BIG["csv"])))
    assert det.score(31.0) == 0
    p = "/d/0.cu"
    det.observe(Observation(32.0, "modified", p, before=record(p, BIG["csv"]),
                            after=probe(encrypt(BIG["csv"]))))
    f = det._findings["/d/0.csv"]  # the file's original name
    assert "unknown_extension" in f.indicators and f.weight == 2.0


def test_a_wiper_is_caught_a_folder_removal_is_not() -> None:
    wiper, tidy = Detector(), Detector()
    verdict = None
    for i in range(40):
        p = f"/d/bien-ban/{i}.pdf"
        verdict = verdict or wiper.observe(Observation(i * 0.01, "deleted", p,
                                                       before=record(p, b"%PDF-1.4")))
        assert tidy.observe(Observation(i * 0.01, "deleted", p, before=record(p, b"%PDF-1.4"),
                                        folder_gone=True)) is None
    assert verdict is not None and {"deleted"} == set(verdict.findings[0].indicators)
    # rm -rf of a whole tree: many folders' worth is still an alarm
    verdicts = [tidy.observe(Observation(1.0, "deleted", f"/d/{i}/x.pdf", folder_gone=True,
                                         before=record("/d/x.pdf", b"%PDF-1.4")))
                for i in range(200)]
    assert any(verdicts)


def test_a_deleted_then_rewritten_file_is_a_save() -> None:
    det = Detector()
    for i in range(60):
        p = f"/d/{i}.docx"
        det.observe(Observation(i, "deleted", p, before=record(p, BIG["docx"])))
        det.observe(Observation(i + 0.5, "added", p, after=probe(BIG["docx"])))
    assert det.score(61.0) == 0


def test_one_file_a_minute_is_caught_by_the_writer_s_long_window() -> None:
    slow, honest = Detector(window=120.0), Detector(window=120.0)
    verdict = None
    for i in range(6):
        p = f"/d/{i}.docx"
        verdict = verdict or slow.observe(Observation(
            i * 65.0, "modified", p, before=record(p, BIG["docx"]),
            after=probe(encrypt(BIG["docx"])), pid=4242))
        # the twin: the same pace of ordinary saves
        assert honest.observe(Observation(i * 65.0, "modified", p, before=record(p, BIG["docx"]),
                                          after=probe(libreoffice_order(BIG["docx"])),
                                          pid=4242)) is None
    assert verdict is not None and verdict.pids == [4242]
    assert len(verdict.findings) == 3  # the third file, 130 s after the first


def test_a_clerk_s_csv_exports_over_a_day_are_not_a_slow_attack() -> None:
    """One long-lived process (a PC's smbd) replacing CSV exports with new content every 20
    minutes: each is "dissimilar" to its last version, none is ruined; the long window sums
    only what ruins a file."""
    det = Detector(window=120.0)
    rng = random.Random(9)  # noqa: S311 - test data
    for i in range(18):
        p = f"/d/xuat/{i % 3}.csv"
        old = "\n".join(f"{n},{' '.join(rng.choice(WORDS) for _ in range(6))}"
                        for n in range(300)).encode()
        new = "\n".join(f"{n},{' '.join(rng.choice(WORDS) for _ in range(6))}"
                        for n in range(300)).encode()
        v = det.observe(Observation(i * 1200.0, "modified", p, before=record(p, old),
                                    after=probe(new), pid=777))
        assert v is None
        assert det._findings[p].indicators == ["dissimilar"]  # what the old window summed


def test_a_release_begun_forgets_the_lifted_attack_before_the_next_write_is_judged() -> None:
    """``secops unfreeze --resume`` (a false alarm): the resumed program's next write is judged
    afresh at once, in the gate's thread, not one daemon tick later against the evidence
    the office has just dismissed. Its twin: with no release, that write completes the
    alarm."""
    data = BIG["csv"]
    epoch = [0]
    resumed, twin = Detector(epoch=lambda: epoch[0]), Detector(epoch=lambda: 0)

    def write(det: Detector, i: int) -> object:
        p = f"/d/{i}.csv"
        return det.observe(Observation(float(i), "modified", p, pid=77,
                                       before=record(p, data), after=probe(encrypt(data))))

    for det in (resumed, twin):
        assert write(det, 0) is None  # one ruined file weighs 2 of the threshold's 3
    epoch[0] = 1  # the release marker written before the program is resumed
    assert write(resumed, 1) is None
    verdict = write(twin, 1)
    assert verdict is not None and 77 in verdict.pids  # type: ignore[attr-defined]
