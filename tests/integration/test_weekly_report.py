"""``secops report weekly`` and the daemon's Monday job against a real office: restic, the
office GPG key (``gpg --verify``: the signed PDF verifies, a tampered one does not), and mail
through the aiosmtpd fixture, sent once per week however often the job runs."""

from __future__ import annotations

import email.message
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from integration.office import Office, Result, target_toml
from integration.servers import LOOPBACK, SmtpServer
from secops.config.loader import load_config
from secops.reports.weekly import default_week, run_weekly

pytestmark = [pytest.mark.requires_restic, pytest.mark.requires_gpg]

OFFICE_MAIL = "lanh-dao@tanky.example"


class FakeClock:
    """Monday 07:00 local, the week after now: the week being reported is this one."""

    def __init__(self) -> None:
        today = datetime.now().astimezone().date()
        monday = today + timedelta(days=7 - today.weekday())
        self.t = datetime.combine(monday, time(7, 0)).astimezone()

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def secops(office: Office, *args: str) -> Result:
    env = {"PATH": os.environ["PATH"], "HOME": str(office.root), "LANG": "C.UTF-8"}
    done = subprocess.run([sys.executable, "-m", "secops", "--config", str(office.config), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def gpg_verify(office: Office, sig: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--homedir", str(office.state / "gnupg"), "--batch",
                           "--verify", str(sig), str(data)],
                          capture_output=True, text=True, timeout=60, check=False)


def office_with_two_backups(tmp_path: Path, tail: str = "") -> Office:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))], tail=tail).write()
    assert o.run("init").code == 0
    assert o.run("backup", "now").code == 0
    (o.data / "ghi-chú-thay-đổi.txt").write_text("Thay đổi sau lần sao lưu đầu\n",
                                                 encoding="utf-8")
    assert o.run("backup", "now").code == 0
    return o


def this_week() -> str:
    return default_week(FakeClock().now())


def test_cli_writes_a_signed_report_and_a_tampered_pdf_fails(tmp_path: Path) -> None:
    o = office_with_two_backups(tmp_path)
    week = this_week()
    done = secops(o, "report", "weekly", "--week", week, "--json")
    assert done.code == 0, done.err
    out = done.json()
    assert set(out) >= {"report", "pdf", "signature"} and out["week"] == week
    html, pdf, sig = Path(out["report"]), Path(out["pdf"]), Path(out["signature"])
    assert html.name == f"weekly-{week}.vi.html" and pdf.parent == o.state / "reports"
    assert pdf.name == f"weekly-{week}.vi.pdf" and sig.name == f"weekly-{week}.vi.pdf.asc"
    assert pdf.read_bytes().startswith(b"%PDF") and sig.read_text().startswith(
        "-----BEGIN PGP SIGNATURE-----")
    page = html.read_text(encoding="utf-8")
    assert '<html lang="vi">' in page and "Sao lưu theo nơi lưu trữ" in page
    doc = json.loads(Path(out["json"]).read_text(encoding="utf-8"))
    [local] = doc["backups"]["targets"]
    assert (local["ok"], local["failed"], local["success_rate"]) == (2, 0, 100.0)
    assert local["rpo"]["gaps"] == 1
    [repo] = doc["storage"]["targets"]
    assert repo["ok"] is True and repo["total_size"] > 0 and repo["snapshots"] == 2
    assert doc["audit"]["ok"] is True and doc["signing_key"] == out["fingerprint"]

    good = gpg_verify(o, sig, pdf)
    assert good.returncode == 0, good.stderr
    assert out["fingerprint"] in good.stderr.replace(" ", "")
    tampered = tmp_path / "tampered.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    assert gpg_verify(o, sig, tampered).returncode != 0

    records = [json.loads(line) for line in
               (o.state / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    [rec] = [r for r in records if r["kind"] == "report.weekly"]
    assert rec["data"]["pdf_sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert rec["data"]["week"] == week

    vietnamese = {p: p.read_bytes() for p in (html, pdf, sig, Path(out["json"]))}
    english = secops(o, "report", "weekly", "--week", week, "--lang", "en", "--json")
    assert english.code == 0, english.err
    en = english.json()
    assert Path(en["pdf"]).name == f"weekly-{week}.en.pdf" and en["revision"] == 1
    assert "Backups per target" in Path(en["report"]).read_text(encoding="utf-8")
    assert gpg_verify(o, Path(en["signature"]), Path(en["pdf"])).returncode == 0
    assert {p: p.read_bytes() for p in vietnamese} == vietnamese   # the Vietnamese one stays
    assert gpg_verify(o, sig, pdf).returncode == 0


def test_bad_week_is_exit_2_without_work(tmp_path: Path) -> None:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))]).write()
    done = secops(o, "report", "weekly", "--week", "2026-11", "--json")
    assert done.code == 2 and "YYYY-Www" in done.err and done.out == ""
    assert not (o.state / "reports").exists()


def test_without_the_office_key_nothing_is_presented_as_signed(tmp_path: Path) -> None:
    o = office_with_two_backups(tmp_path)
    subprocess.run(["gpgconf", "--homedir", str(o.state / "gnupg"), "--kill", "all"],
                   capture_output=True, timeout=30, check=False)
    (o.state / "gnupg").rename(tmp_path / "gnupg-elsewhere")
    done = secops(o, "report", "weekly", "--week", this_week(), "--json")
    assert done.code == 3 and "GPG key" in done.err and done.out == ""
    assert not list((o.state / "reports").glob("weekly-*"))


def test_monday_job_mails_the_signed_pdf_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    tail = (f'[notify]\nsmtp_host = "{LOOPBACK}"\nsmtp_port = {smtp_server.port}\n'
            'smtp_security = "none"\nsmtp_from = "secops@tanky.example"\n'
            f'[notify.recipients]\noffice = ["{OFFICE_MAIL}"]\n')
    o = office_with_two_backups(tmp_path, tail)
    cfg = load_config(o.config)
    clock = FakeClock()
    smtp_server.clear()

    first = run_weekly(cfg, clock)
    assert first["created"] is True and first["week"] == this_week()
    assert [r["ok"] for r in first["delivery"]] == [True]
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.rcpt_tos == (OFFICE_MAIL,)
    msg = mail.message
    assert f"Báo cáo tuần {first['week']}" in str(msg["Subject"])
    parts = {str(p.get_filename()): p for p in msg.iter_attachments()
             if isinstance(p, email.message.EmailMessage)}
    pdf_name, sig_name = Path(first["pdf"]).name, Path(first["signature"]).name
    assert set(parts) == {pdf_name, sig_name}
    assert parts[pdf_name].get_content_type() == "application/pdf"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and "gpg --verify" in body.get_content()
    received = tmp_path / "received"
    received.mkdir()
    for name, part in parts.items():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        (received / name).write_bytes(payload)
    assert gpg_verify(o, received / sig_name, received / pdf_name).returncode == 0

    pdf_mtime = Path(first["pdf"]).stat().st_mtime_ns
    second = run_weekly(cfg, clock)
    assert second["created"] is False and second["delivery"] == "already queued"
    assert second["pdf"] == first["pdf"] and Path(first["pdf"]).stat().st_mtime_ns == pdf_mtime
    assert len(smtp_server.messages) == 1                  # send_now is synchronous
    records = (o.state / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert records.count('"kind":"report.weekly"') == 1

    # the week again, by hand, after it was mailed: a new revision; the mailed one stays
    mailed = {p: p.read_bytes() for p in map(Path, (first["pdf"], first["signature"],
                                                   first["report"], first["json"]))}
    again = secops(o, "report", "weekly", "--week", first["week"])
    assert again.code == 0, again.err
    r2 = o.state / "reports" / f"weekly-{first['week']}.vi.r2.pdf"
    assert "revision 2:" in again.out and str(r2) in again.out
    assert f"revision 1 ({pdf_name}, delivered " in again.out and "kept unchanged" in again.out
    assert {p: p.read_bytes() for p in mailed} == mailed
    assert gpg_verify(o, Path(first["signature"]), Path(first["pdf"])).returncode == 0
    assert gpg_verify(o, r2.with_name(r2.name + ".asc"), r2).returncode == 0
    page = r2.with_suffix(".html").read_text(encoding="utf-8")
    assert f"Bản lập lần 2 của báo cáo tuần này. Bản lần 1 ({pdf_name}, lập lúc " in page
    assert "đã gửi lúc" in page and "được giữ nguyên, không sửa." in page
    doc = json.loads(r2.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["revision"] == 2 and doc["previous"]["pdf"] == pdf_name
    third = run_weekly(cfg, clock)                 # the daemon: delivered already, nothing sent
    assert third["created"] is False and third["delivery"] == "already queued"
    assert len(smtp_server.messages) == 1
