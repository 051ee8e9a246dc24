"""The normalised config as a document, with secrets masked, and checks of its files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from secops.backup.targets import mask_repository, parse_repository
from secops.config.schema import Config
from secops.errors import SecopsError
from secops.files import check_secret_file, read_env_file


def normalised(cfg: Config) -> dict[str, Any]:
    doc = dict(msgspec.to_builtins(cfg))
    doc.pop("source", None)
    for t in doc["backup"]["targets"]:
        t["repository"] = mask_repository(t["repository"])
        if t.get("env_file"):
            try:
                keys = sorted(read_env_file(Path(t["env_file"])))
                t["env_file_keys"] = {k: "****" for k in keys}
            except SecopsError:
                pass
    cleaned: dict[str, Any] = _drop_none(doc)
    return cleaned


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def check_files(cfg: Config) -> list[str]:
    """Problems with the files the config names (secret permissions, missing folders)."""
    problems: list[str] = []
    for i, w in enumerate(cfg.paths.watch):
        if not Path(w).is_dir():
            problems.append(f"{cfg.source}: paths.watch[{i}]: {w} is not an existing folder")
    for i, t in enumerate(cfg.backup.targets):
        key = f"{cfg.source}: backup.targets[{i}]"
        for attr, what in (("env_file", "env_file"), ("password_file", "password_file"),
                           ("ssh_identity", "ssh_identity")):
            value = getattr(t, attr)
            if value is None:
                continue
            try:
                if attr == "env_file":
                    read_env_file(Path(value))
                else:
                    check_secret_file(Path(value), what)
            except SecopsError as e:
                problems.append(f"{key}.{attr}: {e}")
        if parse_repository(t.repository).kind == "sftp" and not t.ssh_host_key_fingerprint:
            problems.append(f"{key}.ssh_host_key_fingerprint: required for sftp targets "
                            "(the host key is pinned, never trusted on first use)")
        if mask_repository(t.repository) != t.repository:
            try:
                check_secret_file(Path(cfg.source), "config file with a password in a URL")
            except SecopsError as e:
                problems.append(f"{key}.repository: {e}")
    return problems
