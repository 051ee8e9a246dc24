"""``secops block``, ``secops unblock``, ``secops blocked``: source addresses in secops's own
nftables table."""

from __future__ import annotations

from typing import Any

import click

from secops.cli.context import AppContext
from secops.cli.render import console, emit_json


def _until(doc: dict[str, Any]) -> str:
    import time

    from secops.clock import local_text

    left = doc.get("expires_in_s")
    if left is None:
        return "no expiry (added by hand without a timeout)"
    return f"until {local_text(time.time() + left, seconds=True)}, {_left(left)} left"


def _left(seconds: int) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m} min" if hours else f"{m} min {s} s" if m else f"{s} s"


@click.command("block")
@click.argument("address")
@click.option("--minutes", type=float, default=None,
              help="How long (default: intrusion.block_minutes); a block that already "
                   "ends later is kept.")
@click.option("--reason", default=None, help="Why (kept with the block, recorded).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def block_cmd(app: AppContext, address: str, minutes: float | None, reason: str | None,
              as_json: bool) -> int:
    """Drop every packet from ADDRESS for a while (never loopback, this server, or an
    address in intrusion.allow). It ends on its own; 'secops unblock' ends it now."""
    from secops.audit import actor_cli
    from secops.intrusion import nft

    cfg = app.config()
    who = actor_cli()
    doc = nft.block(cfg, address, cfg.intrusion.block_minutes if minutes is None else minutes,
                    reason or f"by hand ({who})")
    app.audit("address.blocked", doc)
    if as_json:
        emit_json(doc)
    else:
        verb = {"added": "blocked", "renewed": "block renewed:",
                "kept": "already blocked for longer:"}
        console().print(f"{verb[doc['outcome']]} {doc['address']} {_until(doc)} (nft "
                        f"table {doc['table']}, set {doc['set']})", soft_wrap=True)
    return 0


@click.command("unblock")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def unblock_cmd(app: AppContext, address: str, as_json: bool) -> int:
    """Lift the block of ADDRESS now."""
    from secops.intrusion import nft

    cfg = app.config()
    doc = nft.unblock(cfg, address)
    app.audit("address.unblocked", doc)
    if as_json:
        emit_json(doc)
    else:
        console().print(f"unblocked {doc['address']}" if doc["was_blocked"] else
                        f"{doc['address']} was not blocked")
    return 0


@click.command("blocked")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
def blocked_cmd(app: AppContext, as_json: bool) -> int:
    """The addresses blocked now, soonest expiry first."""
    from rich.table import Table

    from secops.intrusion import nft

    cfg = app.config()
    rows = nft.blocked(cfg)
    if as_json:
        emit_json(rows)
        return 0
    if not rows:
        console().print(f"nothing is blocked (nft table inet {cfg.intrusion.nft_table})")
        return 0
    table = Table("address", "until", "reason")
    for r in rows:
        table.add_row(r["address"], _until(r), r["reason"])
    console().print(table)
    return 0


COMMANDS: list[click.Command] = [block_cmd, unblock_cmd, blocked_cmd]
