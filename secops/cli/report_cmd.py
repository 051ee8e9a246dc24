"""``secops report incident`` (more ``report`` commands join ``report_group``) and
``secops bundle verify`` (what the police run on their own machine: no config needed)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json, error

_FPR = re.compile(r"^[0-9A-Fa-f]{40}$")


@click.group("report")
def report_group() -> None:
    """Signed reports for the office leadership and the police."""


@report_group.command("incident")
@click.argument("incident_id")
@click.option("--lang", type=click.Choice(["vi", "en"]),
              help="Report language (default: office.language in the config).")
@click.option("--encrypt-to", "encrypt_to", multiple=True, metavar="FPR|FILE",
              help="Encrypt the bundle to this key (a fingerprint in the office keyring or a "
                   "public key file); repeatable.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def incident_cmd(app: AppContext, incident_id: str, lang: str | None,
                 encrypt_to: tuple[str, ...], as_json: bool) -> int:
    """Write the incident's evidence bundle (.tar.gz) and its detached GPG signature (.asc),
    signed by the office key, under state_dir/reports/."""
    from secops.cli.render import warn
    from secops.reports.bundle import make_bundle
    from secops.signing.outcome import pades_line, pades_warning

    cfg = app.config()
    language = lang or cfg.office.language
    bundle, sig, pades = make_bundle(cfg, incident_id, language, list(encrypt_to))
    if (pw := pades_warning(pades)) is not None:
        warn(pw)  # the PDF inside went without revocation data: why
    with bundle.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    app.audit("report.incident", {"incident": incident_id, "bundle": str(bundle),
                                  "sha256": digest, "signature": str(sig), "lang": language,
                                  "encrypted_to": list(encrypt_to)})
    if as_json:
        emit_json({"bundle": str(bundle), "signature": str(sig),
                   **({"pades": pades} if pades else {})})
    else:
        click.echo(f"Bundle:    {bundle}\nSignature: {sig}\nSHA-256:   {digest}\n"
                   f"Check it with: secops bundle verify {bundle} --office-key office-gpg.asc")
        if pades:
            click.echo(pades_line(pades, "report.pdf (inside the bundle)").strip())
    return 0


@click.group("bundle")
def bundle_group() -> None:
    """Evidence bundles: check one on your own machine."""


@bundle_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--office-key", metavar="FILE|FPR",
              help="Required. The office's public GPG key: office-gpg.asc (from 'secops keys "
                   "export-public', handed over in person) or its 40-hex-digit fingerprint "
                   "in your keyring. The signature must be by that key.")
@click.option("--signature", "sig_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The detached signature (default: FILE.asc).")
@click.option("--gnupghome", type=click.Path(file_okay=False, path_type=Path),
              help="Your GnuPG home: decrypts an encrypted bundle, and holds the office key "
                   "when --office-key is a fingerprint (default: $GNUPGHOME or ~/.gnupg).")
@click.option("--max-size", metavar="SIZE", default="2G", show_default=True,
              help="Refuse a bundle whose file, decrypted content or unpacked files exceed "
                   "this (K, M, G, T: binary units).")
@click.option("--audit-root", "audit_roots", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="audit-root.pub from the office's public keys: the audit excerpt's "
                   "checkpoints must come from that chain (recommended).")
@click.option("--json", "as_json", is_flag=True)
def verify_cmd(file: Path, *, office_key: str | None, sig_path: Path | None,
               gnupghome: Path | None, max_size: str, audit_roots: tuple[Path, ...],
               as_json: bool) -> int:
    """Check the signature by the office key, then every file's SHA-256, the chain of
    custody and the audit excerpt against its signed checkpoints. Exit 0 when all hold, 1
    naming what failed, 2 without --office-key."""
    from secops.errors import UsageError
    from secops.reports.bundle_verify import verify_bundle

    if office_key is None:
        raise UsageError(
            "bundle verify needs the office's public key, so that a bundle signed by any "
            "other key cannot pass: --office-key office-gpg.asc, or --office-key FINGERPRINT",
            hint="office-gpg.asc is written by 'secops keys export-public --out DIR' on the "
                 "office server and handed over in person; check its fingerprint against the "
                 "stamped paper report")
    key_file, fpr = None, None
    if Path(office_key).is_file():
        key_file = Path(office_key)
    elif _FPR.match(office_key.replace(" ", "")):
        fpr = office_key
    else:
        raise UsageError(f"--office-key {office_key}: neither a key file nor a "
                         "40-hex-digit fingerprint")
    report = verify_bundle(file, sig_path, gnupghome, key_file, fpr,
                           max_size=parse_size(max_size), audit_roots=list(audit_roots))
    if as_json:
        emit_json(report.as_json())
    else:
        con = console()
        for c in report.checks:
            mark = "[green]ok[/]    " if c.ok else "[red]FAILED[/]"
            con.print(f"{mark} [bold]{c.name}[/]: ", end="", soft_wrap=True)
            con.print(c.detail, markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        error(f"{file}: verification FAILED: {', '.join(report.failed())}")
        return 1
    if not as_json:
        console().print(f"{file}: verified", markup=False, highlight=False, soft_wrap=True)
    return 0


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``64MiB``, ``1048576``: bytes (binary units)."""
    from secops.errors import UsageError

    m = _SIZE.match(text)
    if m is None or int(m.group(1)) == 0:
        raise UsageError(f"--max-size {text}: not a size (examples: 2G, 512M, 64MiB)")
    return int(m.group(1)) << (10 * "_KMGT".index(m.group(2).upper() or "_"))


from secops.reports.drill_cmd import drill, verify_drill  # noqa: E402
from secops.reports.weekly_cmd import weekly  # noqa: E402 - attached after the group exists
from secops.signing.verify_cmd import verify_pdf_cmd  # noqa: E402

report_group.add_command(weekly)
report_group.add_command(drill)
report_group.add_command(verify_drill)
report_group.add_command(verify_pdf_cmd)

COMMANDS = [report_group, bundle_group]
