"""The notify outbox against real servers on loopback: aiosmtpd (plain, STARTTLS, implicit TLS,
AUTH), an HTTP server for webhooks, and a local drop folder. Time is an injected clock.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from loguru import logger

from secops.config.loader import parse_config
from secops.config.schema import Config
from secops.playbooks.notify import Outbox

from .servers import LOOPBACK, SmtpServer, free_port

SUBJECT = "[secops] ransomware.suspected tại UBND xã Tân Kỳ"
BODY = "Sự cố INC-tan-ky-20261128-1: 12 điểm.\nĐề nghị Công an xã kiểm tra máy chủ ngay."
INCIDENT = "INC-tan-ky-20261128-1"
T0 = 1_790_000_000.0
PASSWORD = "Mật-khẩu-SMTP-4e1d"        # UTF-8: smtplib.login cannot send it, AUTH PLAIN can
ASCII_PASSWORD = "plain-Ascii-5c2b"
OFFICE = ["chu-tich@tanky.example", "cong-an@tanky.example"]


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def make_cfg(tmp_path: Path, **notify: Any) -> Config:
    raw: dict[str, Any] = {
        "office": {"name": "UBND xã Tân Kỳ", "code": "tan-ky"},
        "paths": {"state_dir": str(tmp_path / "state"), "watch": [str(tmp_path / "data")]},
        "backup": {"targets": [{"name": "local", "repository": str(tmp_path / "repo")}]},
        "notify": {"recipients": {"office": OFFICE}, "smtp_from": "secops@tanky.example",
                   "smtp_timeout_seconds": 5, **notify},
    }
    return parse_config(raw, tmp_path / "secops.toml")


def smtp_cfg(tmp_path: Path, port: int, **notify: Any) -> Config:
    return make_cfg(tmp_path, smtp_host=LOOPBACK, smtp_port=port,
                    **{"smtp_security": "none", **notify})


# ---------------------------------------------------------------- plain SMTP (the fixture)


def test_mail_arrives_with_vietnamese_text_and_attachment(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    smtp_server.clear()
    report = tmp_path / "biên-bản-sự-cố.pdf"
    report.write_bytes(b"%PDF-1.4\n" + bytes(range(256)))
    outbox = Outbox(smtp_cfg(tmp_path, smtp_server.port), FakeClock())
    msgs = outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY,
                          attachments=[str(report)], incident=INCIDENT)
    [r] = outbox.send_now(msgs)
    assert r == {"id": msgs[0].id, "channel": "email", "to": OFFICE, "ok": True, "error": None,
                 "gave_up": False}
    [mail] = smtp_server.wait_for_messages(1)
    assert mail.mail_from == "secops@tanky.example" and list(mail.rcpt_tos) == OFFICE
    m = mail.message
    assert m["Subject"] == SUBJECT and m["From"] == "secops@tanky.example"
    assert m["Message-ID"].startswith(f"<{msgs[0].id}.") and m["Date"]
    assert m["X-Secops-Incident"] == INCIDENT
    body = m.get_body(("plain",))
    assert body is not None and body.get_content().rstrip("\n") == BODY
    [att] = list(m.iter_attachments())
    assert att.get_filename() == report.name and att.get_content_type() == "application/pdf"
    assert att.get_content() == report.read_bytes()
    assert outbox.pending() == []
    sent = json.loads((tmp_path / "state/outbox/sent" / f"{msgs[0].id}.json").read_text())
    assert sent["attempts"] == 1 and sent["last_error"] is None


def test_starttls_required_but_not_offered_sends_nothing(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    smtp_server.clear()
    outbox = Outbox(smtp_cfg(tmp_path, smtp_server.port, smtp_security="starttls"), FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY))
    assert r["ok"] is False and "does not offer STARTTLS" in r["error"]
    assert "clear text" in r["error"]
    assert smtp_server.messages == []
    [queued] = outbox.pending()
    assert queued.attempts == 1


def test_network_down_then_up_delivers_exactly_once(tmp_path: Path) -> None:
    port = free_port()                            # nothing listens here yet
    clock = FakeClock()
    cfg = smtp_cfg(tmp_path, port)
    outbox = Outbox(cfg, clock)
    msgs = outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY, incident=INCIDENT)
    [r] = outbox.send_now(msgs)
    assert r["ok"] is False and r["error"] == f"connection refused by {LOOPBACK}:{port}"
    [queued] = outbox.pending()
    assert queued.attempts == 1 and queued.last_error == r["error"]
    assert queued.next_try == T0 + 30
    with SmtpServer(port) as server:             # the network is back
        assert outbox.deliver_due() == []        # not due yet
        clock.t += 30
        [r] = outbox.deliver_due()
        assert r["ok"] is True and r["id"] == msgs[0].id
        [mail] = server.wait_for_messages(1)
        assert mail.message["Subject"] == SUBJECT
        clock.t += 7 * 24 * 3600
        assert outbox.deliver_due() == []
        assert Outbox(cfg, clock).deliver_due() == []     # a restarted daemon: nothing left
        assert outbox.send_now(msgs) == []                # a repeated step: not sent again
        assert len(server.messages) == 1                  # sends are synchronous: final
    assert outbox.pending() == []


def test_gives_up_after_retry_max_hours(tmp_path: Path) -> None:
    clock = FakeClock()
    outbox = Outbox(smtp_cfg(tmp_path, free_port(), retry_max_hours=2), clock)
    [m] = outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY)
    clock.t = T0 + 2 * 3600 - 1
    [r] = outbox.deliver_due()
    assert r["ok"] is False and r["gave_up"] is False
    assert outbox.pending()[0].next_try == T0 + 2 * 3600    # clamped to the deadline
    clock.t += 1
    [r] = outbox.deliver_due()
    assert r["gave_up"] is True and "connection refused" in r["error"]
    assert outbox.pending() == []
    failed = json.loads((tmp_path / "state/outbox/failed" / f"{m.id}.json").read_text())
    assert failed["attempts"] == 2
    assert not (tmp_path / "state/outbox/sent" / f"{m.id}.json").exists()


def test_concurrent_deliveries_send_each_message_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The daemon and a playbook step (two Outbox objects, two threads) never double-send."""
    smtp_server.clear()
    cfg = smtp_cfg(tmp_path, smtp_server.port)
    first, second = Outbox(cfg, FakeClock()), Outbox(cfg, FakeClock())
    msgs = [m for i in range(6)
            for m in first.enqueue(to=["office"], subject=f"{SUBJECT} #{i}", body=BODY)]
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda o=o: results.extend(o.deliver_due()))
               for o in (first, second, first)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r["id"] for r in results if r["ok"]) == sorted(m.id for m in msgs)
    smtp_server.wait_for_messages(6)
    assert sorted(mail.message["Subject"] for mail in smtp_server.messages) == sorted(
        m.subject for m in msgs)


# ---------------------------------------------------------------- TLS and AUTH (own aiosmtpd)


@dataclass
class Collecting:
    mails: list[Envelope]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(envelope)
        return "250 OK"


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: object) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"secops"
          and auth_data.password in (PASSWORD.encode("utf-8"), ASCII_PASSWORD.encode()))
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and the self-signed certificate that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secops test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, tls: tuple[ssl.SSLContext, Path]) -> None:
    """The client (ssl.create_default_context) trusts the test certificate."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))


@pytest.fixture
def smtp_tls(tls: tuple[ssl.SSLContext, Path]) -> Iterator[tuple[Controller, list[Envelope]]]:
    """aiosmtpd that requires STARTTLS and offers AUTH only after it."""
    mails: list[Envelope] = []
    controller = Controller(Collecting(mails), hostname=LOOPBACK, port=free_port(),
                            tls_context=tls[0], require_starttls=True,
                            authenticator=_authenticator)
    controller.start()
    yield controller, mails
    controller.stop()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}")
    yield lines
    logger.remove(sink)


def _password_file(tmp_path: Path, text: str) -> str:
    pw = tmp_path / "smtp.pw"
    pw.write_text(text + "\n", encoding="utf-8")
    pw.chmod(0o600)
    return str(pw)


@pytest.mark.parametrize("password", [PASSWORD, ASCII_PASSWORD])
def test_starttls_and_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            tls: tuple[ssl.SSLContext, Path],
                            smtp_tls: tuple[Controller, list[Envelope]], password: str) -> None:
    controller, mails = smtp_tls
    cfg = make_cfg(tmp_path, smtp_host=LOOPBACK, smtp_port=controller.port,
                   smtp_security="starttls", smtp_user="secops",
                   smtp_password_file=_password_file(tmp_path, password))
    outbox = Outbox(cfg, FakeClock())
    msgs = outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY)
    [r] = outbox.send_now(msgs)
    assert r["ok"] is False and "certificate" in r["error"] and "not trusted" in r["error"]
    assert mails == []
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[1]))   # now the client trusts the server
    [r] = outbox.send_now(msgs)
    assert r["ok"] is True, r["error"]
    [mail] = mails
    assert mail.rcpt_tos == OFFICE
    assert isinstance(mail.original_content, bytes)
    parsed = email.message_from_bytes(mail.original_content, policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT


@pytest.mark.parametrize("wrong", ["Sai-mật-khẩu-91b7", "wrong-ascii-91b7"])
def test_wrong_password_fails_without_leaking_it(
    tmp_path: Path, trusted: None, smtp_tls: tuple[Controller, list[Envelope]],
    log_lines: list[str], wrong: str
) -> None:
    controller, mails = smtp_tls
    cfg = make_cfg(tmp_path, smtp_host=LOOPBACK, smtp_port=controller.port,
                   smtp_user="secops", smtp_password_file=_password_file(tmp_path, wrong))
    outbox = Outbox(cfg, FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["office"], subject=SUBJECT, body=BODY))
    assert r["ok"] is False and r["error"].startswith("authentication failed at")
    assert mails == []
    [queued] = outbox.pending()
    assert queued.attempts == 1 and queued.last_error == r["error"]
    files = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    texts = files + json.dumps(r, ensure_ascii=False) + "\n".join(log_lines)
    assert "authentication failed" in texts and "91b7" not in texts


def test_implicit_tls(tmp_path: Path, tls: tuple[ssl.SSLContext, Path], trusted: None) -> None:
    mails: list[Envelope] = []
    controller = Controller(Collecting(mails), hostname=LOOPBACK, port=free_port(),
                            ssl_context=tls[0])
    controller.start()
    try:
        cfg = make_cfg(tmp_path, smtp_host=LOOPBACK, smtp_port=controller.port,
                       smtp_security="tls")
        outbox = Outbox(cfg, FakeClock())
        [r] = outbox.send_now(outbox.enqueue(to=["cong-an@tanky.example"], subject=SUBJECT,
                                             body=BODY))
        assert r["ok"] is True, r["error"]
        assert [m.rcpt_tos for m in mails] == [["cong-an@tanky.example"]]
    finally:
        controller.stop()


# ---------------------------------------------------------------- webhook


@dataclass
class Hook:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]]
    status: list[int]


@pytest.fixture
def hook() -> Iterator[Hook]:
    requests: list[tuple[str, dict[str, str], bytes]] = []
    status = [204]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            requests.append((self.path, dict(self.headers.items()), body))
            self.send_response(status[0])
            if status[0] in (301, 302, 307):
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            requests.append(("GET " + self.path, dict(self.headers.items()), b""))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Hook(f"http://{LOOPBACK}:{server.server_address[1]}/hook/T0KEN-77", requests,
                   status)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_webhook_posts_signed_json(tmp_path: Path, hook: Hook) -> None:
    key = tmp_path / "hook.key"
    key.write_text("khóa-webhook\n", encoding="utf-8")
    key.chmod(0o600)
    cfg = make_cfg(tmp_path, webhooks={"chat": hook.url}, webhook_secret_file=str(key))
    outbox = Outbox(cfg, FakeClock())
    [m] = outbox.enqueue(to=["chat"], subject=SUBJECT, body=BODY, incident=INCIDENT)
    [r] = outbox.send_now([m])
    assert r["ok"] is True and r["to"] == ["chat"]
    [(path, headers, body)] = hook.requests
    assert path == "/hook/T0KEN-77"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"office": "tan-ky", "incident": INCIDENT, "subject": SUBJECT,
                                "body": BODY, "created": "2026-09-21T14:13:20Z", "id": m.id}
    expected = hmac.new("khóa-webhook".encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Secops-Signature"] == f"sha256={expected}"
    tampered = hmac.new(b"khoa-webhook", body, hashlib.sha256).hexdigest()
    assert headers["X-Secops-Signature"] != f"sha256={tampered}"


def test_webhook_without_secret_has_no_signature(tmp_path: Path, hook: Hook) -> None:
    outbox = Outbox(make_cfg(tmp_path, webhooks={"chat": hook.url}), FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["chat"], subject=SUBJECT, body=BODY))
    assert r["ok"] is True
    [(_, headers, _)] = hook.requests
    assert "X-Secops-Signature" not in headers


@pytest.mark.parametrize("status", [500, 302])
def test_webhook_error_or_redirect_stays_queued(tmp_path: Path, hook: Hook, status: int) -> None:
    hook.status[0] = status
    outbox = Outbox(make_cfg(tmp_path, webhooks={"chat": hook.url}), FakeClock())
    [r] = outbox.send_now(outbox.enqueue(to=["chat"], subject=SUBJECT, body=BODY))
    assert r["ok"] is False and r["error"] == f"webhook chat ({LOOPBACK}) answered HTTP {status}"
    assert [p for p, _, _ in hook.requests] == ["/hook/T0KEN-77"]   # the redirect not followed
    assert outbox.pending()[0].attempts == 1


# ---------------------------------------------------------------- file drop


def test_file_drop(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    outbox = Outbox(make_cfg(tmp_path, drop_dir=str(drop)), FakeClock())
    [m] = outbox.enqueue(to=["drop"], subject=SUBJECT, body=BODY, incident=INCIDENT)
    [r] = outbox.send_now([m])
    assert r["ok"] is True and r["channel"] == "file"
    [f] = list(drop.iterdir())                  # no temp file left behind
    assert f.name == f"{int(T0)}-{m.id}.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    doc = json.loads(f.read_text(encoding="utf-8"))
    assert doc == {"office": "tan-ky", "incident": INCIDENT, "subject": SUBJECT, "body": BODY,
                   "created": "2026-09-21T14:13:20Z", "id": m.id}
    assert outbox.pending() == []
