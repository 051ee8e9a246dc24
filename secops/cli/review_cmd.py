"""``secops review [--json] [--lang vi|en]``: the risk review of the office server.

Exit 0 when no high or critical check failed, 1 when one did, 2 for bad input, 3 when the
review could not run (no check could be evaluated, or its result could not be kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json
from secops.errors import OperationalError, UsageError

if TYPE_CHECKING:
    from secops.review.model import Lang, Review
    from secops.review.score import Diff

FOUND_LIMIT = 400  # characters of evidence per row in the table; --json has all of it
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan",
                  "info": "dim"}


@click.command("review")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--lang", metavar="vi|en", default=None,
              help="Language of the texts (default: office.language).")
@click.pass_obj
def review(app: AppContext, as_json: bool, lang: str | None) -> int:
    """Risk review of the server: findings with severity, why, and the fix."""
    if lang is not None and lang not in ("vi", "en"):
        raise UsageError(f"--lang: {lang!r} is not a language secops speaks; use vi or en")
    from secops.review import compare, load_last, run_review, save
    from secops.review.render import blocking, document

    cfg = app.config()
    chosen = cast("Lang", lang or cfg.office.language)
    result = run_review(cfg)
    state = Path(cfg.paths.state_dir)
    diff = compare(load_last(state), result)
    if diff.score is None:
        raise OperationalError("the review could not evaluate any check (every one is "
                               "unknown or not applicable): run it as root on the server")
    try:
        kept = save(state, result)
    except OSError as e:
        raise OperationalError(f"cannot keep the review in {state / 'review'}: {e.strerror}",
                               hint="check that state_dir exists and is writable (run "
                                    "as root)") from None
    app.audit("review.completed", {"score": diff.score, "previous_score": diff.previous_score,
                                   "failed": sorted(result.failed_ids()),
                                   "new": list(diff.new), "fixed": list(diff.fixed),
                                   "kept": str(kept)})
    if as_json:
        emit_json(document(result, diff, chosen))
    else:
        _show(result, diff, chosen)
    return 1 if blocking(result) else 0


def _show(result: Review, diff: Diff, chosen: Lang) -> None:
    from rich.markup import escape
    from rich.table import Table

    from secops.review.render import HEADERS, changes, rows, summary

    lang = chosen
    con = console()
    failed = rows(result, chosen, limit=FOUND_LIMIT)
    if failed:
        head = HEADERS[chosen]
        table = Table(*head, show_lines=True, title="Rà soát rủi ro bảo mật" if lang == "vi"
                      else "Security risk review")
        for r in failed:
            style = SEVERITY_STYLE[r.severity]
            table.add_row(f"[{style}]{escape(r.severity_text)}[/]", escape(r.check),
                          escape(r.found), escape(r.fix))
        con.print(table)
    unknown = rows(result, chosen, "unknown", limit=FOUND_LIMIT)
    if unknown:
        con.print(("Không kiểm tra được: " if lang == "vi" else "Could not check: ")
                  + "; ".join(f"{u.check.split(':')[0]} ({u.found})" for u in unknown),
                  markup=False)
    for line in changes(diff, chosen):
        con.print(line, markup=False)
    con.print(summary(result, diff, chosen), markup=False)


COMMANDS = [review]
