"""A throw-away office for integration tests: config, sample data, and the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secops.demo.sample import generate

# No scheduled job interferes with a test (backups only on change).
QUIET_SCHEDULE = """
[schedule]
backup_every_minutes = 0
rescan_every_minutes = 0
check_daily_at = ""
retention_daily_at = ""
drill_weekday = ""
review_weekday = ""
weekly_report_weekday = ""
"""

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
# the shipped playbooks, notices into a drop folder (``{drop}``: format with its path)
PLAYBOOK_TAIL = f"""
[schedule]
backup_every_minutes = 0
rescan_every_minutes = 0
check_daily_at = ""
retention_daily_at = ""
drill_weekday = ""
review_weekday = ""

[playbooks]
dir = "{PLAYBOOKS}"
max_step_seconds = 300

[notify]
drop_dir = "{{drop}}"
recipients = {{{{ office = ["drop"], police = ["drop"] }}}}
"""

HEADER = """\
[office]
name = "UBND xã Tân Kỳ"
code = "tan-ky"
language = "vi"

[paths]
state_dir = "{state}"
watch = ["{data}"]
exclude = ["*.tmp", "~$*", ".~lock.*#"]

[backup]
{backup_extra}
lock_wait_seconds = {lock_wait}
connect_timeout_seconds = 3
restic_binary = "{restic}"

[backup.retention]
keep_last = 1
"""


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by relative path, with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def target_toml(name: str, repository: str, **extra: Any) -> str:
    lines = ["[[backup.targets]]", f'name = "{name}"', f'repository = "{repository}"']
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Office:
    root: Path
    targets: list[str] = field(default_factory=list)
    lock_wait: float = 5
    restic: str = "restic"
    backup_extra: str = ""
    tail: str = ""

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def data(self) -> Path:
        return self.root / "bau-cu"

    @property
    def config(self) -> Path:
        return self.root / "secops.toml"

    def write(self) -> Office:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.data.exists():
            generate(self.data, voters_per_hamlet=30, candidates=3, units=2, scans=3,
                     scan_bytes=4000)
        text = HEADER.format(state=self.state, data=self.data, lock_wait=self.lock_wait,
                             restic=self.restic, backup_extra=self.backup_extra)
        self.config.write_text(text + "\n".join(self.targets) + "\n" + self.tail,
                               encoding="utf-8")
        return self

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
            ) -> Result:
        """The real CLI (``python -m secops``) in a minimal environment."""
        base = {"PATH": os.environ["PATH"], "HOME": str(self.root), "LANG": "C.UTF-8"}
        base.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "secops", "--config", str(self.config), *args],
            capture_output=True, text=True, env=base, timeout=timeout, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def password_file(self, target: str) -> Path:
        return self.state / "keys" / f"restic-{target}.password"

    def manifest_dir(self, target: str = "local") -> Path:
        """The signed manifest folder backed up into ``target``'s snapshots."""
        return self.state / "snapshot-manifest" / target


def office_with_incident(root: Path) -> tuple[Office, str]:
    """An office with the shipped playbooks (notices into ``root/drop``), one backup, and
    one incident: the shipped ``protected-file-changed`` event run through ``playbook
    test``. Returns the office and the incident id."""
    import time

    office = Office(root, [target_toml("local", str(root / "repo"))],
                    tail=PLAYBOOK_TAIL.format(drop=root / "drop")).write()
    assert office.run("init").code == 0
    assert office.run("backup", "now").code == 0
    time.sleep(1.1)  # events carry whole seconds: the backup ends a second before
    event = json.loads((PLAYBOOKS / "events" / "protected-file-changed.json").read_text(
        encoding="utf-8").replace("/srv/bau-cu", str(office.data)))
    event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (root / "event.json").write_text(json.dumps(event, ensure_ascii=False), encoding="utf-8")
    run = office.run("playbook", "test", "protected-file-changed", "--event",
                     str(root / "event.json"), "--json")
    assert run.code == 0, run.err
    return office, str(run.json()["incident"])
