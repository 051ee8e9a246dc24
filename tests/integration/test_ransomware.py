"""Ransomware against the running daemon: every variant detected and contained, the damage
counted, the pre-attack snapshot pinned and complete; ordinary office work raises nothing.

The corpus is real documents (docx, xlsx, pdf, csv, jpg); the attacker is
``tests/integration/ransim.py`` in its own process, walking the tree in a random order.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.benign import (
    bulk_rename,
    edit_csv,
    gpg_encrypt_one,
    import_scans,
    make_zip,
    office_save,
)
from integration.corpus import sha_tree
from integration.daemon import Daemon, wait_for
from integration.detection import (
    RANSIM,
    alerts,
    assert_restores,
    attacking,
    contained,
    damaged,
    documents,
    kinds,
    make_office,
    pinned_snapshot,
    proc_state,
    ransim,
    settled,
    watching,
)
from integration.office import Office
from secops.daemon.state import StateDB

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

RESULTS: dict[str, int] = {}  # variant -> files damaged before containment
RESULTS_FALLBACK: dict[str, int] = {}
RESULTS_DELETION: dict[str, int] = {}  # variant -> files gone before the freeze


@pytest.fixture
def office(tmp_path: Path) -> Office:
    return make_office(tmp_path)


@pytest.fixture
def daemon(office: Office) -> Iterator[Daemon]:
    d = Daemon(office).start()
    wait_for(lambda: "fanotify: writer pids and the open gate are on" in d.log(), 60,
             "the integrity monitor with fanotify")
    wait_for(lambda: settled(office), 90, "the first backup")
    yield d
    d.stop()
    # whatever a failed test left frozen must not outlive it
    if office.run("unfreeze", "--kill", "--json").code != 0:
        subprocess.run(["chattr", "-R", "-i", str(office.data)], check=False,
                       capture_output=True)


# Attacks whose writes no open waits for: every file opened before the first write
# (open-all), or written through hard links outside the tree (hardlink). They are judged from
# notification events, as fast as the daemon reads them: 2-5 files on a quiet machine, 18-19
# in a CI run under load (docs/benchmarks.md). Pre-content events (Linux 6.14) could make
# the writes wait; not used yet (issue 14).
BOUND = {"open-all": 40, "hardlink": 40}
CONTENT_VARIANTS = ["inplace", "new-then-delete", "rename-ext", "partial", "slow", "keep-ext",
                    "base64", "intermittent", "open-all", "hardlink"]


@pytest.mark.parametrize("variant", CONTENT_VARIANTS)
def test_attack_is_detected_contained_and_recoverable(variant: str, office: Office,
                                                      daemon: Daemon, tmp_path: Path) -> None:
    originals = sha_tree(office.data)
    assert len(originals) == 300
    progress = tmp_path / "progress.txt"
    attacker = subprocess.Popen(
        [sys.executable, str(RANSIM), "--variant", variant, "--dir", str(office.data),
         "--seed", "11", "--progress", str(progress)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "integrity.frozen" in kinds(office) or attacker.poll() is not None,
                 120, "containment")
        assert attacker.poll() is None, \
            f"the attacker finished unhindered: {progress.read_text()[-500:]}"
        assert proc_state(attacker.pid) == "T", "the attacker was not stopped"
        time.sleep(1.0)  # anything still in flight lands now
        lost = damaged(originals, office.data)
        RESULTS[variant] = len(lost)
        print(f"\n{variant}: {len(lost)} file(s) damaged before containment")
        assert len(lost) <= BOUND.get(variant, 5), lost

        doc = office.run("status", "--json").json()
        suspected = [a for a in doc["alerts"] if a["kind"] == "ransomware.suspected"]
        assert len(suspected) == 1, suspected  # one attack, one alarm
        assert suspected[0]["score"] >= 3.0
        details = suspected[0]["details"]
        assert attacker.pid in [p["pid"] for p in details["processes"]]
        assert details["indicators"], details
        # the files are immutable now, for root too
        victim = next(office.data.rglob("*.csv"))
        with pytest.raises(PermissionError):
            victim.write_text("x")

        snap = pinned_snapshot(office)

        # unfreeze needs a decision about the stopped attacker
        assert office.run("unfreeze").code == 2
        out = office.run("unfreeze", "--kill", "--json")
        assert out.code == 0, out.err
        assert out.json()["processes"][0]["result"] == "killed"
        attacker.wait(10)
        victim.write_text(victim.read_text(encoding="utf-8"), encoding="utf-8")  # writable

        # the pre-attack snapshot restores every original
        assert_restores(office, snap, originals, tmp_path / "restored")
        snaps = office.run("snapshots", "--target", "local", "--json").json()
        assert any("pinned" in s["tags"] and f"freeze-{1}" in s["tags"] for s in snaps)
    finally:
        if attacker.poll() is None:
            attacker.send_signal(signal.SIGKILL)
            attacker.wait(10)


@pytest.mark.parametrize("variant", ["wiper", "rm-rf"])
def test_mass_deletion_is_an_attack_of_its_own(variant: str, office: Office, daemon: Daemon,
                                               tmp_path: Path) -> None:
    """Deleting only the .pdf and .csv files (a wiper), or ``rm -rf`` of the tree: no
    ciphertext anywhere, and still an alarm, a freeze and a pinned pre-attack snapshot that
    restores every original. Unlinks cannot be gated (fanotify has no permission event for
    them): the damage is counted, not bounded."""
    originals = sha_tree(office.data)
    with attacking(ransim(office, variant, tmp_path / "progress.txt", "--seed", "11")):
        wait_for(lambda: "ransomware.suspected" in kinds(office), 120, "the alarm")
        suspected = [a for a in alerts(office) if a["kind"] == "ransomware.suspected"]
        assert len(suspected) == 1, suspected
        found = {i for f in suspected[0]["details"]["findings"] for i in f["indicators"]}
        assert found & {"deleted", "folder_deleted"}, found
        snap = pinned_snapshot(office)
        time.sleep(1.0)
        RESULTS_DELETION[variant] = len(damaged(originals, office.data))
        print(f"\n{variant}: {RESULTS_DELETION[variant]} file(s) gone before the freeze")
        assert office.run("unfreeze", "--kill", "--json").code == 0
        assert_restores(office, snap, originals, tmp_path / "restored")


def test_one_file_at_a_time_is_caught_by_the_writer_s_long_window(tmp_path: Path) -> None:
    """An attacker pacing itself to stay under the window (the evaluation's one file every
    65 s against 120 s, scaled: 4 s apart against a 3 s window) is caught by the total of
    what that one process wrote."""
    office = make_office(tmp_path, "\n[integrity]\nwindow_seconds = 3\n")
    with watching(office):
        originals = sha_tree(office.data)
        argv = ransim(office, "keep-ext", tmp_path / "p.txt", "--seed", "11", "--delay", "4")
        with attacking(argv) as attacker:
            contained(office, attacker)
            assert proc_state(attacker.pid) == "T", "the attacker was not stopped"
            lost = damaged(originals, office.data)
            RESULTS["slow, 4 s apart, 3 s window"] = len(lost)
            assert len(lost) <= 3, lost
            [alarm] = [a for a in alerts(office) if a["kind"] == "ransomware.suspected"]
            assert attacker.pid in [p["pid"] for p in alarm["details"]["processes"]]


def test_median_damage_across_variants_is_at_most_5() -> None:
    """Runs after the variants above (file order); alone, it has nothing to judge."""
    if len(RESULTS) < len(CONTENT_VARIANTS) + 1:
        pytest.fail(f"run with the variant tests; have only {sorted(RESULTS)}")
    median = statistics.median(RESULTS.values())
    print(f"\nfiles damaged per variant: {json.dumps(RESULTS)}; median {median}")
    report = os.environ.get("SECOPS_DETECTION_REPORT")
    if report:
        Path(report).write_text(json.dumps({"per_variant": RESULTS, "median": median,
                                            "deletion": RESULTS_DELETION},
                                           indent=2) + "\n", encoding="utf-8")
    assert median <= 5


def test_without_fanotify_inotify_alone_still_detects_and_freezes(tmp_path: Path) -> None:
    """The fallback when fanotify is unavailable: no gate, writers found through /proc."""
    office = make_office(tmp_path, "\n[integrity]\nfanotify = false\n")
    with watching(office, gate=False) as d:
        originals = sha_tree(office.data)
        argv = ransim(office, "keep-ext", tmp_path / "p.txt", "--seed", "11", "--delay", "0.05")
        with attacking(argv):
            wait_for(lambda: "integrity.frozen" in kinds(office), 60, "containment")
            time.sleep(1.0)
            lost = damaged(originals, office.data)
            RESULTS_FALLBACK["keep-ext at 20 files/s, inotify only"] = len(lost)
            print(f"\ninotify only: {len(lost)} file(s) damaged before containment")
            assert len(lost) < 100, lost  # stopped well before the tree is gone
            assert "the open gate are on" not in d.log()


def test_ordinary_office_work_raises_no_alarm(tmp_path: Path) -> None:
    """The untouched twin of the attacks: saves, imports, an archive, one gpg file, a bulk
    rename inside a maintenance window; and the protected voter lists edited inside it."""
    office = make_office(tmp_path, """
[[integrity.protect]]
paths = ["danh-sach-cu-tri/", "ket-qua/"]
""")
    d = Daemon(office).start()
    try:
        wait_for(lambda: settled(office), 90, "the first backup")
        data = office.data
        for doc in documents(data, "ho-so-ung-vien/*.docx")[:10]:
            office_save(doc, "Bổ sung lý lịch: đã xác minh")
        imported = import_scans(data / "scan" / "dot-2", n=200)
        assert len(imported) == 200
        make_zip(data / "bien-ban", data / "luu-tru-bien-ban.zip")
        gpg_encrypt_one(documents(data, "bien-ban/*.pdf")[0], tmp_path / "g")
        assert office.run("maintenance", "start", "--minutes", "10", "--reason",
                          "Cập nhật danh sách cử tri đợt 2").code == 0
        renamed = bulk_rename(data / "danh-sach-cu-tri", n=50)
        assert len(renamed) == 50
        edit_csv(renamed[0])
        for sheet in documents(data, "ket-qua/*.xlsx")[:5]:
            office_save(sheet, "Kết quả đã kiểm tra lại")
        time.sleep(4)  # the monitor's batches and the debounced backup
        wait_for(lambda: settled(office), 90, "the backups of the work")
        assert office.run("maintenance", "stop").code == 0
        seen = kinds(office)
        for bad in ("ransomware.suspected", "canary.touched", "integrity.frozen",
                    "integrity.unauthorized_change"):
            assert bad not in seen, [a for a in alerts(office) if a["kind"] == bad]
        assert "ransomware.suspected" not in d.log()

        # ...and its twin: the same kind of edit to a protected list, outside any window
        edit_csv(renamed[1])
        wait_for(lambda: "integrity.unauthorized_change" in kinds(office), 30,
                 "the unauthorised change")
        alert = next(a for a in alerts(office) if a["kind"] == "integrity.unauthorized_change")
        change = alert["details"]["changes"][0]
        assert change["path"] == str(renamed[1])
        assert change["sha256_before"] != change["sha256_after"]
        assert change["diff"].count("\n+") >= 3, change["diff"]
    finally:
        d.stop()


TAKE_AND_ENCRYPT = """
import os, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
src, dest = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
enc = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
with open(dest, "wb") as f:
    f.write(enc.update(data) + enc.finalize())
    f.flush()
    os.fsync(f.fileno())
print("written", flush=True)
sys.stdin.read()  # stays, so that the test sees whether it was stopped
"""


@pytest.mark.parametrize("taken", ["decoy", "document"])
def test_a_decoy_read_and_written_elsewhere_as_ciphertext_is_a_touch(taken: str, office: Office,
                                                                     daemon: Daemon) -> None:
    """Read a decoy, write its ciphertext to a new file elsewhere in the tree: the decoy's
    own file never changes, and it is still an alarm at once. The twin takes an ordinary
    document the same way: one opaque new file (0.5) is no alarm."""
    src = (next(office.data.glob("ho-so-ung-vien/0000-*secops-canary*.docx")) if taken == "decoy"
           else documents(office.data, "ho-so-ung-vien/ung-vien-*.docx")[0])
    dest = office.data / "bien-ban" / "bao-cao-tong-hop.docx"
    before = src.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", TAKE_AND_ENCRYPT, str(src), str(dest)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        if taken == "decoy":
            # The taker may be stopped anywhere after its read of the decoy, before or after
            # its write: nothing here waits on its own word.
            wait_for(lambda: "canary.touched" in kinds(office), 60, "the decoy's alarm")
            wait_for(lambda: proc_state(proc.pid) == "T", 30, "the taker stopped")
            assert src.read_bytes() == before
        else:
            assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
            wait_for(lambda: settled(office), 90, "the backup of the new file")
            assert "canary.touched" not in kinds(office)
            assert "ransomware.suspected" not in kinds(office)
            assert proc_state(proc.pid) != "T"
    finally:
        proc.kill()
        proc.wait(30)


HOLD_DECOY = """
import sys
f = open(sys.argv[1], "r+b")
f.write(b"\\x8f" * 4096)
f.flush()
sys.stdin.read()  # holds the decoy open: its close comes when it is killed
"""


def _count(office: Office, kind: str) -> int:
    db = StateDB(office.state / "state.db")
    try:
        return sum(e["kind"] == kind for e in db.recent_events(1000))
    finally:
        db.close()


def test_the_killed_writer_s_decoy_is_put_back_and_raises_no_second_alarm(
        office: Office, daemon: Daemon) -> None:
    """A writer stopped with a decoy open closes it as ``unfreeze --kill`` ends it: that is
    the attack's last word, not a new attack (it froze the tree again, and the restore that
    follows failed: the demo's flaky end). The decoy holds secops' content again afterwards,
    and the twin: a new write to it is an alarm at once."""
    decoy = next(office.data.glob("ho-so-ung-vien/0000-*secops-canary*.docx"))
    original = decoy.read_bytes()

    def writer() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", HOLD_DECOY, str(decoy)],
                                stdin=subprocess.PIPE)
        wait_for(lambda: proc_state(proc.pid) == "T", 60, "the decoy's writer stopped")
        return proc

    first = writer()
    try:
        wait_for(lambda: _count(office, "integrity.frozen") == 1, 60, "the freeze")
        assert office.run("unfreeze", "--kill", "--json").code == 0
        wait_for(lambda: "lifted; writers may open files again" in daemon.log(), 60,
                 "the daemon to see the lift")
        sheet = documents(office.data, "**/*.csv")[0]
        with sheet.open("a", encoding="utf-8") as f:  # the folder is writable, and stays so
            f.write("101,Nguyễn Thị Hoa,Tổ 3\n")
        wait_for(lambda: settled(office), 90, "the backup of an honest edit")
        assert _count(office, "integrity.frozen") == 1
        assert _count(office, "ransomware.suspected") == 1
        wait_for(lambda: decoy.read_bytes() == original, 60, "the decoy put back")
    finally:
        first.kill()
        first.wait(30)
    second = writer()  # the twin: the decoy put back is a decoy again
    try:
        wait_for(lambda: _count(office, "integrity.frozen") == 2, 60, "the second freeze")
    finally:
        second.kill()
        second.wait(30)
