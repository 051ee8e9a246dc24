"""``secops report weekly``: the week's signed report (HTML, PDF, JSON) for the leadership.

A ``click.Command`` on its own, for the ``report`` group to attach:
``report_group.add_command(weekly)``.
"""

from __future__ import annotations

import click

from secops.cli.context import AppContext


@click.command("weekly")
@click.option("--week", metavar="YYYY-Www",
              help="ISO week, e.g. 2026-W11 (default: the last complete week).")
@click.option("--lang", type=click.Choice(["vi", "en"]),
              help="Report language (default: office.language).")
@click.option("--send", is_flag=True,
              help='Also mail it to the notify group "office" (the daemon does this itself '
                   "every Monday).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def weekly(app: AppContext, week: str | None, lang: str | None, send: bool, as_json: bool
           ) -> int:
    """Write the weekly report: HTML, PDF signed with the office GPG key, and JSON, as
    weekly-YYYY-Www.LANG.*; a report already written is kept and the new one is its next
    revision (weekly-YYYY-Www.LANG.r2.*)."""
    from secops.cli.render import emit_json, warn
    from secops.clock import SystemClock
    from secops.reports.paper import local_time
    from secops.reports.weekly import deliver, parse_week, write_weekly
    from secops.signing.outcome import pades_line, pades_warning

    if week is not None:
        parse_week(week)                       # bad input: exit 2 before any work
    cfg = app.config()
    out = write_weekly(cfg, week, lang or cfg.office.language, SystemClock())
    if send:
        out["delivery"] = deliver(cfg, out)
        for r in out["delivery"]:
            if not r.get("ok"):
                warn(f"weekly report not sent: {r.get('error')}"
                     + ("" if r.get("skipped") else " (queued; the daemon retries)"))
    if (pw := pades_warning(out.get("pades"))) is not None:
        warn(pw)
    if as_json:
        emit_json(out)
    else:
        prev = out.get("previous")
        lines = [f"Weekly report {out['week']} ({out['language']}), revision {out['revision']}:"]
        if prev:
            sent = f", delivered {local_time(prev['delivered'], 'en', zone=True)}" \
                if prev.get("delivered") else ""
            lines.append(f"  revision {prev['revision']} ({prev['pdf']}{sent}) is kept unchanged")
        lines += [f"  page       {out['report']}", f"  PDF        {out['pdf']}",
                  f"  signature  {out['signature']} (GPG key {out['fingerprint']})",
                  f"  check it:  gpg --verify {out['signature']} {out['pdf']}"]
        if out.get("pades"):
            lines.insert(-1, pades_line(out["pades"], out["pdf"]))
        click.echo("\n".join(lines))
    return 0
