"""``secops report verify FILE.pdf``: check a PAdES-signed report (what the police run on
their own machine: no config needed with ``--trust``). A ``click.Command`` for the
``report`` group to attach."""

from __future__ import annotations

from pathlib import Path

import click

from secops.cli.context import AppContext


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "trust", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="ROOT.pem",
              help="A trusted root certificate (PEM or DER), e.g. the Government Cipher "
                   "Committee's root CA; repeatable (default, on the office server: "
                   "signing.trust_roots of the config).")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              help="Language of the result.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document (shape: docs/signing.md).")
@click.pass_obj
def verify_pdf_cmd(app: AppContext, file: Path, trust: tuple[Path, ...], lang: str,
                   as_json: bool) -> int:
    """Check every PAdES signature in FILE: intact, document unchanged since signing (content
    added by a later update is reported), certificate chain to the trust root, certificate
    valid at the signing time, timestamp. Exit 0 when all hold, 1 when any fails, 2 for bad
    input (missing file, not a PDF, no signature)."""
    from secops.cli.render import console, emit_json, error
    from secops.signing.verify import load_roots, verify_pdf

    roots = load_roots(list(trust) if trust else _config_roots(app))
    result = verify_pdf(file, roots)
    if as_json:
        emit_json(result.as_json(lang))
    else:
        con = console()
        for ok, line in result.lines(lang):
            style = "bold" if ok is None else ("green" if ok else "red")
            con.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
    if not result.ok:
        error(result.verdict(lang))
        return 1
    if not as_json:
        console().print(result.verdict(lang), markup=False, highlight=False, soft_wrap=True)
    return 0


def _config_roots(app: AppContext) -> list[Path]:
    """The office config's trust roots, when there is a readable config (else none: the
    chain check then fails and says to pass --trust)."""
    from secops.errors import ConfigError

    try:
        cfg = app.config()
    except ConfigError:
        return []
    return [Path(p) for p in cfg.signing.trust_roots] if cfg.signing else []
