"""Load, validate and normalise the TOML configuration.

Every error names the file, the key path and the problem, and is a ``ConfigError`` (exit 2).
Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from secops.config.schema import Config, Signing, Target
from secops.errors import ConfigError

DEFAULT_PATH = Path("/etc/secops/secops.toml")
MAX_BYTES = 256 * 1024  # a full example config is under 10 KiB
_PATH_RE = re.compile(r"at `\$(?P<path>[^`]*)`")


def default_config_path(explicit: str | None) -> Path:
    """``--config`` wins, then ``$SECOPS_CONFIG``, then ``/etc/secops/secops.toml``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("SECOPS_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def load_config(path: Path) -> Config:
    """Read, validate and normalise the config at ``path``."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="pass --config PATH, set SECOPS_CONFIG, or copy configs/secops.example.toml",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // 1024} KiB: not a secops config")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path}: TOML syntax error: arrays or tables nested too deeply") \
            from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate an already-parsed TOML document (the pure part of loading)."""
    if "source" in raw:
        raise ConfigError(f"{path}: source: unknown key")
    try:
        cfg = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{path}: {describe_validation_error(str(e))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: values nested too deeply") from None
    from secops.config.checks import check_values

    check_values(cfg, str(path))
    cfg = _resolve_paths(cfg, path.parent.absolute(), path)
    cfg = msgspec.structs.replace(cfg, source=str(path))
    _check_semantics(cfg, path)
    return cfg


def describe_validation_error(message: str) -> str:
    """Turn msgspec's ``"... - at `$.a.b[0]`"`` into ``"a.b[0]: ..."``."""
    m = _PATH_RE.search(message)
    key_path = m.group("path").lstrip(".") if m else ""
    text = _PATH_RE.sub("", message).rstrip(" -")
    unknown = re.match(r"Object contains unknown field `(?P<f>[^`]+)`", text)
    if unknown:
        field = unknown.group("f")
        key_path = f"{key_path}.{field}" if key_path else field
        return f"{key_path}: unknown key"
    missing = re.match(r"Object missing required field `(?P<f>[^`]+)`", text)
    if missing:
        field = missing.group("f")
        key_path = f"{key_path}.{field}" if key_path else field
        return f"{key_path}: required key is missing"
    text = text.replace("`", "'")
    return f"{key_path}: {text}" if key_path else text


def _resolve(base: Path, value: str, key: str, source: Path) -> str:
    try:
        p = Path(value).expanduser()
    except RuntimeError:  # ~name of a user this system does not know
        raise ConfigError(f"{source}: {key}: {value!r}: no such user's home folder "
                          "(write the path out)") from None
    return str(p if p.is_absolute() else (base / p))


def _resolve_target(base: Path, t: Target, key: str, source: Path) -> Target:
    repo = t.repository

    def opt(value: str | None, name: str) -> str | None:
        return _resolve(base, value, f"{key}.{name}", source) if value else None

    if ":" not in repo.split("/", 1)[0] or repo.startswith("local:"):
        prefix = "local:" if repo.startswith("local:") else ""
        repo = prefix + os.path.normpath(_resolve(base, repo.removeprefix("local:"),
                                                  f"{key}.repository", source))
    return msgspec.structs.replace(
        t,
        repository=repo,
        env_file=opt(t.env_file, "env_file"),
        password_file=opt(t.password_file, "password_file"),
        ssh_identity=opt(t.ssh_identity, "ssh_identity"),
    )


def _resolve_paths(cfg: Config, base: Path, src: Path) -> Config:

    def path(value: str, key: str) -> str:
        return os.path.normpath(_resolve(base, value, key, src))

    def opt(value: str | None, key: str) -> str | None:
        return path(value, key) if value else None

    paths = msgspec.structs.replace(
        cfg.paths,
        state_dir=path(cfg.paths.state_dir, "paths.state_dir"),
        watch=[path(w, f"paths.watch[{i}]") for i, w in enumerate(cfg.paths.watch)],
    )
    targets = [_resolve_target(base, t, f"backup.targets[{i}]", src)
               for i, t in enumerate(cfg.backup.targets)]
    backup = msgspec.structs.replace(cfg.backup, targets=targets)

    n = cfg.notify
    notify = msgspec.structs.replace(
        n, smtp_password_file=opt(n.smtp_password_file, "notify.smtp_password_file"),
        webhook_secret_file=opt(n.webhook_secret_file, "notify.webhook_secret_file"),
        drop_dir=opt(n.drop_dir, "notify.drop_dir"))
    pb = cfg.playbooks
    playbooks = msgspec.structs.replace(
        pb, dir=path(pb.dir, "playbooks.dir"),
        uploads=[msgspec.structs.replace(u, identity=path(u.identity,
                                                          f"playbooks.uploads[{i}].identity"))
                 for i, u in enumerate(pb.uploads)])
    logs = msgspec.structs.replace(
        cfg.logs, seal=[path(p, f"logs.seal[{i}]") for i, p in enumerate(cfg.logs.seal)],
        journald_verify_key=opt(cfg.logs.journald_verify_key, "logs.journald_verify_key"))
    personal = cfg.office.personal_data
    office = cfg.office if personal is None else msgspec.structs.replace(
        cfg.office, personal_data=[path(p, f"office.personal_data[{i}]")
                                   for i, p in enumerate(personal)])
    sg = cfg.signing
    signing = None if sg is None else msgspec.structs.replace(
        sg, **{k: opt(getattr(sg, k), f"signing.{k}") for k in SIGNING_FILES},
        chain=[path(p, f"signing.chain[{i}]") for i, p in enumerate(sg.chain)],
        trust_roots=[path(p, f"signing.trust_roots[{i}]") for i, p in enumerate(sg.trust_roots)])
    return msgspec.structs.replace(cfg, office=office, paths=paths, backup=backup,
                                   notify=notify, playbooks=playbooks, logs=logs,
                                   signing=signing)


SIGNING_FILES = ("pkcs11_module", "pin_file", "pkcs12", "pkcs12_password_file", "certificate")
_TOKEN_KEYS = ("pkcs11_module", "token_label", "key_label", "pin_file", "pin_credential")


def _check_signing(sg: Signing, path: Path) -> None:
    """Either a token (module, token label, key label, one PIN source) or a PKCS#12 file
    with its password file: never a mix, never half of one."""
    token = [k for k in _TOKEN_KEYS if getattr(sg, k) is not None]
    if sg.pkcs12 is not None:
        if token:
            raise ConfigError(f"{path}: signing.{token[0]}: a token key beside signing.pkcs12; "
                              "use either the token or the PKCS#12 file")
        if sg.pkcs12_password_file is None:
            raise ConfigError(f"{path}: signing.pkcs12_password_file: required key is missing "
                              "(the PKCS#12 password, in a 0600 file)")
        return
    if sg.pkcs12_password_file is not None:
        raise ConfigError(f"{path}: signing.pkcs12_password_file: set without signing.pkcs12")
    for k in ("pkcs11_module", "token_label", "key_label"):
        if getattr(sg, k) is None:
            raise ConfigError(f"{path}: signing.{k}: required key is missing (signing needs "
                              "pkcs11_module, token_label, key_label and a PIN, or pkcs12)")
    if (sg.pin_file is None) == (sg.pin_credential is None):
        raise ConfigError(f"{path}: signing.pin_file: set exactly one of pin_file (a 0600 "
                          "file) and pin_credential (a systemd credential name)")


def _check_semantics(cfg: Config, path: Path) -> None:
    seen: set[str] = set()
    for i, t in enumerate(cfg.backup.targets):
        key = f"backup.targets[{i}]"
        if t.name in seen:
            raise ConfigError(f"{path}: {key}.name: duplicate target name {t.name!r}")
        seen.add(t.name)
        kind = t.repository.split(":", 1)[0] if ":" in t.repository else "local"
        if t.ssh_identity and kind != "sftp":
            raise ConfigError(f"{path}: {key}.ssh_identity: only valid for sftp: repositories")
        if t.ssh_host_key_fingerprint is not None and not re.fullmatch(
            r"SHA256:[A-Za-z0-9+/]{43}=?", t.ssh_host_key_fingerprint
        ):
            raise ConfigError(
                f"{path}: {key}.ssh_host_key_fingerprint: expected 'SHA256:...' as printed by "
                "'ssh-keygen -lf'"
            )
    for i, w in enumerate(cfg.paths.watch):
        if Path(cfg.paths.state_dir).is_relative_to(w):
            raise ConfigError(
                f"{path}: paths.watch[{i}]: the state_dir {cfg.paths.state_dir} lies inside this "
                "watched folder; keep secops' own state outside the data it backs up"
            )
    for i, folder in enumerate(cfg.office.personal_data or []):
        if not any(Path(folder).is_relative_to(w) for w in cfg.paths.watch):
            raise ConfigError(
                f"{path}: office.personal_data[{i}]: {folder} is not inside a watched folder "
                "(paths.watch): secops neither backs it up nor sees it change")
    for i, rule in enumerate(cfg.integrity.protect):
        from secops.fim.rules import parse_window  # (only for a config with rules)

        for j, w in enumerate(rule.windows):
            try:
                parse_window(w)
            except ValueError as e:
                raise ConfigError(f"{path}: integrity.protect[{i}].windows[{j}]: {e}") from None
    import ipaddress

    for i, a in enumerate(cfg.intrusion.allow):
        try:
            ipaddress.ip_network(a, strict=False)
        except ValueError:
            raise ConfigError(f"{path}: intrusion.allow[{i}]: {a!r} is not an address or a "
                              "network (e.g. 192.168.1.0/24)") from None
    if cfg.signing is not None:
        _check_signing(cfg.signing, path)
    if cfg.backup.max_delay_seconds and cfg.backup.max_delay_seconds < cfg.backup.debounce_seconds:
        raise ConfigError(
            f"{path}: backup.max_delay_seconds: must be at least backup.debounce_seconds "
            f"({cfg.backup.debounce_seconds})"
        )
