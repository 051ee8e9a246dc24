"""The closed set of playbook actions: what each changes, how it is undone, what it takes
(pure; the implementations are in ``actions.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ActionSpec:
    name: str
    changes_state: bool
    idempotent: bool          # retries are allowed only for these
    reverted_by: str
    args: dict[str, str]      # argument -> what it is
    required: frozenset[str] = field(default_factory=frozenset)
    contains: bool = False    # success moves the incident to "contained"


CATALOG: dict[str, ActionSpec] = {s.name: s for s in (
    ActionSpec("snapshot", True, True, "nothing: backups are kept; 'incident close' unpins",
               {"targets": "target names (default: every target)",
                "pin_pre_incident": "pin the last snapshot finished before the event "
                                    "(default true)"}),
    ActionSpec("freeze", True, True, "unfreeze (or 'secops unfreeze')",
               {"pids": "processes to stop (default: the event's processes)"},
               contains=True),
    ActionSpec("unfreeze", True, True, "freeze",
               {"processes": "kill | resume: what happens to stopped processes"},
               frozenset({"processes"})),
    ActionSpec("collect_evidence", True, True, "nothing (writes the incident folder only)",
               {"paths": "files to hash (default: the event's paths)",
                "pids": "suspected processes (default: the event's)"}),
    ActionSpec("notify", True, False, "nothing: a message cannot be unsent",
               {"to": "recipient groups, webhook names, 'drop' or addresses",
                "subject": "subject line", "body": "text",
                "attach_report": "attach the incident report (default false)"},
               frozenset({"to", "subject", "body"})),
    ActionSpec("report", True, True, "nothing (writes the incident folder only)",
               {"lang": "vi | en (default: the office's language)"}),
    ActionSpec("upload", True, True, "nothing: the server keeps its copy",
               {"to": "an upload target name ([[playbooks.uploads]])",
                "files": "files to send (default: the incident's report and evidence)"},
               frozenset({"to"})),
    ActionSpec("command", True, False, "as the config says for that command",
               {"name": "a command name from [playbooks.commands]"}, frozenset({"name"})),
    ActionSpec("restore", True, True, "the safety snapshot taken before an in-place restore",
               {"target": "target (default: the first)",
                "snapshot": "snapshot (default: the incident's pinned pre-incident one)",
                "to": "scratch (default: a folder under the incident) | in_place",
                "paths": "only these paths"}),
    ActionSpec("drill", True, True, "nothing (a scratch restore, removed afterwards)",
               {"target": "target (default: every target)",
                "snapshot": "snapshot (default: latest)"}),
    ActionSpec("block", True, True, "unblock (or 'secops unblock ADDRESS'); it also ends "
               "on its own",
               {"address": "the source address to drop (default: the event's "
                           "details.source)",
                "minutes": "how long (default: intrusion.block_minutes)"},
               contains=True),
    ActionSpec("unblock", True, True, "block",
               {"address": "the address to let in again (default: the event's "
                           "details.source)"}),
)}
