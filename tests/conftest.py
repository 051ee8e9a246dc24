"""Test-wide isolation, the ``requires_<binary>`` markers, and restic with a cheap KDF.

A test marked ``requires_X`` is skipped when binary X is missing, except in CI
(``CI=true``), where a missing binary fails the test: a skip there would hide
a broken install step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from integration.fastkdf import restic_binary
from integration.servers import find_binary

# the session-scoped real servers, shared by tests/integration and tests/adversarial
pytest_plugins = ("integration.fixtures",)

MARKER_BINARIES = {
    "requires_restic": "restic",
    "requires_rclone": "rclone",
    "requires_sshd": "sshd",
    "requires_weed": "weed",
    "requires_gpg": "gpg",
    "requires_libreoffice": "soffice",
    "requires_smbd": "smbd",
    "requires_softhsm": "softhsm2-util",
    "requires_pdfsig": "pdfsig",
}
CLEARED_PREFIXES = ("RESTIC_", "SECOPS_", "AWS_", "GNUPGHOME")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when running in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing prerequisites fail instead of skipping)")
    pytest.skip(reason)


def require_binary_or_skip(name: str) -> str:
    """Path of binary ``name``; skip (fail in CI) when it is not installed."""
    path = find_binary(name)
    if path is None:
        skip_or_fail(f"binary {name!r} not found")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Every restic the tests run, through secops or not, is the real one whose new
    repositories open fast (``integration/fastkdf.py``)."""
    wrapper = restic_binary()
    if wrapper != "restic":
        os.environ["PATH"] = f"{Path(wrapper).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        binary = MARKER_BINARIES.get(marker.name)
        if binary is not None and find_binary(binary) is None:
            skip_or_fail(f"{marker.name}: binary {binary!r} not found")


@pytest.fixture(scope="session")
def require_binary() -> Callable[[str], str]:
    """The marker check as a function (usable from session fixtures): path or skip/fail."""
    return require_binary_or_skip


@pytest.fixture(scope="session")
def missing_prerequisite() -> Callable[[str], NoReturn]:
    """``skip_or_fail`` for fixtures with prerequisites other than a binary."""
    return skip_or_fail


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """No RESTIC_*/SECOPS_*/AWS_*/GNUPGHOME from the caller; HOME is a fresh folder."""
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    return home
