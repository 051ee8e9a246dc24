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

from secops.config.schema import Config, Target
from secops.errors import ConfigError

DEFAULT_PATH = Path("/etc/secops/secops.toml")
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
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="pass --config PATH, set SECOPS_CONFIG, or copy configs/secops.example.toml",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
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
    cfg = _resolve_paths(cfg, path.parent.absolute())
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


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def _resolve_target(base: Path, t: Target) -> Target:
    repo = t.repository
    if ":" not in repo.split("/", 1)[0] or repo.startswith("local:"):
        prefix = "local:" if repo.startswith("local:") else ""
        repo = prefix + os.path.normpath(_resolve(base, repo.removeprefix("local:")))
    return msgspec.structs.replace(
        t,
        repository=repo,
        env_file=_resolve(base, t.env_file) if t.env_file else None,
        password_file=_resolve(base, t.password_file) if t.password_file else None,
        ssh_identity=_resolve(base, t.ssh_identity) if t.ssh_identity else None,
    )


def _resolve_paths(cfg: Config, base: Path) -> Config:
    paths = msgspec.structs.replace(
        cfg.paths,
        state_dir=os.path.normpath(_resolve(base, cfg.paths.state_dir)),
        watch=[os.path.normpath(_resolve(base, w)) for w in cfg.paths.watch],
    )
    targets = [_resolve_target(base, t) for t in cfg.backup.targets]
    backup = msgspec.structs.replace(cfg.backup, targets=targets)

    def opt(value: str | None) -> str | None:
        return os.path.normpath(_resolve(base, value)) if value else None

    n = cfg.notify
    notify = msgspec.structs.replace(
        n, smtp_password_file=opt(n.smtp_password_file),
        webhook_secret_file=opt(n.webhook_secret_file), drop_dir=opt(n.drop_dir))
    pb = cfg.playbooks
    playbooks = msgspec.structs.replace(
        pb, dir=os.path.normpath(_resolve(base, pb.dir)),
        uploads=[msgspec.structs.replace(u, identity=os.path.normpath(_resolve(base, u.identity)))
                 for u in pb.uploads])
    logs = msgspec.structs.replace(
        cfg.logs, seal=[os.path.normpath(_resolve(base, p)) for p in cfg.logs.seal],
        journald_verify_key=opt(cfg.logs.journald_verify_key))
    return msgspec.structs.replace(cfg, paths=paths, backup=backup, notify=notify,
                                   playbooks=playbooks, logs=logs)


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
    from secops.fim.rules import parse_window

    for i, rule in enumerate(cfg.integrity.protect):
        for j, w in enumerate(rule.windows):
            try:
                parse_window(w)
            except ValueError as e:
                raise ConfigError(f"{path}: integrity.protect[{i}].windows[{j}]: {e}") from None
    if cfg.backup.max_delay_seconds and cfg.backup.max_delay_seconds < cfg.backup.debounce_seconds:
        raise ConfigError(
            f"{path}: backup.max_delay_seconds: must be at least backup.debounce_seconds "
            f"({cfg.backup.debounce_seconds})"
        )
