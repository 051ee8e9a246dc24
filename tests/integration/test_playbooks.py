"""The shipped playbooks, each fired with its example event: a dry run that touches nothing,
then a real run with real restic, a real SMTP server, real processes; and the daemon firing
a playbook on its own when a detector raises an event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.daemon import Daemon, wait_for
from integration.office import QUIET_SCHEDULE, Office, target_toml, tree
from integration.servers import SmtpServer

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
SHIPPED = sorted(p.stem for p in PLAYBOOKS.glob("*.yaml"))
TAIL = QUIET_SCHEDULE + """
[playbooks]
dir = "{playbooks}"
max_step_seconds = 300

[notify]
smtp_host = "127.0.0.1"
smtp_port = {port}
smtp_security = "none"
smtp_from = "secops@tan-ky.test"
drop_dir = "{drop}"
recipients = {{ office = ["vanphong@tan-ky.test"], police = ["congan@tan-ky.test"] }}
"""


@pytest.fixture
def office(tmp_path: Path, smtp_server: SmtpServer) -> Office:
    smtp_server.clear()
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
               backup_extra="debounce_seconds = 1\nmax_delay_seconds = 10",
               tail=TAIL.format(playbooks=PLAYBOOKS, port=smtp_server.port,
                                drop=tmp_path / "drop")).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    time.sleep(1.1)  # events carry whole seconds: the backup must end a second before them
    return o


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless process that stands in for the attacker named by the events."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield p
    p.kill()
    p.wait(10)


def event_file(office: Office, playbook: str, pid: int | None = None, **details: Any) -> Path:
    text = (PLAYBOOKS / "events" / f"{playbook}.json").read_text(encoding="utf-8")
    event = json.loads(text.replace("/srv/bau-cu", str(office.data)))
    event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if "first_seen" in event["details"]:
        event["details"]["first_seen"] = event["time"]
    for proc in event["details"].get("processes", []):
        proc["pid"] = pid
    event["details"].update(details)
    path = office.root / f"event-{playbook}.json"
    path.write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    return path


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def snapshot_count(office: Office) -> int:
    return len(office.run("snapshots", "--json").json())


def incidents(office: Office) -> list[dict[str, Any]]:
    return list(office.run("incident", "list", "--json").json())


def test_shipped_playbooks_validate_and_list(office: Office) -> None:
    files = [str(PLAYBOOKS / f"{p}.yaml") for p in SHIPPED]
    assert office.run("playbook", "validate", *files).code == 0
    listed = office.run("playbook", "list", "--json").json()
    assert sorted(r["id"] for r in listed) == SHIPPED
    assert set(listed[0]) == {"id", "name", "trigger", "severity"}
    for p in SHIPPED:  # every playbook has its example event
        assert json.loads((PLAYBOOKS / "events" / f"{p}.json").read_text())["kind"]


def test_dry_runs_touch_nothing(office: Office, smtp_server: SmtpServer,
                                sleeper: subprocess.Popen[bytes]) -> None:
    before = tree(office.data)
    snaps = snapshot_count(office)
    for p in SHIPPED:
        done = office.run("playbook", "test", p, "--event",
                          str(event_file(office, p, sleeper.pid)), "--dry-run", "--json")
        assert done.code == 0, done.err
        doc = done.json()
        assert doc["dry_run"] and doc["incident"] is None
        assert all(s["would"] for s in doc["steps"]), doc
    assert state(sleeper.pid) != "T"  # no process stopped
    assert tree(office.data) == before  # no file changed
    (office.data / "probe.txt").write_text("writable\n")  # not frozen
    (office.data / "probe.txt").unlink()
    assert snapshot_count(office) == snaps  # no snapshot taken
    assert incidents(office) == []  # no incident opened
    assert smtp_server.messages == []  # no mail sent
    assert not (office.root / "drop").exists() or not any((office.root / "drop").iterdir())
    assert not (office.state / "outbox").exists() or not any(
        (office.state / "outbox").glob("*.json"))


@pytest.mark.parametrize("playbook,to", [
    ("audit-tampered", {"vanphong@tan-ky.test", "congan@tan-ky.test"}),
    ("logs-tampered", {"vanphong@tan-ky.test", "congan@tan-ky.test"}),
    ("backup-failing", {"vanphong@tan-ky.test"}),
    ("target-unreachable", {"vanphong@tan-ky.test"}),
    ("backup-stalled", {"vanphong@tan-ky.test"}),
    ("state-failed", {"vanphong@tan-ky.test"}),
    ("login-after-failures", {"vanphong@tan-ky.test", "congan@tan-ky.test"}),
    ("account-changed", {"vanphong@tan-ky.test"}),
    ("usb-storage", {"vanphong@tan-ky.test", "congan@tan-ky.test"}),
    ("new-listener", {"vanphong@tan-ky.test"}),
    ("password-spray", {"vanphong@tan-ky.test"}),
    ("protected-file-changed", {"vanphong@tan-ky.test"}),
])
def test_real_run_opens_an_incident_and_notifies(office: Office, smtp_server: SmtpServer,
                                                 playbook: str, to: set[str]) -> None:
    done = office.run("playbook", "test", playbook, "--event",
                      str(event_file(office, playbook)), "--json")
    assert done.code == 0, done.err + done.out
    doc = done.json()
    assert doc["ok"] and doc["new_incident"]
    incident = doc["incident"]
    mails = smtp_server.wait_for_messages(1)
    assert set(mails[0].rcpt_tos) == to
    assert incident in str(mails[0].message["subject"])
    shown = office.run("incident", "show", incident, "--json").json()
    steps = [t for t in shown["timeline"] if t["what"] == "step"]
    assert [s["step"] for s in steps] == [s["step"] for s in doc["steps"]]
    if playbook in ("audit-tampered", "logs-tampered", "protected-file-changed",
                    "login-after-failures", "usb-storage"):
        names = [e["name"] for e in shown["evidence"]]
        assert names[:4] == ["processes.json", "network.json", "users.json",
                             "open_files.json"]  # RFC 3227: most volatile first
    if playbook == "protected-file-changed":
        assert shown["snapshots"], "the pre-incident snapshot is pinned"
        snaps = office.run("snapshots", "--json").json()
        assert any("pinned" in s["tags"] and f"incident-{incident}" in s["tags"]
                   for s in snaps)
    # a repeating alert joins the open incident instead of opening a new one
    again = office.run("playbook", "test", playbook, "--event",
                       str(event_file(office, playbook)), "--json").json()
    assert again["incident"] == incident and again["new_incident"] is False
    assert len(incidents(office)) == 1
    kinds = [json.loads(line)["kind"] for line in
             (office.state / "audit" / "audit.jsonl").read_text().splitlines()]
    assert "incident.opened" in kinds and "playbook.step.finished" in kinds


def test_ransomware_contain_then_guided_restore_after_approval(
        office: Office, smtp_server: SmtpServer, sleeper: subprocess.Popen[bytes]) -> None:
    victim = next(office.data.rglob("*.csv"))
    original = victim.read_bytes()
    victim.write_bytes(os.urandom(len(original)))  # "encrypted" after the last backup
    event = event_file(office, "ransomware-suspected", sleeper.pid, paths=[str(victim)])
    run = subprocess.Popen([sys.executable, "-m", "secops", "--config", str(office.config),
                            "playbook", "test", "ransomware-suspected", "--event", str(event),
                            "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"PATH": os.environ["PATH"], "HOME": str(office.root)})
    try:
        wait_for(lambda: bool(incidents(office)) and any(
            a["state"] == "waiting" for a in office.run(
                "incident", "show", incidents(office)[0]["id"], "--json").json()["approvals"]),
            120, "the approval request")
        incident = incidents(office)[0]
        assert incident["state"] == "contained"  # the freeze contained it
        assert state(sleeper.pid) == "T"  # the writer is stopped
        with pytest.raises(PermissionError):
            victim.write_bytes(b"x")  # the folder is immutable
        mails = smtp_server.wait_for_messages(1)
        assert set(mails[0].rcpt_tos) == {"vanphong@tan-ky.test", "congan@tan-ky.test"}
        assert office.run("incident", "approve", incident["id"], "approve-restore").code == 0
        out, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out.decode() + err.decode()
    doc = json.loads(out)
    assert [s["step"] for s in doc["steps"]][-3:] == ["unfreeze", "restore", "done"]
    assert victim.read_bytes() == original  # restored in place from the pinned snapshot
    assert sleeper.wait(10) == -9  # killed by the unfreeze
    shown = office.run("incident", "show", incident["id"], "--json").json()
    assert shown["state"] == "recovered"
    assert (office.state / "incidents" / incident["id"] / "incident.md").exists()
    closed = office.run("incident", "close", incident["id"])
    assert closed.code == 0, closed.err
    snaps = office.run("snapshots", "--json").json()
    assert not any("pinned" in s["tags"] and f"incident-{incident['id']}" in s["tags"]
                   for s in snaps)  # unpinned on close


def test_personal_data_breach_starts_the_72_hour_clock(office: Office,
                                                       smtp_server: SmtpServer) -> None:
    event = event_file(office, "personal-data-breach")
    run = subprocess.Popen([sys.executable, "-m", "secops", "--config", str(office.config),
                            "playbook", "test", "personal-data-breach", "--event", str(event),
                            "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"PATH": os.environ["PATH"], "HOME": str(office.root)})
    try:
        mails = smtp_server.wait_for_messages(1, timeout=60)
        subject = str(mails[0].message["subject"])
        body = mails[0].message.get_body()
        assert body is not None and "72" in " ".join([subject, body.get_content()])
        assert any(p.get_filename() == "incident.md" for p in mails[0].message.iter_attachments())
        incident = incidents(office)[0]["id"]
        wait_for(lambda: any(a["step"] == "notified" and a["state"] == "waiting" for a in
                             office.run("incident", "show", incident, "--json").json()
                             ["approvals"]), 30, "the confirmation request")
        assert office.run("incident", "approve", incident, "notified").code == 0
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0
    assert json.loads(out)["steps"][-1]["step"] == "done"


def test_scheduled_drill_and_canary(office: Office, smtp_server: SmtpServer) -> None:
    drill = office.run("playbook", "test", "scheduled-drill", "--event",
                       str(event_file(office, "scheduled-drill")), "--json")
    assert drill.code == 0, drill.err
    assert drill.json()["steps"][0]["outputs"]["local"]["ok"] is True
    assert incidents(office)[0]["state"] == "closed"  # a passing drill closes itself
    canary = office.run("playbook", "test", "canary-touched", "--event",
                        str(event_file(office, "canary-touched")), "--json")
    try:
        assert canary.code == 0, canary.err
        with pytest.raises(PermissionError):
            (office.data / "new.txt").write_text("x")
    finally:
        assert office.run("unfreeze", "--kill").code == 0
    smtp_server.wait_for_messages(1)


def test_a_broken_playbook_is_refused_with_file_and_line(office: Office,
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((PLAYBOOKS / "backup-failing.yaml").read_text().replace(
        "action: notify", "action: wipe-disk"), encoding="utf-8")
    done = office.run("playbook", "validate", str(bad))
    assert done.code == 2
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "wipe-disk" in t)
    assert f"{bad}:{line}: steps[0].action: unknown action 'wipe-disk'" in done.err


def test_the_daemon_fires_playbooks_with_no_one_at_the_keyboard(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    smtp_server.clear()
    folder = tmp_path / "pb"
    folder.mkdir()
    for name in ("protected-file-changed", "backup-failing"):
        (folder / f"{name}.yaml").write_text((PLAYBOOKS / f"{name}.yaml").read_text())
    (folder / "broken.yaml").write_text("id: broken\nversion: 1\nname: x\n")  # refused alone
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra="debounce_seconds = 1\nmax_delay_seconds = 10",
                    tail=TAIL.format(playbooks=folder, port=smtp_server.port,
                                     drop=tmp_path / "drop")
                    + '\n[[integrity.protect]]\npaths = ["danh-sach-cu-tri/"]\n').write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    try:
        wait_for(lambda: office.run("status", "--json").json()["pending_changes"] == 0, 60,
                 "the first backup")
        voters = next((office.data / "danh-sach-cu-tri").rglob("*.csv"))
        voters.write_text(voters.read_text(encoding="utf-8") + "99,Người Lạ,01/01/1990\n",
                          encoding="utf-8")
        wait_for(lambda: bool(incidents(office)), 30, "the incident")
        incident = incidents(office)[0]
        assert incident["playbook"] == "protected-file-changed"
        assert incident["kind"] == "integrity.unauthorized_change"
        mail = smtp_server.wait_for_messages(1, timeout=60)[0]
        assert incident["id"] in str(mail.message["subject"])
        status = office.run("status", "--json").json()
        assert status["open_incidents"] == 1
        assert "playbook.invalid" in [a["kind"] for a in status["alerts"]]
    finally:
        d.stop()
    assert "2 playbook(s) loaded" in d.log() and "1 refused" in d.log()


@pytest.mark.requires_sshd
def test_upload_with_a_pinned_host_key_and_an_allow_listed_command(
        tmp_path: Path, smtp_server: SmtpServer, ssh_server: Any) -> None:
    folder = tmp_path / "pb"
    folder.mkdir()
    (folder / "send.yaml").write_text("""id: send
version: 1
name: "Gửi hồ sơ"
severity: high
trigger:
  event: logs.tampered
steps:
  - id: report
    action: report
    on_success: upload
  - id: upload
    action: upload
    with: {to: cong-an}
    on_success: mark
  - id: mark
    action: command
    with: {name: mark}
""", encoding="utf-8")
    marker = tmp_path / "ran"
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def office_with(fingerprint: str, name: str) -> Office:
        root = tmp_path / name
        return Office(root, [target_toml("local", str(root / "repo"))], tail=TAIL.format(
            playbooks=folder, port=smtp_server.port, drop=root / "drop") + f"""
[playbooks.commands]
mark = ["/usr/bin/touch", "{marker}"]

[[playbooks.uploads]]
name = "cong-an"
host = "127.0.0.1"
port = {ssh_server.port}
user = "root"
identity = "{ssh_server.client_key_path}"
host_key_fingerprint = "{fingerprint}"
remote_dir = "{inbox}"
""").write()

    good = office_with(ssh_server.host_key_fingerprint, "good")
    assert good.run("init").code == 0
    done = good.run("playbook", "test", "send", "--event",
                    str(event_file(good, "logs-tampered")), "--json")
    assert done.code == 0, done.err + done.out
    doc = done.json()
    sent = inbox / doc["incident"] / "incident.md"
    assert sent.read_text(encoding="utf-8").startswith(f"# Báo cáo sự cố {doc['incident']}")
    assert marker.exists()  # the allow-listed command ran (argv, no shell)
    marker.unlink()

    wrong = office_with("SHA256:" + "A" * 43, "wrong")  # a server that is not the pinned one
    assert wrong.run("init").code == 0
    done = wrong.run("playbook", "test", "send", "--event",
                     str(event_file(wrong, "logs-tampered")), "--json")
    assert done.code == 3
    upload = next(s for s in done.json()["steps"] if s["step"] == "upload")
    assert not upload["ok"] and "not the pinned" in upload["error"]
    assert not marker.exists()  # the run stopped at the failed upload
    assert len(list(inbox.iterdir())) == 1  # nothing more was sent
