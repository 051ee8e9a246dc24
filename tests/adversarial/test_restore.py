"""Restore against an attacker (issue 12, items 2-4), through the real CLI and real restic.

A restore never writes into state_dir (the audit log is not rolled back), never follows a link
or a bind mount into live data, and verifies exactly what restic restored (a glob include, a
file slipped into a forged snapshot, zero files verified). Every refusal has its untouched twin.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from integration.office import Office, target_toml, tree

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]


def restic_env(office: Office) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(office.root),
            "RESTIC_PASSWORD_FILE": str(office.password_file("local")),
            "RESTIC_REPOSITORY": str(office.root / "repo"),
            "RESTIC_CACHE_DIR": str(office.root / "attacker-cache")}


def forge_snapshot(office: Office) -> None:
    """Someone with the restic password backs up the data with the old signed manifest."""
    manifest_dir = office.manifest_dir()
    subprocess.run(["restic", "backup", "--tag", "secops", str(office.data), str(manifest_dir)],
                   env=restic_env(office), check=True, capture_output=True, timeout=120)


def snapshot_ids(office: Office) -> list[str]:
    snaps = office.run("snapshots", "--json").json()
    return [str(s["id"]) for s in sorted(snaps, key=lambda s: str(s["time"]))]


def audit_lines(office: Office) -> list[str]:
    return (office.state / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()


def in_snapshot(out: Path, office: Office) -> Path:
    """Where a restore into ``out`` puts the watched folder."""
    return out / str(office.data).lstrip("/")


@pytest.fixture
def office(tmp_path: Path) -> Office:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    return o


class SplitOffice(Office):
    """An office whose state_dir sits in a folder of its own (``root/srv/secops``)."""

    @property
    def state(self) -> Path:
        return self.root / "srv" / "secops"


# -- item 2: a restore never writes into state_dir ------------------------------------------

def test_in_place_restore_leaves_the_audit_log_alone(office: Office) -> None:
    first = snapshot_ids(office)[0]
    assert office.run("backup", "now").code == 0
    assert office.run("drill").code == 0
    before = audit_lines(office)
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    original = sheet.read_bytes()
    sheet.write_text("bị mã hóa", encoding="utf-8")
    done = office.run("restore", first, "--in-place", "--json")
    assert done.code == 0, done.err
    assert sheet.read_bytes() == original  # the twin: the watched data did come back
    after = audit_lines(office)
    assert after[:len(before)] == before, f"audit log rolled back: {len(before)} -> {len(after)}"
    assert "restore.completed" in [json.loads(line)["kind"] for line in after[len(before):]]
    check = office.run("audit", "verify", "--json")
    assert check.code == 0, check.out + check.err


def test_restore_refuses_a_folder_inside_or_around_state_dir(tmp_path: Path) -> None:
    o = SplitOffice(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    keys = sorted(p.name for p in o.state.iterdir())
    inside = o.run("restore", "latest", "--to", str(o.state / "x"))
    assert inside.code == 2, inside.out + inside.err
    assert str(o.state) in inside.err and "state" in inside.err
    assert not (o.state / "x").exists()
    around = o.run("restore", "latest", "--to", str(tmp_path / "srv"), "--force")
    assert around.code == 2, around.out + around.err
    assert str(o.state) in around.err
    link = tmp_path / "to-state"
    link.symlink_to(o.state / "reports")
    via_link = o.run("restore", "latest", "--to", str(link))
    assert via_link.code == 2 and str(o.state) in via_link.err
    assert sorted(p.name for p in o.state.iterdir()) == keys
    # the twins: a folder elsewhere, and the drill's own scratch folder under state_dir
    elsewhere = o.run("restore", "latest", "--to", str(tmp_path / "out"), "--json")
    assert elsewhere.code == 0, elsewhere.err
    assert tree(in_snapshot(tmp_path / "out", o)) == tree(o.data)
    # the old audit log comes along into the empty folder (for 'audit verify --log'),
    # labelled, and not counted as a verified file
    audit_copy = tmp_path / "out" / str(o.state).lstrip("/") / "audit"
    doc = elsewhere.json()
    assert doc["audit_log"] == str(audit_copy) and (audit_copy / "audit.jsonl").is_file()
    assert doc["files_checked"] == len(tree(o.data))
    drill = o.run("drill", "--json")
    assert drill.code == 0, drill.err
    assert drill.json()["files_checked"] == len(tree(o.data))


# -- item 3: links and bind mounts ---------------------------------------------------------

@pytest.mark.parametrize("where", ["watched", "inside", "root"])
def test_restore_through_a_symlink_into_live_data_is_refused(office: Office, tmp_path: Path,
                                                             where: str) -> None:
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    sheet.write_text("sửa sau bản sao lưu", encoding="utf-8")
    live = tree(office.data)
    count = len(snapshot_ids(office))
    target = {"watched": office.data, "inside": office.data / "phieu-scan",
              "root": Path("/")}[where]
    link = tmp_path / "link"
    link.symlink_to(target)
    done = office.run("restore", "latest", "--to", str(link), "--force")
    assert done.code == 2, done.out + done.err
    assert str(link) in done.err and str(office.data) in done.err, done.err
    assert "watched folder" in done.err
    assert tree(office.data) == live and len(snapshot_ids(office)) == count
    # the twin: a link to an empty folder elsewhere is fine
    link.unlink()
    (tmp_path / "empty").mkdir()
    link.symlink_to(tmp_path / "empty")
    twin = office.run("restore", "latest", "--to", str(link), "--force", "--json")
    assert twin.code == 0, twin.err
    assert tree(in_snapshot(tmp_path / "empty", office))


@pytest.fixture
def bind_mount(office: Office, tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/mnt``: the watched folder again, through a bind mount."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "--bind", str(office.data), str(mnt)],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30,
                       check=False)


def test_restore_into_a_bind_mount_of_live_data_is_refused(office: Office, tmp_path: Path,
                                                           bind_mount: Path) -> None:
    live = tree(office.data)
    for to in (bind_mount, bind_mount / "new-sub"):
        done = office.run("restore", "latest", "--to", str(to), "--force")
        assert done.code == 2, done.out + done.err
        assert str(to) in done.err and str(office.data) in done.err
    assert tree(office.data) == live
    twin = office.run("restore", "latest", "--to", str(tmp_path / "o"))
    assert twin.code == 0, twin.err


def plant(busy: Path, office: Office) -> Path:
    """``busy/<path of the watched folder>`` as a symbolic link to the watched folder."""
    link = in_snapshot(busy, office)
    link.parent.mkdir(parents=True)
    link.symlink_to(office.data)
    return link


def test_force_into_a_folder_with_a_planted_link_is_refused(office: Office,
                                                           tmp_path: Path) -> None:
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    sheet.write_text("bản mới, sau lần sao lưu", encoding="utf-8")
    live = tree(office.data)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    link = plant(busy, office)
    done = office.run("restore", "latest", "--to", str(busy), "--force")
    assert done.code == 2, done.out + done.err
    assert str(link) in done.err and "symbolic link" in done.err
    assert "hint:" in done.err
    assert tree(office.data) == live
    # a hard link to a live file: restic would truncate and rewrite the live file through it
    link.unlink()
    (link / "bien-ban-kiem-phieu").mkdir(parents=True)
    hard = link / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    os.link(sheet, hard)
    hard_done = office.run("restore", "latest", "--to", str(busy), "--force")
    assert hard_done.code == 2, hard_done.out + hard_done.err
    assert str(hard) in hard_done.err and "hard link" in hard_done.err
    assert tree(office.data) == live
    # the twin: the same folder without the planted links
    shutil.rmtree(link)
    twin = office.run("restore", "latest", "--to", str(busy), "--force", "--json")
    assert twin.code == 0, twin.err
    assert (busy / "keep.txt").read_text() == "mine"
    assert tree(office.data) == live


def test_in_place_refuses_a_link_planted_in_a_watched_folder(office: Office,
                                                            tmp_path: Path) -> None:
    first = snapshot_ids(office)[0]
    folder = office.data / "danh-sach-cu-tri"
    saved = tmp_path / "saved"
    shutil.move(str(folder), str(saved))
    outside = tmp_path / "outside"
    outside.mkdir()
    folder.symlink_to(outside)
    count = len(snapshot_ids(office))
    done = office.run("restore", first, "--in-place")
    assert done.code == 2, done.out + done.err
    assert str(folder) in done.err and "symbolic link" in done.err
    assert not any(outside.iterdir()) and len(snapshot_ids(office)) == count
    # the twin: without the link, the same in-place restore brings the folder back
    folder.unlink()
    twin = office.run("restore", first, "--in-place", "--json")
    assert twin.code == 0, twin.err
    assert tree(folder) == tree(saved)


# -- item 4: verify exactly what restic restored -------------------------------------------

@pytest.mark.parametrize("pattern", ["*", "danh-sach-*", "**/*.csv", "[bd]*/*", "*/to-?*"])
def test_glob_include_verifies_every_restored_file(office: Office, tmp_path: Path,
                                                   pattern: str) -> None:
    out = tmp_path / "o"
    done = office.run("restore", "latest", "--to", str(out), "--include",
                      f"{office.data}/{pattern}", "--json")
    assert done.code == 0, done.err
    restored = tree(in_snapshot(out, office))
    assert restored
    doc = done.json()
    assert doc["ok"] is True and doc["files_checked"] == len(restored), doc


def test_include_that_matches_nothing_is_a_usage_error(office: Office, tmp_path: Path) -> None:
    live = tree(office.data)
    pattern = f"{office.data}/khong-co-*"
    for mode in (["--to", str(tmp_path / "o")], ["--in-place"]):
        done = office.run("restore", "latest", *mode, "--include", pattern)
        assert done.code == 2, done.out + done.err
        assert pattern in done.err and "matches nothing" in done.err
    assert tree(office.data) == live
    # the twin: a pattern that does match
    twin = office.run("restore", "latest", "--to", str(tmp_path / "o2"), "--include",
                      f"{office.data}/phieu-*")
    assert twin.code == 0, twin.err


def test_include_outside_the_watched_folders_is_refused(office: Office) -> None:
    for pattern in ("/*", f"{office.root}/*", f"{office.state}/audit", f"{office.data}*"):
        done = office.run("restore", "latest", "--in-place", "--include", pattern)
        assert done.code == 2, (pattern, done.out + done.err)
        assert "watched folder" in done.err
    for broken in (f"{office.data}/[", f"{office.data}/thon-[z-a]", f"{office.data}/x\\"):
        done = office.run("restore", "latest", "--to", str(office.root / "o"), "--include",
                          broken)
        assert done.code == 2 and "not a pattern restic can use" in done.err, done.err
    assert not (office.root / "o").exists()


def test_restored_file_absent_from_the_manifest_fails(office: Office, tmp_path: Path) -> None:
    good = snapshot_ids(office)[-1]
    (office.data / "phieu-scan" / "cai-them.exe").write_bytes(b"MZ not from the office")
    forge_snapshot(office)
    done = office.run("restore", "latest", "--to", str(tmp_path / "o"), "--json")
    assert done.code == 1, done.out + done.err
    assert "cai-them.exe" in done.err and "not in the signed manifest" in done.err
    assert done.json()["ok"] is False
    drill = office.run("drill", "--json")
    assert drill.code == 1, drill.out + drill.err
    assert "cai-them.exe" in drill.err
    twin = office.run("restore", good, "--to", str(tmp_path / "o2"))
    assert twin.code == 0, twin.err
    assert office.run("drill", "--snapshot", good).code == 0


def test_zero_files_verified_of_a_non_empty_restore_fails(tmp_path: Path) -> None:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))])
    o.data.mkdir(parents=True)  # no sample data: the first manifest lists no file
    o.write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    empty = o.run("restore", "latest", "--to", str(tmp_path / "o0"), "--json")
    assert empty.code == 0, empty.err  # the twin: nothing backed up, nothing restored
    assert empty.json()["files_checked"] == 0
    (o.data / "danh-sach.csv").write_text("Nguyễn Văn A;1970\n", encoding="utf-8")
    forge_snapshot(o)
    done = o.run("restore", "latest", "--to", str(tmp_path / "o1"), "--json")
    assert done.code == 1, done.out + done.err
    assert "0 files verified" in done.err and "danh-sach.csv" in done.err
    drill = o.run("drill")
    assert drill.code == 1, drill.out + drill.err
    assert "0 files verified" in drill.err


def test_include_selection_agrees_with_restic(office: Office, tmp_path: Path) -> None:
    """Hostile input: whatever pattern restic accepts, the files verified are the files it
    restored (component-wise globs, a directory match takes everything below, ``**``)."""
    from secops.manifest.model import parse
    from secops.restore.verify import selected

    data = (office.manifest_dir() / "secops-manifest.json").read_bytes()
    manifest = parse(data, "test")
    d = str(office.data)
    patterns = [f"{d}/*", f"{d}/*/", f"{d}//danh-sach-cu-tri/./thon-?.csv", f"{d}/**",
                f"{d}/**/thon-[^0-9]*", f"{d}/phieu-scan/../ho-so-*/*.pdf", f"{d}/**/**/*3*",
                f"{d}/\\p*/*", f"{d}/*/*/", f"{d}/danh-sach-cu-tri/thon-[1-2].csv"]
    for i, pattern in enumerate(patterns):
        out = tmp_path / f"r{i}"
        subprocess.run(["restic", "restore", "latest", "--target", str(out), "--include",
                        pattern], env=restic_env(office), check=True, capture_output=True,
                       timeout=120)
        restic_files = sorted("/" + str(p.relative_to(out)) for p in out.rglob("*")
                              if p.is_file())
        assert selected(manifest, [pattern]) == restic_files, pattern


# -- red-team review: mount points, hard links, links and special files --------------------

Bind = Callable[[Path, Path], None]


@pytest.fixture
def bind() -> Iterator[Bind]:
    """``bind(source, point)``: a bind mount for this test, lazily unmounted afterwards."""
    points: list[Path] = []

    def mount(source: Path, point: Path) -> None:
        done = subprocess.run(["mount", "--bind", str(source), str(point)],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
        points.append(point)

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30,
                       check=False)


def unmount(point: Path) -> None:
    subprocess.run(["umount", "-l", str(point)], check=True, capture_output=True, timeout=30)


def state_files(office: Office) -> dict[str, list[bytes]]:
    """What a restore must never roll back: the audit log, its checkpoints, the manifest."""
    return {name: (office.state / name).read_bytes().splitlines(keepends=True)
            for name in ("audit/audit.jsonl", "audit/checkpoints.jsonl",
                         "snapshot-manifest/local/secops-manifest.json")}


def assert_untouched(office: Office, before: dict[str, list[bytes]]) -> None:
    """Each file as it was, or only grown at its end (the CLI records its own run)."""
    for name, old in state_files(office).items():
        assert old[:len(before[name])] == before[name], f"{name} rolled back or rewritten"


def test_force_into_a_folder_holding_a_mount_of_state_dir_is_refused(
        office: Office, tmp_path: Path, bind: Bind) -> None:
    """Red team A: ``mkdir -p D/<state_dir>; mount --bind state_dir D/<state_dir>`` and
    ``restore --to D --force`` wrote the snapshot's audit log and manifest into state_dir."""
    assert office.run("backup", "now").code == 0  # the live log is ahead of the first snapshot
    busy = tmp_path / "busy"
    (busy / "x").mkdir(parents=True)
    (busy / "keep.txt").write_text("mine")
    point = busy / str(office.state).lstrip("/")
    point.mkdir(parents=True)
    bind(office.state, point)
    audit = office.state / "audit" / "audit.jsonl"
    one_file = busy / "x" / "audit.jsonl"
    one_file.write_text("")
    bind(audit, one_file)  # a single file bind-mounted onto the live audit log
    before = state_files(office)
    done = office.run("restore", "latest", "--to", str(busy), "--force")
    assert done.code == 2, done.out + done.err
    assert "mount point" in done.err and (str(point) in done.err or str(one_file) in done.err)
    assert_untouched(office, before)
    unmount(point)
    done = office.run("restore", "latest", "--to", str(busy), "--force")
    assert done.code == 2 and str(one_file) in done.err and "mount point" in done.err, done.err
    # the destination itself a bind mount of a folder inside state_dir
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    bind(office.state / "audit", mnt)
    inside = office.run("restore", "latest", "--to", str(mnt), "--force")
    assert inside.code == 2, inside.out + inside.err
    assert str(mnt) in inside.err and str(office.state) in inside.err
    assert_untouched(office, before)
    # the twin: the same folder without the mounts
    unmount(one_file)
    twin = office.run("restore", "latest", "--to", str(busy), "--force", "--json")
    assert twin.code == 0, twin.err
    assert (busy / "keep.txt").read_text() == "mine"
    assert_untouched(office, before)


def test_in_place_refuses_a_mount_of_state_dir_in_a_watched_folder(
        office: Office, bind: Bind) -> None:
    """Red team B: ``mount --bind state/audit bau-cu/mnt``, a backup, then an in-place
    restore of that snapshot rolled the live audit log back."""
    mnt = office.data / "mnt"
    mnt.mkdir()
    bind(office.state / "audit", mnt)
    assert office.run("backup", "now").code == 0  # holds bau-cu/mnt/audit.jsonl
    with_mount = snapshot_ids(office)[-1]
    assert office.run("drill").code == 0
    before = audit_lines(office)
    count = len(snapshot_ids(office))
    done = office.run("restore", with_mount, "--in-place")
    assert done.code == 2, done.out + done.err
    assert str(mnt) in done.err and "mount point" in done.err
    assert audit_lines(office)[:len(before)] == before
    assert len(snapshot_ids(office)) == count  # refused before the safety snapshot
    # the twin: the same folder, not a mount any more
    unmount(mnt)
    twin = office.run("restore", with_mount, "--in-place", "--json")
    assert twin.code == 0, twin.err
    after = audit_lines(office)
    assert after[:len(before)] == before, f"audit log rolled back: {len(before)} -> {len(after)}"
    assert (mnt / "audit.jsonl").is_file()  # restored as data in the watched folder
    assert office.run("audit", "verify").code == 0


def test_in_place_never_writes_through_a_hard_link_into_state_dir(office: Office) -> None:
    """Red team B: ``ln state/audit/checkpoints.jsonl bau-cu/so-lieu.txt``, a backup, then an
    in-place restore: restic wrote into the shared inode (checkpoints.jsonl 9 -> 7 lines).
    Each file is restored into a staging folder and renamed over the live name instead."""
    checkpoints = office.state / "audit" / "checkpoints.jsonl"
    link = office.data / "so-lieu.txt"
    os.link(checkpoints, link)
    assert office.run("backup", "now").code == 0
    with_link = snapshot_ids(office)[-1]
    assert office.run("backup", "now").code == 0
    assert office.run("drill").code == 0
    before = checkpoints.read_text(encoding="utf-8").splitlines()
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    original = sheet.read_bytes()
    sheet.write_text("bị mã hóa", encoding="utf-8")
    done = office.run("restore", with_link, "--in-place", "--json")
    assert done.code == 0, done.err
    after = checkpoints.read_text(encoding="utf-8").splitlines()
    assert after[:len(before)] == before, f"checkpoints rolled back: {len(before)} -> {len(after)}"
    assert sheet.read_bytes() == original
    assert link.stat().st_ino != checkpoints.stat().st_ino and link.stat().st_nlink == 1
    assert len(link.read_text(encoding="utf-8").splitlines()) < len(before)  # the old copy
    check = office.run("audit", "verify", "--json")
    assert check.code == 0, check.out + check.err
    assert not list(office.root.glob(".secops-restore-*")), "the staging folder was left"


def test_in_place_into_a_watched_folder_that_is_a_mount_of_its_own(office: Office,
                                                                  bind: Bind) -> None:
    """The twin of the refused mount points: the watched folder itself on a mount of its own
    (a disk of its own) restores in place, staged inside it, and the staging folder goes."""
    first = snapshot_ids(office)[0]
    bind(office.data, office.data)
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    original = sheet.read_bytes()
    sheet.write_text("bị mã hóa", encoding="utf-8")
    done = office.run("restore", first, "--in-place", "--json")
    assert done.code == 0, done.err
    assert sheet.read_bytes() == original
    assert not list(office.data.glob(".secops-restore-*"))
    assert not list(office.root.glob(".secops-restore-*"))


def plant_specials(folder: Path) -> list[Path]:
    """A symbolic link, a FIFO and a character device (/dev/null's numbers) in ``folder``."""
    link, fifo, device = folder / "lien-ket", folder / "ong-dan", folder / "thiet-bi"
    link.symlink_to("/etc/passwd")
    os.mkfifo(fifo)
    os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    return [link, fifo, device]


def test_links_and_special_files_in_a_forged_snapshot_fail(office: Office,
                                                          tmp_path: Path) -> None:
    """Red team C: a symlink, a FIFO and a device next to a genuine signed manifest earned a
    warning; the manifest lists regular files only, so each one fails the restore."""
    good = snapshot_ids(office)[-1]
    planted = plant_specials(office.data / "phieu-scan")
    forge_snapshot(office)
    for p in planted:
        p.unlink()
    live = tree(office.data)
    done = office.run("restore", "latest", "--to", str(tmp_path / "o"), "--json")
    assert done.code == 1, done.out + done.err
    assert done.json()["ok"] is False
    for p in planted:
        assert f"{p}: " in done.err, (p, done.err)
    assert "symbolic link" in done.err and "FIFO" in done.err and "device" in done.err
    drill = office.run("drill", "--json")
    assert drill.code == 1, drill.out + drill.err
    assert all(p.name in drill.err for p in planted)
    # in place: verified before anything is written, so the live folders stay as they are
    inplace = office.run("restore", "latest", "--in-place", "--json")
    assert inplace.code == 1, inplace.out + inplace.err
    assert all(p.name in inplace.err for p in planted)
    assert tree(office.data) == live and not any(os.path.lexists(p) for p in planted)
    # the twins: the genuine snapshot
    twin = office.run("restore", good, "--to", str(tmp_path / "o2"))
    assert twin.code == 0, twin.err
    assert office.run("drill", "--snapshot", good).code == 0
    assert office.run("restore", good, "--in-place").code == 0


def test_in_place_restore_of_a_forged_snapshot_changes_no_live_file(office: Office) -> None:
    """Before, an in-place restore verified the live tree after restic had written it: a file
    slipped into a forged snapshot was already in the watched folder."""
    sheet = office.data / "bien-ban-kiem-phieu" / "to-bau-cu-01.txt"
    sheet.write_text(sheet.read_text(encoding="utf-8") + "9", encoding="utf-8")
    extra = office.data / "phieu-scan" / "cai-them.exe"
    extra.write_bytes(b"MZ not from the office")
    forge_snapshot(office)  # new data, the old signed manifest
    extra.unlink()
    sheet.write_text("bị mã hóa", encoding="utf-8")
    live = tree(office.data)
    done = office.run("restore", "latest", "--in-place", "--json")
    assert done.code == 1, done.out + done.err
    assert "cai-them.exe" in done.err and "to-bau-cu-01.txt" in done.err
    assert tree(office.data) == live and not extra.exists()
