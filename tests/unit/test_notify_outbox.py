"""The notify outbox without a mail server: routing, files on disk, the retry schedule, secrets.

Failures are produced for real: a drop folder that is a regular file cannot be written, and a
loopback port with nothing listening refuses SMTP connections.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from integration.servers import free_port
from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.errors import ConfigError, UsageError
from secops.playbooks.notify import Outbox, backoff, build_email

SUBJECT = "[secops] ransomware.suspected tại UBND xã Tân Kỳ"
BODY = "Sự cố INC-tan-ky-20261128-1: 12 điểm. Đề nghị kiểm tra máy chủ ngay."
T0 = 1_790_000_000.0
PASSWORD = "Mật-khẩu-bí-mật-7f3a9c"   # recognisable: must never leave the password file


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_cfg(tmp_path: Path, **notify: Any) -> Config:
    raw: dict[str, Any] = {
        "office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky"},
        "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(tmp_path / "data")]},
        "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "repo")}]},
        "notify": notify,
    }
    return parse_config(raw, tmp_path / "secops.toml")


ROUTES: dict[str, Any] = {
    "smtp_host": "127.0.0.1",
    "recipients": {"office": ["chu-tich@tanky.example", "van-phong@tanky.example"],
                   "police": ["cong-an@tanky.example", "chu-tich@tanky.example"],
                   "empty": []},
    "webhooks": {"chat": "https://chat.example/hook/T0KEN", "it": "http://127.0.0.1:9/x"},
}


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}")
    yield lines
    logger.remove(sink)


# ---------------------------------------------------------------- routing


def test_one_message_per_channel(tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4")
    cfg = make_cfg(tmp_path, drop_dir=str(tmp_path / "drop"), **ROUTES)
    msgs = Outbox(cfg, FakeClock()).enqueue(
        to=["office", "police", "chat", "drop", "can-bo@tinh.example"], subject=SUBJECT,
        body=BODY, attachments=[str(report)], incident="INC-tan-ky-20261128-1")
    assert [(m.channel, m.to) for m in msgs] == [
        ("email", ["chu-tich@tanky.example", "van-phong@tanky.example",
                   "cong-an@tanky.example", "can-bo@tinh.example"]),   # one mail, no duplicate
        ("webhook", ["chat"]),
        ("file", ["drop"]),
    ]
    assert msgs[0].attachments == [str(report)]
    assert msgs[1].attachments == msgs[2].attachments == []
    assert {m.incident for m in msgs} == {"INC-tan-ky-20261128-1"}
    assert all(m.attempts == 0 and m.next_try == T0 and m.created == T0 for m in msgs)
    assert len({m.id for m in msgs}) == 3


def test_rendered_comma_list_and_single_string(tmp_path: Path) -> None:
    outbox = Outbox(make_cfg(tmp_path, **ROUTES), FakeClock())
    msgs = outbox.enqueue(to="office, it", subject=SUBJECT, body=BODY)
    assert [(m.channel, m.to) for m in msgs] == [
        ("email", ["chu-tich@tanky.example", "van-phong@tanky.example"]), ("webhook", ["it"])]


def test_unknown_names_are_a_usage_error_and_nothing_is_queued(tmp_path: Path) -> None:
    outbox = Outbox(make_cfg(tmp_path, **ROUTES), FakeClock())
    with pytest.raises(UsageError) as exc:
        outbox.enqueue(to=["office", "polise", "drop", "sms"], subject=SUBJECT, body=BODY)
    assert exc.value.exit_code == 2
    text = str(exc.value)
    assert "'polise'" in text and "'sms'" in text and "'drop'" in text  # no drop_dir configured
    assert "'office'" not in text
    assert "groups: office, police, empty" in text and "webhooks: chat, it" in text
    assert outbox.pending() == []


@pytest.mark.parametrize("to", [[], [""], [" , "], ["empty"]])
def test_nobody_to_notify(tmp_path: Path, to: list[str]) -> None:
    with pytest.raises(UsageError):
        Outbox(make_cfg(tmp_path, **ROUTES), FakeClock()).enqueue(to=to, subject="s", body="b")


def test_mail_without_smtp_host_is_a_config_error(tmp_path: Path) -> None:
    outbox = Outbox(make_cfg(tmp_path, recipients={"office": ["a@b.example"]}), FakeClock())
    with pytest.raises(ConfigError, match=r"notify\.smtp_host"):
        outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x.example/", "chat.example/hook"])
def test_webhook_must_be_http(tmp_path: Path, url: str) -> None:
    # refused when the config is loaded (`secops config check`), before any message
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.chat: must be an http"):
        Outbox(make_cfg(tmp_path, webhooks={"chat": url}), FakeClock()).enqueue(
            to=["chat"], subject=SUBJECT, body=BODY)


def test_bad_group_address_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, smtp_host="h", recipients={"office": ["a@b.example\r\nBcc: x@y"]})
    with pytest.raises(ConfigError, match=r"notify\.recipients\.office"):
        Outbox(cfg, FakeClock()).enqueue(to=["office"], subject=SUBJECT, body=BODY)


def test_missing_attachment_is_a_usage_error(tmp_path: Path) -> None:
    outbox = Outbox(make_cfg(tmp_path, **ROUTES), FakeClock())
    with pytest.raises(UsageError, match="attachment"):
        outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY,
                       attachments=[str(tmp_path / "gone.pdf")])
    assert outbox.pending() == []


def test_subject_stays_one_header_line(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, **ROUTES)
    [m] = Outbox(cfg, FakeClock()).enqueue(to=["office"], subject="a\r\nBcc: evil@x.example",
                                           body=BODY)
    assert m.subject == "a Bcc: evil@x.example"
    mail = build_email(cfg, m)
    assert mail["Bcc"] is None and mail["Subject"] == "a Bcc: evil@x.example"


# ---------------------------------------------------------------- files


def test_outbox_files_are_private_and_hold_utf8(tmp_path: Path) -> None:
    outbox = Outbox(make_cfg(tmp_path, **ROUTES), FakeClock())
    [m] = outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY)
    folder = tmp_path / "state" / "outbox"
    for d in (folder, folder / "sent", folder / "failed"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    path = folder / f"{m.id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert BODY.encode("utf-8") in raw   # readable UTF-8, not \u escapes
    doc = json.loads(raw)
    assert doc["subject"] == SUBJECT and doc["channel"] == "email" and doc["attempts"] == 0
    assert [p.name for p in folder.iterdir() if p.is_file() and p.name != ".lock"] == [path.name]
    assert outbox.pending() == [m]
    assert Outbox(make_cfg(tmp_path, **ROUTES)).pending() == [m]   # survives a restart


def test_unreadable_outbox_file_is_set_aside(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, drop_dir=str(tmp_path / "drop"))
    outbox = Outbox(cfg, FakeClock())
    [good] = outbox.enqueue(to=["drop"], subject=SUBJECT, body=BODY)
    bad = tmp_path / "state" / "outbox" / "0123456789abcdef.json"
    bad.write_text("{not json")
    assert outbox.pending() == [good]
    results = outbox.deliver_due()
    assert {(r["id"], r["ok"], r["gave_up"]) for r in results} == {
        ("0123456789abcdef", False, True), (good.id, True, False)}
    assert (tmp_path / "state" / "outbox" / "failed" / bad.name).exists()
    assert outbox.pending() == []


# ---------------------------------------------------------------- schedule


def test_backoff_doubles_from_30_s_up_to_an_hour() -> None:
    assert [backoff(n) for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(10_000) == 3600


def test_retry_schedule_then_give_up(tmp_path: Path, log_lines: list[str]) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")     # the drop folder is a file: every try fails
    clock = FakeClock()
    outbox = Outbox(make_cfg(tmp_path, drop_dir=str(blocked), retry_max_hours=3), clock)
    [m] = outbox.enqueue(to=["drop"], subject=SUBJECT, body=BODY)
    delays: list[float] = []
    while True:
        [r] = outbox.deliver_due()
        assert r["ok"] is False and "drop folder" in r["error"]
        if r["gave_up"]:
            break
        [queued] = outbox.pending()
        delays.append(queued.next_try - clock.t)
        clock.t = queued.next_try - 1
        assert outbox.deliver_due() == []          # not due yet: no try
        clock.t += 1
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3 * 3600 - 7410]
    assert clock.t == T0 + 3 * 3600                # the last try happens at the deadline
    assert outbox.pending() == []
    failed = json.loads((tmp_path / "state" / "outbox" / "failed" / f"{m.id}.json").read_text())
    assert failed["attempts"] == 10 and "drop folder" in failed["last_error"]
    assert any("notify.gave_up" in line for line in log_lines)


def test_send_now_ignores_the_schedule_but_keeps_failures_queued(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    outbox = Outbox(make_cfg(tmp_path, drop_dir=str(blocked)), FakeClock())
    msgs = outbox.enqueue(to=["drop"], subject=SUBJECT, body=BODY)
    outbox.send_now(msgs)
    [r] = outbox.send_now(msgs)                    # not due, tried anyway
    assert r["ok"] is False and r["gave_up"] is False
    [queued] = outbox.pending()
    assert queued.attempts == 2 and queued.next_try == T0 + 60


def test_an_unreachable_server_is_tried_once_per_pass(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none",
                   recipients={"office": ["a@tanky.example"]})
    outbox = Outbox(cfg, FakeClock())
    for _ in range(3):
        outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY)
    first, *rest = outbox.deliver_due()
    assert first["error"].startswith("connection refused by 127.0.0.1:")
    assert [r["error"] for r in rest] == [f"not tried: {first['error']}"] * 2
    assert [m.attempts for m in outbox.pending()] == [1, 1, 1]


# ---------------------------------------------------------------- secrets


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file())


def test_smtp_password_never_leaves_its_file(tmp_path: Path, log_lines: list[str]) -> None:
    pw = tmp_path / "smtp.pw"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    pw.chmod(0o600)
    cfg = make_cfg(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none",
                   smtp_user="secops", smtp_password_file=str(pw), smtp_timeout_seconds=5,
                   recipients={"office": ["a@tanky.example"]})
    outbox = Outbox(cfg, FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY))
    assert r["ok"] is False and r["error"].startswith("connection refused by 127.0.0.1:")
    [queued] = outbox.pending()
    assert queued.attempts == 1 and queued.last_error == r["error"]
    pw.chmod(0o644)                                # now refused before any connection
    [r2] = outbox.send_now(outbox.pending())
    assert "readable by others" in r2["error"] and str(pw) in r2["error"]
    texts = [_all_text(tmp_path / "state"), json.dumps([r, r2], ensure_ascii=False),
             "\n".join(log_lines)]
    assert all(PASSWORD not in t and "7f3a9c" not in t for t in texts)


def test_webhook_url_and_secret_stay_out_of_errors(tmp_path: Path, log_lines: list[str]) -> None:
    key = tmp_path / "hook.key"
    key.write_text(PASSWORD)
    key.chmod(0o600)
    url = f"http://127.0.0.1:{free_port()}/hook/T0KEN-abc"
    cfg = make_cfg(tmp_path, webhooks={"chat": url}, webhook_secret_file=str(key))
    outbox = Outbox(cfg, FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["chat"], subject=SUBJECT, body=BODY))
    assert r["ok"] is False and r["error"] == "connection refused by webhook chat (127.0.0.1)"
    texts = [_all_text(tmp_path / "state"), r["error"], "\n".join(log_lines)]
    assert all("T0KEN" not in t and PASSWORD not in t for t in texts)
