"""Run every probe and join its findings to the checks' specs (adapter).

Each probe covers a fixed set of check ids. A probe that raises :class:`Unknown` or
:class:`NotApplicable` marks all its checks so, with the reason; any other exception is
caught here too (the review goes on, the checks say which error), so one broken probe never
stops the review. Every check in :data:`SPECS` gets exactly one result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from secops.clock import Clock, SystemClock, iso_utc
from secops.config.schema import Config
from secops.review import (
    accounts,
    network,
    posture,
    probes_host,
    probes_net,
    probes_secops,
    samba,
    ssh,
    system,
    tree,
)
from secops.review.host import Context, Host
from secops.review.model import Finding, NotApplicable, Result, Review, Spec, Text, Unknown

Probe = Callable[[Context], list[Finding]]

SPECS: dict[str, Spec] = {s.id: s for group in (
    ssh.SPECS, accounts.SPECS, samba.SPECS, network.SPECS, system.SPECS, tree.SPECS,
    posture.SPECS) for s in group}

PROBES: tuple[tuple[Sequence[str], Probe], ...] = (
    (probes_host.SSH_OPTION_IDS, probes_host.probe_ssh_options),
    (probes_host.SSH_FILE_IDS, probes_host.probe_ssh_files),
    (probes_host.ACCOUNT_IDS, probes_host.probe_accounts),
    (probes_host.SUDO_IDS, probes_host.probe_sudo),
    (probes_host.SAMBA_IDS, probes_host.probe_samba),
    (probes_net.LISTENER_IDS, probes_net.probe_listeners),
    (probes_net.FIREWALL_IDS, probes_net.probe_firewall),
    (("firewall.persistent",), probes_net.probe_firewall_boot),
    (probes_net.SYSCTL_IDS, probes_net.probe_sysctl),
    (("time.sync",), probes_net.probe_time),
    (("time.service",), probes_net.probe_time_service),
    (probes_net.UPDATE_CONF_IDS, probes_net.probe_update_config),
    (probes_net.PENDING_IDS, probes_net.probe_pending),
    (("updates.reboot_required",), probes_net.probe_reboot),
    (probes_net.DISK_IDS, probes_net.probe_disks),
    (probes_secops.FILE_IDS, probes_secops.probe_files),
    (probes_secops.POSTURE_IDS, probes_secops.probe_posture),
)
WORKERS = 4  # the slow probes wait on programs (apt-get, sshd, testparm, nft), not the CPU


def run_probe(ids: Sequence[str], probe: Probe, ctx: Context) -> dict[str, Finding]:
    """The findings of one probe by id, whatever it raised."""
    def every(status: str, reason: Text) -> dict[str, Finding]:
        return {i: Finding(i, status, reason) for i in ids}  # type: ignore[arg-type]

    try:
        found = probe(ctx)
    except Unknown as u:
        return every("unknown", u.reason)
    except NotApplicable as n:
        return every("not_applicable", n.reason)
    except Exception as e:  # one probe's bug must not end the review
        what = f"{type(e).__name__}: {e}"[:300]
        return every("unknown", Text(f"lỗi khi kiểm tra: {what}", f"check failed: {what}"))
    out = {f.id: f for f in found if f.id in ids}
    for i in ids:
        if i not in out:
            out[i] = Finding(i, "unknown", Text("không có kết quả", "no result"))
    return out


def run_review(cfg: Config, root: Path = Path("/"), *, host: Host | None = None,
               clock: Clock | None = None) -> Review:
    """Review the server (or the tree at ``root``) against every check."""
    clock = clock or SystemClock()
    started, when = time.monotonic(), clock.now()
    ctx = Context(host or Host(root), cfg, when.timestamp())
    with ThreadPoolExecutor(WORKERS, thread_name_prefix="secops-review") as pool:
        parts = list(pool.map(lambda p: run_probe(p[0], p[1], ctx), PROBES))
    found: dict[str, Finding] = {}
    for part in parts:
        found.update(part)
    results = tuple(Result(s, found[i].status, found[i].found) if i in found
                    else Result(s, "unknown", Text("không có kết quả", "no result"))
                    for i, s in SPECS.items())
    return Review(iso_utc(when), results, round(time.monotonic() - started, 3))
