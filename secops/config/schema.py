"""The typed configuration schema (DESIGN.md, "Configuration").

msgspec structs with unknown fields forbidden: a misspelt key is an error, never ignored.
Only structure and value ranges live here; checks that touch the file system are in
``loader.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Duration = Annotated[str, msgspec.Meta(pattern=r"^(\d+[yMwdhm])+$")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class Office(_Strict, kw_only=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    code: Name
    language: Literal["vi", "en"] = "vi"
    # For the incident report (the personal-data breach notice the law in force asks for:
    # secops/reports/law.toml): where, and who answers for personal-data protection.
    place: str = ""               # the place name of the date line: "Tân Kỳ, ngày ..."
    address: str = ""
    contact_name: str = ""        # the data-protection contact
    contact_title: str = ""
    contact_phone: str = ""
    contact_email: str = ""
    # The folders that hold personal data (voter lists, scanned forms, candidate dossiers),
    # each inside a watched folder; relative paths are relative to the config file. Not set:
    # only the voter lists (folders named danh-sach-cu-tri) are known to, and the report
    # says that for any other file it is not yet determined.
    personal_data: list[Annotated[str, msgspec.Meta(min_length=1)]] | None = None


class Paths(_Strict, kw_only=True, frozen=True):
    state_dir: str = "/var/lib/secops"
    watch: Annotated[list[str], msgspec.Meta(min_length=1)]
    exclude: list[str] = msgspec.field(default_factory=list)


class Retention(_Strict, kw_only=True, frozen=True):
    keep_within: Duration | None = None
    keep_last: PositiveInt | None = None
    keep_hourly: PositiveInt | None = None
    keep_daily: PositiveInt | None = None
    keep_weekly: PositiveInt | None = None
    keep_monthly: PositiveInt | None = None
    keep_yearly: PositiveInt | None = None
    prune: bool = True


class Target(_Strict, kw_only=True, frozen=True):
    name: Name
    repository: Annotated[str, msgspec.Meta(min_length=1)]
    append_only: bool = False
    env_file: str | None = None
    password_file: str | None = None
    # sftp targets: the private key to log in with and the pinned host key fingerprint
    # ("SHA256:..." as `ssh-keygen -lf` prints it, obtained from the server's owner).
    ssh_identity: str | None = None
    ssh_host_key_fingerprint: str | None = None


class Backup(_Strict, kw_only=True, frozen=True):
    debounce_seconds: Seconds = 5.0
    max_delay_seconds: Seconds = 60.0
    restic_binary: str = "restic"
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 6 * 3600.0
    # a backup that shows no progress this long (restic waits on a server that accepts
    # connections and never answers) is stopped: the target is failing, alerted, retried
    stall_seconds: Annotated[float, msgspec.Meta(ge=5)] = 300.0
    lock_wait_seconds: Seconds = 120.0
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    retention: Retention = msgspec.field(default_factory=Retention)
    targets: Annotated[list[Target], msgspec.Meta(min_length=1)]


Clock = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
ClockOrOff = Annotated[str, msgspec.Meta(pattern=r"^(([01]\d|2[0-3]):[0-5]\d)?$")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class Schedule(_Strict, kw_only=True, frozen=True):
    """What the daemon runs on its own; 0 or "" switches a job off."""

    backup_every_minutes: Annotated[int, msgspec.Meta(ge=0)] = 60
    rescan_every_minutes: Annotated[int, msgspec.Meta(ge=0)] = 60
    check_daily_at: ClockOrOff = "02:30"
    check_read_data_subset: Annotated[str, msgspec.Meta(pattern=r"^\d{1,3}(\.\d+)?%$")] = "5%"
    retention_daily_at: ClockOrOff = "04:00"
    drill_weekday: Weekday | Literal[""] = "sunday"
    drill_at: Clock = "03:00"
    # the risk review of the server (secops review), before the Monday report
    review_weekday: Weekday | Literal[""] = "sunday"
    review_at: Clock = "21:00"
    # The weekly report to the commune People's Committee (the plan: every Monday).
    weekly_report_weekday: Weekday | Literal[""] = "monday"
    weekly_report_at: Clock = "07:00"


class Daemon(_Strict, kw_only=True, frozen=True):
    retry_min_seconds: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    retry_max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    outage_alert_minutes: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    # a watched change not yet in a target this long, whatever the reason, is an alert
    # (backup.stalled): silence itself is one
    unprotected_alert_minutes: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    metrics_file: str | None = None  # Prometheus textfile; default state_dir/metrics/secops.prom


class Protect(_Strict, kw_only=True, frozen=True):
    """Files that may change only within ``windows`` or a declared maintenance window."""

    paths: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]],
                     msgspec.Meta(min_length=1)]
    windows: list[str] = msgspec.field(default_factory=list)  # checked by the loader


class Integrity(_Strict, kw_only=True, frozen=True):
    enabled: bool = True
    canaries: bool = True              # decoy files in each watched folder and its subfolders
    canary_depth: Annotated[int, msgspec.Meta(ge=0, le=8)] = 1
    fanotify: bool = True              # writer pids and the open gate (needs root)
    contain: bool = True               # freeze at once on ransomware.suspected
    threshold: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    window_seconds: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    # per writing process: the content indicators of what it wrote over this long window
    slow_window_seconds: Annotated[float, msgspec.Meta(gt=0)] = 21600.0
    verify_daily_at: ClockOrOff = "01:30"   # a full re-hash (catches restored timestamps)
    diff_max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 65536
    protect: list[Protect] = msgspec.field(default_factory=list)


class Audit(_Strict, kw_only=True, frozen=True):
    checkpoint_minutes: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    checkpoint_records: PositiveInt = 1000
    verify_every_minutes: Annotated[int, msgspec.Meta(ge=0)] = 60  # the daemon's own check
    rotate_mb: Annotated[int, msgspec.Meta(ge=1)] = 64


class Logs(_Strict, kw_only=True, frozen=True):
    """The server's own logs, sealed into the audit log and checked for tampering."""

    seal: list[Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=list)
    seal_every_minutes: Annotated[int, msgspec.Meta(ge=0)] = 15   # seal + verify; 0: off
    journald: Literal["auto", "on", "off"] = "auto"  # `journalctl --verify` where sealed
    journald_verify_key: str | None = None  # FSS verification key file (mode 0600)


class Intrusion(_Strict, kw_only=True, frozen=True):
    """Logins and intrusion attempts read from the server's own logs, and the block of a
    source address in secops's own nftables table (the plan's network-security monitoring).
    """

    enabled: bool = True
    # where to read: "journal" (journalctl), and/or syslog-format files (followed across
    # rotation); "auto": the journal if journalctl exists, else /var/log/auth.log
    sources: list[Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=lambda: ["auto"])
    samba_log: str | None = None       # smbd's own log file (log level auth_audit:3)
    max_failures: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5   # fail2ban's maxretry
    find_minutes: Annotated[float, msgspec.Meta(gt=0, le=1440)] = 10.0   # fail2ban's findtime
    block_minutes: Annotated[float, msgspec.Meta(gt=0, le=10080)] = 60.0
    # addresses and networks (CIDR) never blocked: the office's own PCs; loopback never is
    allow: list[Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=list)
    # logins outside these local hours/days are auth.login_off_hours
    office_hours: Annotated[str, msgspec.Meta(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")] = "07:00-17:30"
    office_days: list[Weekday] = msgspec.field(default_factory=lambda: [
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"])
    # secops's own table (family inet); no other is touched
    nft_table: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "secops"


class Notify(_Strict, kw_only=True, frozen=True):
    """Where the ``notify`` action sends messages; undeliverable ones wait in an outbox."""

    smtp_host: str | None = None
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 25
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_from: str = "secops@localhost"
    smtp_user: str | None = None
    smtp_password_file: str | None = None        # mode 0600
    smtp_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 20.0
    # Named groups: the playbooks say `to: [office, police]`. Members are e-mail addresses,
    # webhook names, or "drop" (the file drop).
    recipients: dict[str, list[str]] = msgspec.field(default_factory=dict)
    webhooks: dict[str, str] = msgspec.field(default_factory=dict)   # name -> https URL
    webhook_secret_file: str | None = None       # HMAC-SHA256 key for X-Secops-Signature
    drop_dir: str | None = None                  # a local folder (another program collects)
    retry_max_hours: Annotated[float, msgspec.Meta(gt=0)] = 72.0


class UploadTarget(_Strict, kw_only=True, frozen=True):
    """An SFTP server for evidence bundles (e.g. the district police)."""

    name: Name
    host: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 22
    user: Annotated[str, msgspec.Meta(min_length=1)]
    identity: str                                # private key file, mode 0600
    host_key_fingerprint: str                    # "SHA256:..." from the server's owner
    remote_dir: str = "."


class Playbooks(_Strict, kw_only=True, frozen=True):
    dir: str = "playbooks"                       # relative to the config file's folder
    max_step_seconds: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 3
    # The `command` action runs only these: name -> argv (absolute program path, no shell).
    commands: dict[str, Annotated[list[str], msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=dict)
    uploads: list[UploadTarget] = msgspec.field(default_factory=list)


class Signing(_Strict, kw_only=True, frozen=True):
    """PAdES signatures on the PDF reports with the office's X.509 certificate
    (docs/signing.md): a key on a PKCS#11 token (the office's USB token; the key never
    leaves it) or, for an office without one, a PKCS#12 file. Cross-key rules (one of the
    two, the keys each needs) are the loader's."""

    # the token: the vendor's PKCS#11 module, the token's label, the key's label, and the
    # user PIN from a 0600 file or a systemd credential ($CREDENTIALS_DIRECTORY/NAME)
    pkcs11_module: str | None = None
    token_label: str | None = None
    key_label: str | None = None
    pin_file: str | None = None
    pin_credential: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
                                                )] | None = None
    # or a PKCS#12 file and its password (a 0600 file)
    pkcs12: str | None = None
    pkcs12_password_file: str | None = None
    # the signer's certificate (PEM; default for a token: the one stored beside the key
    # under key_label) and the issuing CAs up to the root (PEM files)
    certificate: str | None = None
    chain: list[Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=list)
    # the roots the signer's certificate must chain to (PEM); default: the self-signed
    # certificates in chain
    trust_roots: list[Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=list)
    # an RFC 3161 time-stamping service: PAdES B-T; without it B-B, and the reports say so
    tsa_url: str | None = None
    tsa_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 20.0
    # the deadline for fetching the revocation data (CRL/OCSP) the certificates name: with
    # it a timestamped signature is B-LT; without it (responder down, too slow) B-T
    revocation_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # the signature box: default the certificate's common name; the title (e.g. "Chủ tịch")
    signer_name: str | None = None
    signer_title: str = ""


class Config(_Strict, kw_only=True, frozen=True):
    office: Office
    paths: Paths
    backup: Backup
    schedule: Schedule = msgspec.field(default_factory=Schedule)
    daemon: Daemon = msgspec.field(default_factory=Daemon)
    integrity: Integrity = msgspec.field(default_factory=Integrity)
    audit: Audit = msgspec.field(default_factory=Audit)
    logs: Logs = msgspec.field(default_factory=Logs)
    notify: Notify = msgspec.field(default_factory=Notify)
    intrusion: Intrusion = msgspec.field(default_factory=Intrusion)
    playbooks: Playbooks = msgspec.field(default_factory=Playbooks)
    signing: Signing | None = None   # PAdES signatures on the PDF reports; none: unsigned PDFs
    # Where the file was loaded from; filled by the loader, never read from TOML.
    source: str = ""

    @property
    def backup_excludes(self) -> list[str]:
        """What backups leave out: the configured excludes and the canary (decoy) files."""
        from secops.layout import CANARY_MARK

        return [*self.paths.exclude, f"*{CANARY_MARK}*"]

    def target(self, name: str) -> Target:
        for t in self.backup.targets:
            if t.name == name:
                return t
        from secops.errors import UsageError

        names = ", ".join(t.name for t in self.backup.targets)
        raise UsageError(f"no target named {name!r} in {self.source} (targets: {names})")
