"""A PAdES verification's result (pure): its checks, its JSON and its lines for a person,
Vietnamese by default, English with ``lang="en"``.

JSON (``secops report verify --json``; docs/signing.md)::

    {"ok": true, "file": "weekly-2026-W11.vi.pdf", "language": "vi",
     "signatures": [{
        "field": "ChuKySo", "ok": true, "level": "B-T",   # "unknown": damaged
        "signer": {"name", "subject", "issuer", "serial", "not_before", "not_after"},
        "signing_time": "2026-03-16T00:00:05Z", "time_source": "timestamp" | "claimed",
        "timestamp": null | {"ok": true, "time": "...Z", "tsa": "CN=..."},
        "checks": [{"name": "intact" | "unchanged" | "chain" | "validity" | "timestamp",
                    "ok": true, "code": "chain_yes", "detail": "..."}]}]}

``code`` is stable (scripts may rely on it), ``detail`` is in the chosen language. ``ok`` is
true only when every check of every signature holds; a signature without a timestamp
(B-B) passes its ``timestamp`` check with code ``timestamp_none``. A signature that cannot
be read at all has one check, ``intact`` with code ``intact_malformed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secops.signing.words import text

CHECKS = ("intact", "unchanged", "chain", "validity", "timestamp")


@dataclass(frozen=True)
class Check:
    name: str                            # one of CHECKS
    ok: bool
    code: str                            # a key of secops.signing.words
    values: dict[str, str] = field(default_factory=dict)

    def detail(self, lang: str) -> str:
        """The code's words with the values; a value "@key" is itself words (per lang)."""
        values = {k: text(lang, v[1:]) if v.startswith("@") else v
                  for k, v in self.values.items()}
        return text(lang, self.code, **values)


@dataclass(frozen=True)
class SignatureResult:
    field: str
    level: str                           # "B-B", "B-T", "B-LT"; "unknown" (damaged)
    signer: dict[str, str]
    signing_time: str | None             # ISO 8601 UTC "Z"
    time_source: str                     # "timestamp" or "claimed"
    timestamp: dict[str, Any] | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]


@dataclass(frozen=True)
class Verification:
    file: str
    signatures: tuple[SignatureResult, ...]

    @property
    def ok(self) -> bool:
        return bool(self.signatures) and all(s.ok for s in self.signatures)

    def as_json(self, lang: str) -> dict[str, Any]:
        return {"ok": self.ok, "file": self.file, "language": lang, "signatures": [
            {"field": s.field, "ok": s.ok, "level": s.level, "signer": s.signer,
             "signing_time": s.signing_time, "time_source": s.time_source,
             "timestamp": s.timestamp,
             "checks": [{"name": c.name, "ok": c.ok, "code": c.code,
                         "detail": c.detail(lang)} for c in s.checks]}
            for s in self.signatures]}

    def lines(self, lang: str) -> list[tuple[bool | None, str]]:
        """(ok, line) for a person: None for a heading."""
        out: list[tuple[bool | None, str]] = []
        for s in self.signatures:
            out.append((None, f"{text(lang, 'signer')}: {s.signer['name']} "
                              f"({text(lang, 'serial')} {s.signer['serial']}), "
                              f"{text(lang, 'level')} {text(lang, 'level_' + s.level)}"))
            for c in s.checks:
                mark = text(lang, "ok") if c.ok else text(lang, "failed")
                out.append((c.ok, f"  [{mark}] {text(lang, 'check_' + c.name)}: "
                                  f"{c.detail(lang)}"))
        return out

    def verdict(self, lang: str) -> str:
        if self.ok:
            return f"{self.file}: {text(lang, 'verified')}"
        failed = [text(lang, "check_" + c.name) for s in self.signatures for c in s.checks
                  if not c.ok]
        return f"{self.file}: {text(lang, 'not_verified')}: {'; '.join(failed)}"


def pades_line(pades: dict[str, Any], pdf: str) -> str:
    """The line a report command prints of the PAdES signature it made."""
    return (f"  PAdES      {pades['level']}, {pades['signer']} (serial {pades['serial']}); "
            f"check it: secops report verify {pdf}")


def pades_warning(pades: dict[str, Any] | None) -> str | None:
    """The warning a report command shows of the PAdES signature it made (signed without
    the revocation data, and why: ``pades_summary``'s ``warning``, in the report's
    language), or None."""
    warning = (pades or {}).get("warning")
    return f"PAdES: {warning}" if warning else None
