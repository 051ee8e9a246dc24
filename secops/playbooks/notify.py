"""The ``notify`` action: messages queued on disk, delivered by SMTP, webhook or a file drop.

``Outbox.enqueue`` turns the playbook's ``to:`` names into one message per channel and writes
each to ``state_dir/outbox/<id>.json`` (0600, atomic). ``deliver_due`` and ``send_now`` try
them: a delivered message moves to ``outbox/sent/``; a failed one waits (30 s, doubling, at
most an hour) and is tried again until ``notify.retry_max_hours`` after it was queued, then it
moves to ``outbox/failed/`` and is reported as given up. A lock file makes every try of one
message exclusive, so the daemon and a playbook step never send it twice.

Errors are short sentences for a person. They never contain the SMTP password, the webhook
secret or a webhook URL (such URLs often carry a token): a webhook is named by its config name
and host only.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import fcntl
import hashlib
import hmac
import json
import mimetypes
import os
import re
import secrets
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.message import Message as MimeHeaders
from http.client import HTTPException
from pathlib import Path
from typing import IO, Any, Literal

import msgspec
from loguru import logger

from secops.clock import iso_utc, local_text, parse_iso
from secops.config.schema import Config, Notify
from secops.errors import ConfigError, OperationalError, SecopsError, UsageError
from secops.files import atomic_write, ensure_private_dir, read_secret
from secops.pathtext import display

Channel = Literal["email", "webhook", "file"]
DROP = "drop"
BACKOFF_FIRST_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
WEBHOOK_TIMEOUT_SECONDS = 15.0
_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+")
_ID = re.compile(r"[0-9a-f]{16}")
_ISO_UTC = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\b")


@dataclass
class Message:
    id: str
    created: float
    channel: Channel
    to: list[str]
    subject: str
    body: str
    attachments: list[str] = field(default_factory=list)
    incident: str | None = None
    attempts: int = 0
    next_try: float = 0.0
    last_error: str | None = None


class DeliveryError(OperationalError):
    """One try of one message failed; ``unreachable``: the server could not be reached."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try: 30, 60, 120, ... at most 3600."""
    exponent = min(max(attempts - 1, 0), 20)
    return min(BACKOFF_FIRST_SECONDS * float(2**exponent), BACKOFF_MAX_SECONDS)


def payload(cfg: Config, msg: Message) -> bytes:
    """The JSON document a webhook receives and a file drop holds (UTF-8, times in UTC)."""
    created = iso_utc(datetime.fromtimestamp(msg.created, UTC))
    doc = {"office": cfg.office.code, "incident": msg.incident, "subject": msg.subject,
           "body": msg.body, "created": created, "id": msg.id}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def local_times(text: str) -> str:
    """Every ISO 8601 UTC time in a message's text (an event's ``{event.time}``) as people
    read it: local time with the zone, ``15/03/2026 09:30:12 (UTC+07:00)``. The JSON around
    a webhook's or a file drop's text keeps UTC."""
    def local(m: re.Match[str]) -> str:
        ts = parse_iso(m.group(0))
        return m.group(0) if ts is None else local_text(ts, seconds=True)

    return _ISO_UTC.sub(local, text)


def _result(msg: Message, ok: bool, error: str | None, gave_up: bool) -> dict[str, Any]:
    return {"id": msg.id, "channel": msg.channel, "to": list(msg.to), "ok": ok,
            "error": error, "gave_up": gave_up}


class Outbox:
    """The queue under ``state_dir/outbox/``: one JSON file per message waiting to go out."""

    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.folder = Path(cfg.paths.state_dir) / "outbox"
        self.sent_dir = self.folder / "sent"
        self.failed_dir = self.folder / "failed"
        for folder in (self.folder, self.sent_dir, self.failed_dir):
            ensure_private_dir(folder)

    # ------------------------------------------------------------ queueing

    def enqueue(self, *, to: Sequence[str] | str, subject: str, body: str,
                attachments: Sequence[str] = (), incident: str | None = None) -> list[Message]:
        """Queue one message per channel for ``to`` (groups, webhooks, "drop", addresses)."""
        plan = route(self.cfg, to)
        files = _check_attachments(attachments)
        now = self.clock()
        subject = local_times(re.sub(r"[\r\n]+", " ", subject).strip())  # one header line
        body = local_times(body)
        # a file name that is not UTF-8 (from an event): its stray bytes as \xff, marked
        subject, body = display(subject), display(body)
        msgs = [Message(id=secrets.token_hex(8), created=now, channel=channel, to=dest,
                        subject=subject, body=body,
                        attachments=files if channel == "email" else [],
                        incident=incident, next_try=now)
                for channel, dest in plan]
        for m in msgs:
            self._save(self.folder, m)
            logger.info("notify.queued {} {} to {}", m.id, m.channel, ", ".join(m.to))
        return msgs

    def pending(self) -> list[Message]:
        """The messages still waiting, oldest first."""
        return self._scan()[0]

    # ------------------------------------------------------------ delivery

    def deliver_due(self) -> list[dict[str, Any]]:
        """Try every message whose time has come; one result per try (and per bad file)."""
        msgs, corrupt = self._scan()
        results = [self._quarantine(path) for path in corrupt]
        down: dict[str, str] = {}
        for m in msgs:
            if m.next_try <= self.clock():
                r = self._attempt(m.id, due_only=True, down=down)
                if r is not None:
                    results.append(r)
        return results

    def send_now(self, msgs: Sequence[Message]) -> list[dict[str, Any]]:
        """Try ``msgs`` (already queued) once now, whatever their schedule."""
        down: dict[str, str] = {}
        results = []
        for m in msgs:
            r = self._attempt(m.id, due_only=False, down=down)
            if r is not None:
                results.append(r)
        return results

    def _attempt(self, msg_id: str, *, due_only: bool, down: dict[str, str]
                 ) -> dict[str, Any] | None:
        with self._locked():
            m = self._load(self.folder / f"{msg_id}.json")
            now = self.clock()
            if m is None or (due_only and m.next_try > now):
                return None          # sent, given up or rescheduled by someone else meanwhile
            endpoint = m.channel if m.channel != "webhook" else f"webhook {m.to[0]}"
            try:
                if endpoint in down:
                    raise DeliveryError(f"not tried: {down[endpoint]}", unreachable=True)
                warning = self._deliver(m)
            except DeliveryError as e:
                if e.unreachable and endpoint not in down:
                    down[endpoint] = e.message
                return self._failed(m, e.message, now)
            return self._sent(m, warning)

    def _deliver(self, m: Message) -> str | None:
        return deliver(self.cfg, m)

    def _sent(self, m: Message, warning: str | None) -> dict[str, Any]:
        m.attempts += 1
        m.last_error = warning
        self._move(m, self.sent_dir)
        logger.info("notify.sent {} {} to {} (try {})", m.id, m.channel, ", ".join(m.to),
                    m.attempts)
        if warning:
            logger.warning("notify.partial {}: {}", m.id, warning)
        return _result(m, True, warning, False)

    def _failed(self, m: Message, error: str, now: float) -> dict[str, Any]:
        m.attempts += 1
        m.last_error = error
        deadline = m.created + self.cfg.notify.retry_max_hours * 3600.0
        if now >= deadline:
            self._move(m, self.failed_dir)
            logger.warning("notify.gave_up {} {} to {} after {} tries: {}", m.id, m.channel,
                           ", ".join(m.to), m.attempts, error)
            return _result(m, False, error, True)
        m.next_try = min(now + backoff(m.attempts), deadline)
        self._save(self.folder, m)
        logger.warning("notify.retry {} {} (try {} failed: {}); next in {:.0f} s", m.id,
                       m.channel, m.attempts, error, m.next_try - now)
        return _result(m, False, error, False)

    # ------------------------------------------------------------ files

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self, folder: Path, m: Message) -> None:
        atomic_write(folder / f"{m.id}.json", msgspec.json.encode(m), mode=0o600)

    def _move(self, m: Message, folder: Path) -> None:
        self._save(folder, m)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / f"{m.id}.json").unlink()

    def _load(self, path: Path) -> Message | None:
        try:
            m = msgspec.json.decode(path.read_bytes(), type=Message)
        except FileNotFoundError:
            return None
        return m if m.id == path.stem else None

    def _scan(self) -> tuple[list[Message], list[Path]]:
        msgs, corrupt = [], []
        for path in sorted(self.folder.glob("*.json")):
            if (self.sent_dir / path.name).exists():     # sent, then stopped before the unlink
                path.unlink(missing_ok=True)
                continue
            try:
                m = self._load(path)
            except (OSError, msgspec.DecodeError):
                m = None
            if m is not None and _ID.fullmatch(m.id) and m.to:
                msgs.append(m)
            elif path.exists():
                corrupt.append(path)
        msgs.sort(key=lambda m: (m.created, m.id))
        return msgs, corrupt

    def _quarantine(self, path: Path) -> dict[str, Any]:
        with self._locked(), contextlib.suppress(FileNotFoundError):
            os.replace(path, self.failed_dir / path.name)
        error = f"unreadable outbox file {path.name}, moved to {self.failed_dir}"
        logger.error("notify.gave_up {}", error)
        return {"id": path.stem, "channel": None, "to": [], "ok": False, "error": error,
                "gave_up": True}


# ---------------------------------------------------------------- routing


def deliver(cfg: Config, m: Message) -> str | None:
    """One try of one message on its channel; ``DeliveryError`` when it fails."""
    if m.channel == "email":
        return send_email(cfg, m)
    if m.channel == "webhook":
        post_webhook(cfg, m)
    else:
        drop_file(cfg, m)
    return None


def send_direct(cfg: Config, subject: str, body: str) -> list[dict[str, Any]]:
    """One try now to every recipient group and webhook, past the outbox: for an alert
    raised when the disk the outbox lives on has failed (nothing is queued or kept)."""
    names = [*cfg.notify.recipients, *cfg.notify.webhooks]
    if not names:
        return []
    try:
        plan = route(cfg, names)
    except SecopsError as e:
        return [{"ok": False, "error": e.message}]
    results = []
    for channel, to in plan:
        m = Message(id=secrets.token_hex(8), created=time.time(), channel=channel, to=to,
                    subject=display(subject), body=display(local_times(body)))
        try:
            results.append(_result(m, True, deliver(cfg, m), False))
        except DeliveryError as e:
            results.append(_result(m, False, e.message, False))
    return results


def route(cfg: Config, to: Sequence[str] | str) -> list[tuple[Channel, list[str]]]:
    """(channel, to) per message for the ``to:`` names; ``UsageError`` for unknown names.

    An entry may hold several names separated by commas (a rendered ``{vars.who}``).
    """
    n = cfg.notify
    names = [p.strip() for e in ([to] if isinstance(to, str) else to) for p in e.split(",")]
    names = [p for p in names if p]
    if not names:
        raise UsageError("notify: no recipients given")
    addresses: list[str] = []
    hooks: list[str] = []
    drop, unknown = False, []
    for name in names:
        matched = name in n.recipients or name in n.webhooks or (name == DROP and
                                                                 n.drop_dir is not None)
        for address in n.recipients.get(name, []):
            # a group may also name a webhook, or "drop" (the local file drop)
            if address == DROP and n.drop_dir is not None:
                drop = True
                continue
            if address in n.webhooks:
                _check_url(cfg, address)
                hooks.append(address)
                continue
            if not _ADDRESS.fullmatch(address):
                raise ConfigError(f"{cfg.source}: notify.recipients.{name}: {address!r} is not "
                                  "an e-mail address")
            addresses.append(address)
        if name in n.webhooks:
            _check_url(cfg, name)
            hooks.append(name)
        drop = drop or (name == DROP and n.drop_dir is not None)
        if not matched:
            if _ADDRESS.fullmatch(name):
                addresses.append(name)
            else:
                unknown.append(name)
    if unknown:
        raise UsageError(f"notify: unknown recipient(s) {', '.join(map(repr, unknown))}",
                         hint=_known(n))
    if addresses and not n.smtp_host:
        raise ConfigError(f"{cfg.source}: notify.smtp_host: not set, so no mail can go to "
                          f"{', '.join(dict.fromkeys(addresses))}")
    plan: list[tuple[Channel, list[str]]] = []
    if addresses:
        plan.append(("email", list(dict.fromkeys(addresses))))
    plan += [("webhook", [h]) for h in dict.fromkeys(hooks)]
    if drop:
        plan.append(("file", [DROP]))
    if not plan:
        raise UsageError(f"notify: nobody to notify: {', '.join(names)} holds no address")
    return plan


def _known(n: Notify) -> str:
    groups = ", ".join(n.recipients) or "none"
    hooks = ", ".join(n.webhooks) or "none"
    drop = '"drop"' if n.drop_dir else '"drop" (needs notify.drop_dir)'
    return f"groups: {groups}; webhooks: {hooks}; {drop}; or an e-mail address"


def _check_url(cfg: Config, name: str) -> None:
    parts = urllib.parse.urlsplit(cfg.notify.webhooks[name])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{cfg.source}: notify.webhooks.{name}: must be an http:// or "
                          "https:// URL")


def _check_attachments(paths: Sequence[str]) -> list[str]:
    files = []
    for p in [paths] if isinstance(paths, str) else paths:
        path = Path(p).absolute()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UsageError(f"notify: attachment {path} is not a readable file")
        files.append(str(path))
    return files


# ---------------------------------------------------------------- email


def build_email(cfg: Config, m: Message) -> EmailMessage:
    """The mail for ``m``: UTF-8 subject and body, attachments, a Message-ID stable per id."""
    n = cfg.notify
    sender = email.utils.parseaddr(n.smtp_from)[1] or n.smtp_from
    mail = EmailMessage()
    mail["From"] = n.smtp_from
    mail["To"] = ", ".join(m.to)
    mail["Subject"] = m.subject
    mail["Date"] = email.utils.formatdate(m.created, localtime=True)
    mail["Message-ID"] = f"<{m.id}.{int(m.created)}@{sender.rpartition('@')[2] or 'localhost'}>"
    if m.incident:
        mail["X-Secops-Incident"] = re.sub(r"[\r\n]+", " ", m.incident)
    mail.set_content(m.body, cte="base64")
    for p in m.attachments:
        path = Path(p)
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DeliveryError(f"attachment {path}: {e.strerror or type(e).__name__}") from e
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return mail


def send_email(cfg: Config, m: Message) -> str | None:
    """Send ``m`` by SMTP; a warning if some (not all) recipients were refused."""
    n = cfg.notify
    if not n.smtp_host:
        raise DeliveryError("notify.smtp_host is not set")
    where = f"{n.smtp_host}:{n.smtp_port}"
    password = _smtp_password(n)
    try:
        refused = _smtp_session(n, build_email(cfg, m), m.to, password)
    except DeliveryError:
        raise
    except (OSError, ValueError) as e:   # smtplib.SMTPException is an OSError
        error = _smtp_error(e, where)
        if password:
            error.message = error.message.replace(password, "***")
        raise error from e
    if refused:
        return f"recipient refused by {where}: {', '.join(sorted(refused))}"
    return None


def _smtp_password(n: Notify) -> str | None:
    if not n.smtp_user:
        return None
    if not n.smtp_password_file:
        raise DeliveryError("notify.smtp_user is set but notify.smtp_password_file is not")
    try:
        return read_secret(Path(n.smtp_password_file), "notify.smtp_password_file")
    except SecopsError as e:
        raise DeliveryError(e.message) from e
    except (OSError, UnicodeError) as e:
        raise DeliveryError(f"notify.smtp_password_file {n.smtp_password_file} cannot be read "
                            f"({type(e).__name__})") from e


def _smtp_session(n: Notify, mail: EmailMessage, to: list[str], password: str | None
                  ) -> dict[str, tuple[int, bytes]]:
    assert n.smtp_host is not None
    context = ssl.create_default_context()
    helo = socket.gethostname()       # not getfqdn(): no DNS lookup while the network is down
    client: smtplib.SMTP
    if n.smtp_security == "tls":
        client = smtplib.SMTP_SSL(n.smtp_host, n.smtp_port, local_hostname=helo,
                                  timeout=n.smtp_timeout_seconds, context=context)
    else:
        client = smtplib.SMTP(n.smtp_host, n.smtp_port, local_hostname=helo,
                              timeout=n.smtp_timeout_seconds)
    with client:
        client.ehlo()
        if n.smtp_security == "starttls":
            if not client.has_extn("starttls"):
                raise DeliveryError(
                    f"{n.smtp_host}:{n.smtp_port} does not offer STARTTLS; not sending in clear "
                    'text (smtp_security = "none" allows it, on a trusted network only)')
            client.starttls(context=context)
            client.ehlo()
        if n.smtp_user:
            _login(client, n.smtp_user, password or "")
        sender = email.utils.parseaddr(n.smtp_from)[1] or n.smtp_from
        return client.send_message(mail, from_addr=sender, to_addrs=to)


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """``client.login``, plus AUTH PLAIN in UTF-8 (RFC 4616), which smtplib cannot do."""
    if (user + password).isascii():
        client.login(user, password)
        return
    if "PLAIN" not in client.esmtp_features.get("auth", "").upper().split():
        raise DeliveryError("the SMTP password is not ASCII and the server does not offer "
                            "AUTH PLAIN (the only method that carries UTF-8)")
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    code, answer = client.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, answer)


def _smtp_error(e: BaseException, where: str) -> DeliveryError:
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"authentication failed at {where} (SMTP {e.smtp_code})")
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return DeliveryError(f"recipient refused by {where}: {', '.join(sorted(e.recipients))}")
    if isinstance(e, smtplib.SMTPSenderRefused):
        return DeliveryError(f"sender {e.sender} refused by {where} (SMTP {e.smtp_code})")
    if isinstance(e, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return DeliveryError(f"{where} closed the connection", unreachable=True)
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) \
            else str(e.smtp_error)
        return DeliveryError(f"{where} answered SMTP {e.smtp_code}: {text[:200]}")
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"{where}: {e}")
    if isinstance(e, smtplib.SMTPException):
        return DeliveryError(f"SMTP error at {where} ({type(e).__name__})")
    return _network_error(e, where)


def _network_error(e: BaseException, where: str) -> DeliveryError:
    if isinstance(e, ConnectionRefusedError):
        return DeliveryError(f"connection refused by {where}", unreachable=True)
    if isinstance(e, TimeoutError):
        return DeliveryError(f"timed out talking to {where}", unreachable=True)
    if isinstance(e, socket.gaierror):
        return DeliveryError(f"cannot resolve the host of {where}", unreachable=True)
    if isinstance(e, ssl.SSLCertVerificationError):
        return DeliveryError(f"TLS certificate of {where} not trusted: {e.verify_message}")
    if isinstance(e, ssl.SSLError):
        return DeliveryError(f"TLS with {where} failed: {e.reason or type(e).__name__}")
    if isinstance(e, OSError):
        return DeliveryError(f"network error with {where}: {e.strerror or type(e).__name__}",
                             unreachable=True)
    return DeliveryError(f"cannot talk to {where}: {type(e).__name__}")


# ---------------------------------------------------------------- webhook and file drop


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would turn the POST into a GET elsewhere."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,  # noqa: PLR0917
                         msg: str, headers: MimeHeaders, newurl: str
                         ) -> urllib.request.Request | None:
        return None


def post_webhook(cfg: Config, m: Message) -> None:
    """POST the JSON payload to the named webhook, signed when a secret is configured."""
    n = cfg.notify
    name = m.to[0]
    url = n.webhooks.get(name)
    if url is None:
        raise DeliveryError(f"no webhook named {name!r} in notify.webhooks any more")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"webhook {name}: not an http:// or https:// URL")
    where = f"webhook {name} ({parts.hostname})"
    body = payload(cfg, m)
    headers = {"Content-Type": "application/json", "User-Agent": "secops"}
    if n.webhook_secret_file:
        try:
            key = read_secret(Path(n.webhook_secret_file), "notify.webhook_secret_file")
        except SecopsError as e:
            raise DeliveryError(e.message) from e
        except (OSError, UnicodeError) as e:
            raise DeliveryError(f"notify.webhook_secret_file cannot be read "
                                f"({type(e).__name__})") from e
        digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()
        headers["X-Secops-Signature"] = f"sha256={digest}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as e:    # "from None": the URL (a token, often) stays out
        raise DeliveryError(f"{where} answered HTTP {e.code}") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, BaseException):
            raise _network_error(reason, where) from None
        raise DeliveryError(f"{where}: {reason}", unreachable=True) from None
    except (OSError, HTTPException) as e:
        raise _network_error(e, where) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"{where} answered HTTP {status}")


def drop_file(cfg: Config, m: Message) -> None:
    """Write the JSON payload to ``<drop_dir>/<created>-<id>.json`` (0640, atomically)."""
    if not cfg.notify.drop_dir:
        raise DeliveryError("notify.drop_dir is not set")
    folder = Path(cfg.notify.drop_dir)
    try:
        folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        atomic_write(folder / f"{int(m.created)}-{m.id}.json", payload(cfg, m), mode=0o640)
    except OSError as e:
        raise DeliveryError(f"cannot write to the drop folder {folder}: "
                            f"{e.strerror or type(e).__name__}") from e
