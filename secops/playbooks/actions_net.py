"""The network actions behind ``catalog.py``: ``block`` and ``unblock`` a source address in
secops's own nftables table (:mod:`secops.intrusion.nft`). A run raises a ``SecopsError``
on failure (an allow-listed address is refused, never blocked); a plan only reads.
"""

from __future__ import annotations

from typing import Any

from secops.errors import UsageError
from secops.playbooks.engine import Context


def event_address(ctx: Context, args: dict[str, Any]) -> str | None:
    """The step's ``address``, else the event's ``details.source``."""
    value = args.get("address") or (ctx.event.get("details") or {}).get("source")
    return str(value).strip() if value not in (None, "") else None


def _address(ctx: Context, args: dict[str, Any], action: str) -> str:
    address = event_address(ctx, args)
    if address is None:
        raise UsageError(f"{action}: no address: the step has no 'address' and the event "
                         f"({ctx.event.get('kind')}) no details.source")
    return address


def _minutes(ctx: Context, args: dict[str, Any]) -> Any:
    minutes = args.get("minutes")
    return ctx.cfg.intrusion.block_minutes if minutes in (None, "") else minutes


def block_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.intrusion import nft

    return nft.block(ctx.cfg, _address(ctx, args, "block"), _minutes(ctx, args),
                     f"playbook {ctx.playbook.id}, incident {ctx.incident_id}")


def block_plan(ctx: Context, args: dict[str, Any]) -> str:
    from secops.errors import SecopsError
    from secops.intrusion import nft

    address = event_address(ctx, args)
    if address is None:
        return "block the event's source address (details.source): this event has none, " \
               "so the step would fail"
    try:
        addr = nft.parse_address(address)
        ms = nft.check_minutes(_minutes(ctx, args))
        table = nft.check_table(ctx.cfg.intrusion.nft_table)
    except SecopsError as e:
        return f"block {address}: refused, {e.message}"
    why = nft.refusal(addr, nft.allow_networks(ctx.cfg.intrusion.allow))
    if why:
        return f"block {address}: refused, {why}"
    return f"drop every packet from {addr} for {ms / 60_000:g} min (nft table " \
           f"{nft.FAMILY} {table}, set {nft.SETS[addr.version]}); it ends on its own, or " \
           "at 'secops unblock'"


def unblock_run(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    from secops.intrusion import nft

    return nft.unblock(ctx.cfg, _address(ctx, args, "unblock"))


def unblock_plan(ctx: Context, args: dict[str, Any]) -> str:
    address = event_address(ctx, args)
    if address is None:
        return "unblock the event's source address (details.source): this event has none, " \
               "so the step would fail"
    return f"lift the block of {address} (nft table inet {ctx.cfg.intrusion.nft_table}), " \
           "if there is one"
