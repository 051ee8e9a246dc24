"""Input that crashes or exhausts (issue 12, item 8): each hostile input is refused with our
own error (a person's message, the right exit code, no traceback), in bounded time and
memory; each has an untouched twin that still works.

- playbooks: a YAML alias bomb, an oversized file, deep nesting, 1,200 steps, a FIFO; the
  daemon refuses each with a ``playbook.invalid`` alert and loads the others;
- the config: deep TOML nesting, an oversized file, a home folder that does not exist,
  URLs and host names that are not what their key says (file://, gopher://, ssh options);
- the daemon at the inotify instance limit: polling and a ``watch.degraded`` alert;
- ``report.md``: file names and event details are text, never Markdown or HTML;
- evidence ``processes.json`` and containment's process descriptions: secrets redacted;
- every SQLite database secops creates is 0600 (with its -wal and -shm);
- property tests: any text, any document is a loaded object or our error.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from minimal_config import MINIMAL_TOML

from integration.daemon import Daemon, wait_for
from integration.office import Office, target_toml
from integration.test_daemon import FAST, TAIL, settled
from secops.config.loader import load_config, parse_config
from secops.config.schema import Config
from secops.errors import ConfigError
from secops.playbooks.engine import Context, Runner
from secops.playbooks.loader import PlaybookError, load_dir, load_file, load_text

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 200  # the loader's cap (secops.playbooks.loader.MAX_STEPS)
SHIPPED = sorted((REPO / "playbooks").glob("*.yaml"))
HEAD = """\
id: t
version: 1
name: "Thử"
severity: high
trigger:
  event: integrity.unauthorized_change
"""


def cli(*args: str, cwd: Path, timeout: float = 60, memory_mb: int | None = None
        ) -> subprocess.CompletedProcess[str]:
    """The real CLI, optionally under an address-space limit (a runaway parse then dies
    with MemoryError instead of taking the machine's memory)."""
    def limit() -> None:
        if memory_mb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))

    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([sys.executable, "-m", "secops", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          preexec_fn=limit)


def problem(text: str, file: str = "t.yaml") -> str:
    with pytest.raises(PlaybookError) as e:
        load_text(text, file)
    return e.value.message


def chain(n: int) -> str:
    """A playbook of ``n`` action steps in a row, then an end."""
    steps = [f"  - {{id: s{i}, action: notify, with: {{to: office, subject: s, body: b}}, "
             f"on_success: {'s' + str(i + 1) if i + 1 < n else 'end'}}}" for i in range(n)]
    return HEAD + "steps:\n" + "\n".join(steps) + "\n  - {id: end, type: end}\n"


# -- playbooks: the alias bomb ----------------------------------------------------------------

LOL = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
BOMB = HEAD + "variables:\n  a: &a " + LOL + "\n" + "".join(
    f"  {n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi",
                                                                     strict=True)
) + "steps:\n  - {id: done, type: end}\n"
SPELLED_OUT = HEAD + f"variables:\n  a: {LOL}\n  b: [{', '.join([LOL] * 9)}]\n" \
    "steps:\n  - {id: done, type: end}\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    assert len(BOMB.encode()) < 1024  # 570 bytes of aliases: 9**9 strings once expanded
    (tmp_path / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    started = time.monotonic()
    done = cli("--config", str(tmp_path / "none.toml"), "playbook", "validate", "bomb.yaml",
               cwd=tmp_path, timeout=60, memory_mb=1024)
    took = time.monotonic() - started
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr
    assert re.search(r"bomb\.yaml:8: .*anchors and aliases", done.stderr), done.stderr
    assert took < 15


def test_the_same_lists_spelled_out_validate(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text(SPELLED_OUT, encoding="utf-8")
    done = cli("--config", str(tmp_path / "none.toml"), "playbook", "validate", "plain.yaml",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("text,line", [
    (HEAD + "variables:\n  who: &w [office]\nsteps:\n  - {id: done, type: end}\n", 8),
    (HEAD + "variables:\n  who: [office]\n  also: *w\nsteps:\n  - {id: done, type: end}\n", 9),
    (HEAD + "variables:\n  base: &b {x: 1}\n  more:\n    <<: *b\nsteps:\n"
     "  - {id: done, type: end}\n", 8),
])
def test_anchors_and_aliases_are_refused_with_file_and_line(text: str, line: int) -> None:
    msg = problem(text)
    assert msg.startswith(f"t.yaml:{line}: ") and "anchors and aliases" in msg, msg


# -- playbooks: size, depth, steps ------------------------------------------------------------

def test_an_oversized_playbook_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(HEAD + "description: |\n" + "  x\n" * 200_000 +
                   "steps:\n  - {id: done, type: end}\n", encoding="utf-8")
    with pytest.raises(PlaybookError) as e:
        load_file(big)
    assert e.value.message.startswith(f"{big}:1: ") and "KiB" in e.value.message


def test_a_playbook_with_a_long_description_loads(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text(HEAD + "description: |\n" + "  x\n" * 2_000 +
                  "steps:\n  - {id: done, type: end}\n", encoding="utf-8")
    assert load_file(ok).id == "t"


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep = HEAD + "variables:\n  x: " + "[" * 5000 + "]" * 5000 + "\nsteps:\n" \
        "  - {id: done, type: end}\n"
    msg = problem(deep)
    assert msg.startswith("t.yaml:8: ") and "nested deeper" in msg, msg


def test_moderate_nesting_loads() -> None:
    pb = load_text(HEAD + "variables:\n  x: " + "[" * 10 + "1" + "]" * 10 +
                   "\nsteps:\n  - {id: done, type: end}\n", "t.yaml")
    assert pb.variables["x"] == [[[[[[[[[[1]]]]]]]]]]


def test_twelve_hundred_steps_are_refused_with_a_clear_message() -> None:
    msg = problem(chain(1200))
    assert msg.startswith("t.yaml:7: steps: ") and f"at most {MAX_STEPS} steps" in msg, msg
    from secops.playbooks import loader

    assert loader.MAX_STEPS == MAX_STEPS


def test_a_long_chain_within_the_cap_loads_and_walks_iteratively(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain of MAX_STEPS steps loads, dry-runs and runs within a small stack: no walk
    recurses once per step."""
    import secops.audit.log  # noqa: F401 - imported before the stack is made small

    cfg = load_config(write_config(tmp_path))
    depth = len(inspect.stack())
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 90)  # far fewer frames than there are steps
    try:
        pb = load_text(chain(MAX_STEPS - 1), "t.yaml")
        plan = Runner(Context(cfg, pb, {"kind": "x"}, dry_run=True),
                      {"notify": (lambda c, a: {}, lambda c, a: "notify")}).run()
        real = Runner(Context(cfg, pb, {"kind": "x"}),
                      {"notify": (lambda c, a: {}, lambda c, a: "notify")})
        records = real.run()
    finally:
        sys.setrecursionlimit(old)
    assert len(pb.steps) == MAX_STEPS and len(plan) == MAX_STEPS
    assert len(records) == MAX_STEPS and real.ok()


def test_a_loop_in_a_long_chain_is_still_found() -> None:
    text = chain(150).replace("on_success: s100}", "on_success: s3}")
    assert "the steps loop back to 's3'" in problem(text)


def test_a_fifo_in_the_playbook_folder_is_refused_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "pb"
    folder.mkdir()
    os.mkfifo(folder / "a-fifo.yaml")
    shutil.copy(REPO / "playbooks" / "target-unreachable.yaml", folder)
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(got=load_dir(folder)), daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # stuck in open(): a writer releases it, then the test fails
        os.close(os.open(folder / "a-fifo.yaml", os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("loading the playbook folder waited on a FIFO")
    valid, problems = box["got"]
    assert [p.id for p in valid] == ["target-unreachable"]
    assert len(problems) == 1 and "a-fifo.yaml" in problems[0] and "regular file" in \
        problems[0]


# -- the daemon never dies on a bad playbook file ---------------------------------------------

@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_the_daemon_refuses_bad_playbooks_and_runs_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "pb"
    folder.mkdir()
    (folder / "a-long.yaml").write_text(chain(1200), encoding="utf-8")
    (folder / "b-deep.yaml").write_text(HEAD + "variables:\n  x: " + "[" * 5000 + "]" * 5000
                                        + "\nsteps:\n  - {id: done, type: end}\n")
    (folder / "c-big.yaml").write_text(HEAD + "description: |\n" + "  x\n" * 200_000 +
                                       "steps:\n  - {id: done, type: end}\n")
    os.mkfifo(folder / "d-fifo.yaml")
    shutil.copy(REPO / "playbooks" / "target-unreachable.yaml", folder)
    office = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))],
                    backup_extra=FAST, tail=TAIL + f'\n[playbooks]\ndir = "{folder}"\n').write()
    assert office.run("init").code == 0
    d = Daemon(office).start()
    try:
        assert "1 playbook(s) loaded" in d.log() and "4 refused" in d.log(), d.log()
        alerts = office.run("status", "--json").json()["alerts"]
        invalid = sorted(a["details"]["problem"] for a in alerts
                         if a["kind"] == "playbook.invalid")
        assert len(invalid) == 4, alerts
        for name, what in zip(["a-long", "b-deep", "c-big", "d-fifo"],
                              [f"at most {MAX_STEPS} steps", "nested deeper", "KiB",
                               "regular file"], strict=True):
            assert any(f"{name}.yaml" in p and what in p for p in invalid), (name, invalid)
        wait_for(lambda: settled(d, office), 60, "the first backup")
    finally:
        assert d.stop() == 0
    assert "Traceback" not in d.log()
    assert set(modes(office.state).values()) == {0o600}  # state.db holds voter-list shadows


# -- the config -------------------------------------------------------------------------------

def write_config(tmp_path: Path, extra: str = "", text: str | None = None) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "secops.toml"
    path.write_text(MINIMAL_TOML + extra if text is None else text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name,extra", [
    ("nested arrays", "[notify]\nrecipients = { x = " + "[" * 3000 + "]" * 3000 + " }\n"),
    ("nested tables", "[notify]\nwebhooks = " + "{ a = " * 3000 + "1" + " }" * 3000 + "\n"),
])
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, name: str, extra: str) -> None:
    path = write_config(tmp_path, extra)
    done = cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2 and str(path) in done.stderr and "nested" in done.stderr


def test_an_oversized_config_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "# " + "x" * (4 << 20) + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.message.startswith(f"{path}: ") and "KiB" in e.value.message


def test_a_config_with_a_long_comment_and_moderate_nesting_checks_clean(tmp_path: Path
                                                                         ) -> None:
    path = write_config(tmp_path, "# " + "x" * 60_000 + "\n[notify]\nwebhooks = {}\n")
    done = cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_home_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, text=MINIMAL_TOML.replace('state_dir = "state"',
                                                            'state_dir = "~nosuchuser/s"'))
    done = cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2 and "paths.state_dir" in done.stderr, done.stderr


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    raw = tomllib.loads(MINIMAL_TOML)
    for name, values in sections.items():
        if name == "targets":
            raw["backup"]["targets"][0].update(values)
        else:
            raw.setdefault(name, {}).update(values)
    return raw


BAD_URLS = ["file:///etc/passwd", "gopher://127.0.0.1:25/_HELO", "ftp://files.example/x",
            "javascript:alert(1)", "dict://127.0.0.1:11211/stats", "http:///no-host",
            "//hooks.example/x", "https://hooks example/x", "https://hooks.example/a\r\nX: y",
            "http://[::1/x", "hooks.example/x", "https://-oProxyCommand=x/"]
GOOD_URLS = ["https://hooks.tan-ky.test/secops", "http://127.0.0.1:8080/hook",
             "https://[::1]:8443/x", "https://u:tok@hooks.example/x?token=abc"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_webhook_that_is_not_http_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(minimal(notify={"webhooks": {"police": url}}), tmp_path / "c.toml")
    assert "notify.webhooks.police" in e.value.message, e.value.message


@pytest.mark.parametrize("url", GOOD_URLS)
def test_an_http_webhook_is_accepted(tmp_path: Path, url: str) -> None:
    parse_config(minimal(notify={"webhooks": {"police": url}}), tmp_path / "c.toml")


def test_config_check_refuses_a_file_webhook(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[notify]\nwebhooks = { police = "file:///etc/shadow" }\n')
    done = cli("--config", str(path), "config", "check", cwd=tmp_path)
    assert done.returncode == 2 and "notify.webhooks.police" in done.stderr, done.stderr
    ok = write_config(tmp_path, '[notify]\nwebhooks = { police = "https://ca.example/h" }\n')
    assert cli("--config", str(ok), "config", "check", cwd=tmp_path).returncode == 0


BAD_HOSTS = ["smtp://mail.example", "mail.example:25", "mail.example/x", "mail example",
             "mail.example\r\nRCPT TO:<x@y>", "-oProxyCommand=x", "", "user@mail.example",
             "[::1]", "a" * 300]
GOOD_HOSTS = ["mail.tan-ky.test", "127.0.0.1", "::1", "localhost", "smtp-1.example.com."]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_smtp_host_that_is_not_a_host_name_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(minimal(notify={"smtp_host": host}), tmp_path / "c.toml")
    assert "notify.smtp_host" in e.value.message, e.value.message


@pytest.mark.parametrize("host", GOOD_HOSTS)
def test_a_smtp_host_name_is_accepted(tmp_path: Path, host: str) -> None:
    parse_config(minimal(notify={"smtp_host": host}), tmp_path / "c.toml")


UPLOAD = {"name": "police", "user": "secops", "identity": "id", "host_key_fingerprint":
          "SHA256:" + "A" * 43}


@pytest.mark.parametrize("host,ok", [("-oProxyCommand=sh", False), ("sftp://ca.example", False),
                                     ("ca.example", True), ("10.0.0.5", True)])
def test_upload_hosts(tmp_path: Path, host: str, ok: bool) -> None:
    raw = minimal(playbooks={"uploads": [{**UPLOAD, "host": host}]})
    if ok:
        parse_config(raw, tmp_path / "c.toml")
        return
    with pytest.raises(ConfigError) as e:
        parse_config(raw, tmp_path / "c.toml")
    assert "playbooks.uploads[0].host" in e.value.message


@pytest.mark.parametrize("repo,ok", [
    ("rest:file:///etc", False), ("rest:gopher://backup.example/", False),
    ("rest:http:///no-host", False), ("rest:backup.example:8000/x", False),
    ("sftp:-oProxyCommand=/tmp/x:/repo", False), ("sftp://-oProxyCommand=x/repo", False),
    ("sftp:-luser@backup.example:/repo", False), ("s3:file:///x", False),
    ("rest:http://127.0.0.1:8000/tan-ky/", True), ("rest:https://u:pw@backup.example/x", True),
    ("sftp:backup@10.0.0.5:/srv/restic", True), ("sftp://backup@host:2222//srv/restic", True),
    ("s3:https://s3.example/bucket", True), ("s3:s3.amazonaws.com/bucket", True),
    ("/var/backups/secops", True), ("local:/var/backups/secops", True),
])
def test_repository_urls(tmp_path: Path, repo: str, ok: bool) -> None:
    raw = minimal(targets={"repository": repo})
    if ok:
        parse_config(raw, tmp_path / "c.toml")
        return
    with pytest.raises(ConfigError) as e:
        parse_config(raw, tmp_path / "c.toml")
    assert "backup.targets[0].repository" in e.value.message, e.value.message


def test_a_nul_byte_in_a_path_is_refused(tmp_path: Path) -> None:
    raw = minimal(paths={"watch": ["/srv/bau-cu\x00/etc"]})
    with pytest.raises(ConfigError) as e:
        parse_config(raw, tmp_path / "c.toml")
    assert "paths.watch[0]" in e.value.message


# -- the daemon at the inotify instance limit -------------------------------------------------

def user_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                            "echo 0 > /proc/sys/user/max_inotify_instances"],
                           capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


class InotifyStarvedDaemon(Daemon):
    """The real daemon in a user namespace of its own whose inotify instance limit is 0:
    the kernel refuses ``inotify_init`` with EMFILE, exactly as when
    fs.inotify.max_user_instances is used up; the machine-wide limit is never changed, so
    no other process (another test's daemon) is affected."""

    def start(self) -> Daemon:
        env = {"PATH": os.environ["PATH"], "HOME": str(self.office.root), "LANG": "C.UTF-8"}
        script = 'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"'
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--user", "--map-root-user", "sh", "-c", script, "sh",
                 sys.executable, "-m", "secops", "--config", str(self.office.config), "run"],
                stdout=log, stderr=log, env=env)
        Daemon.started.append(self)
        wait_for(lambda: "daemon ready" in self.log() or self.proc is None
                 or self.proc.poll() is not None, 60, "the daemon to start")
        assert self.proc.poll() is None, self.log()
        return self


@pytest.fixture
def quiet_office(tmp_path: Path) -> Office:
    o = Office(tmp_path, [target_toml("local", str(tmp_path / "repo"))], backup_extra=FAST,
               tail=TAIL).write()
    assert o.run("init").code == 0
    return o


def degraded(office: Office) -> list[dict[str, Any]]:
    alerts = office.run("status", "--json").json()["alerts"]
    return [a for a in alerts if a["kind"] == "watch.degraded"]


def latest_manifest(office: Office) -> set[str]:
    manifest = office.manifest_dir() / "secops-manifest.json"
    return set(json.loads(manifest.read_text())["files"]) if manifest.exists() else set()


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_at_the_inotify_instance_limit_the_daemon_polls_and_alerts(quiet_office: Office
                                                                   ) -> None:
    if not user_namespaces_work():
        from conftest import skip_or_fail

        skip_or_fail("user namespaces (unshare --user) are not available")
    d = InotifyStarvedDaemon(quiet_office).start()
    try:
        assert "polling instead" in d.log(), d.log()
        alerts = degraded(quiet_office)
        assert len(alerts) == 1, alerts
        problem_text = alerts[0]["details"]["problem"]
        assert "max_user_instances" in problem_text and "sysctl" in problem_text
        assert alerts[0]["paths"] == [str(quiet_office.data)]
        wait_for(lambda: settled(d, quiet_office), 60, "the first backup")
        late = quiet_office.data / "danh-sach-cu-tri" / "moi.csv"
        late.write_text("STT,Họ và tên\n1,Vũ Văn Nam\n", encoding="utf-8")
        wait_for(lambda: str(late) in latest_manifest(quiet_office)
                 and settled(d, quiet_office), 60, "the change seen by polling, backed up")
    finally:
        assert d.stop() == 0
    assert "Traceback" not in d.log()


@pytest.mark.requires_restic
@pytest.mark.requires_gpg
def test_with_inotify_available_there_is_no_degraded_alert(quiet_office: Office) -> None:
    d = Daemon(quiet_office).start()
    try:
        wait_for(lambda: settled(d, quiet_office), 60, "the first backup")
        assert "polling instead" not in d.log()
        assert degraded(quiet_office) == []
    finally:
        assert d.stop() == 0


# -- report.md: outside values are text -------------------------------------------------------

HOSTILE_NAME = "<img src=x onerror=alert(1)>.csv"
LINK_NAME = "[bấm vào đây](javascript:alert(1)).csv"
TABLE_NAME = "thon-2 | giả | .csv"
DIFF = "--- trước\n+++ sau\n+```\n+<script>alert(1)</script>\n+```"


def report_doc(tmp_path: Path, names: list[str], diff: str) -> dict[str, Any]:
    from secops.playbooks.incidents import IncidentStore
    from secops.reports.incident_report import build

    cfg = load_config(write_config(tmp_path))
    folder = Path(cfg.paths.watch[0]) / "danh-sach-cu-tri"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(folder / n) for n in names]
    store = IncidentStore(Path(cfg.paths.state_dir) / "state.db", cfg.office.code)
    try:
        event = {"kind": "integrity.unauthorized_change", "time": "2026-05-22T01:47:09Z",
                 "source": "integrity", "severity": "high",
                 "details": {"paths": paths, "changes": [
                     {"kind": "modified", "path": paths[0], "diff": diff}],
                     "processes": [{"pid": 4242, "comm": "<b>evil</b>", "exe": "/tmp/*x*"}]}}
        inc, _ = store.open_or_join("personal-data-breach", event, "critical")
        store.note(inc.id, "step", {"playbook": "personal-data-breach", "step": "draft",
                                    "type": "action", "ok": False,
                                    "error": f"cannot read {HOSTILE_NAME}", "outputs": {}})
        return build(cfg, store, inc.id, "en")
    finally:
        store.close()


def tables(md: str) -> list[list[str]]:
    out: list[list[str]] = []
    prev = False
    for line in md.splitlines():
        row = line.startswith("|")
        if row and not prev:
            out.append([])
        if row:
            out[-1].append(line)
        prev = row
    return out


def rendered(md: str) -> str:
    from markdown_it import MarkdownIt

    html: str = MarkdownIt("commonmark").enable("table").render(md)
    return html


def test_report_md_renders_outside_names_as_text(tmp_path: Path) -> None:
    from secops.reports.incident_report import render_html, render_md

    doc = report_doc(tmp_path, [HOSTILE_NAME, LINK_NAME, TABLE_NAME], DIFF)
    md = render_md(doc, "en")
    html = rendered(md)
    assert "<img" not in html and "<script" not in html and "<b>" not in html, html
    assert "<a " not in html, html  # the report links nowhere; a file name cannot make it
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in html  # shown, as the name it is
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "[bấm vào đây](javascript:alert(1)).csv" in html
    assert TABLE_NAME in html
    for table in tables(md):  # a '|' in a name never adds a column
        assert len({len(re.findall(r"(?<!\\)\|", row)) for row in table}) == 1, table
    page = render_html(doc, "en")
    assert "<img src=x" not in page and "<script>alert" not in page and "<b>evil" not in page


def test_report_md_keeps_plain_names_as_they_are(tmp_path: Path) -> None:
    from secops.reports.incident_report import render_md

    md = render_md(report_doc(tmp_path, ["thon-1.csv"], "--- trước\n+++ sau\n+4,Người Lạ"),
                   "en")
    assert "danh-sach-cu-tri/thon-1.csv" in md
    assert "+4,Người Lạ" in md
    html = rendered(md)
    assert "danh-sach-cu-tri/thon-1.csv" in html and "<a " not in html


# -- evidence and containment: secrets redacted -----------------------------------------------

SECRET_ARGS = ["--password", "hunter2-pw", "--token=tok-abc123", "--secret", "s3cr3t-val",
               "AWS_SECRET_ACCESS_KEY=aws-key-xyz", "DB_PASSWORD=db-pw-9", "API_KEY=api-k-7",
               "https://clerk:url-pw-5@files.example/x", "--key", "key-val-4",
               "-o", "username=clerk,password=mnt-pw-3"]
SECRETS = ["hunter2-pw", "tok-abc123", "s3cr3t-val", "aws-key-xyz", "db-pw-9", "api-k-7",
           "url-pw-5", "key-val-4", "mnt-pw-3"]
KEPT = ["--password", "--secret", "-p", "2222", "files.example", "clerk", "--verbose",
        "AWS_SECRET_ACCESS_KEY=", "/srv/bau-cu/danh-sach-cu-tri/thon-1.csv"]


@pytest.fixture
def secret_process() -> Iterator[int]:
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *SECRET_ARGS,
                          "-p", "2222", "--verbose", "/srv/bau-cu/danh-sach-cu-tri/thon-1.csv"])
    try:
        wait_for(lambda: b"thon-1.csv" in Path(f"/proc/{p.pid}/cmdline").read_bytes(), 10,
                 "the process to start")
        yield p.pid
    finally:
        p.kill()
        p.wait()


def test_evidence_processes_json_redacts_secrets(tmp_path: Path, secret_process: int) -> None:
    from secops.playbooks.evidence import collect

    cfg = load_config(write_config(tmp_path))
    folder = tmp_path / "incident" / "evidence"
    collect(cfg, folder, pids=[secret_process])
    text = (folder / "processes.json").read_text(encoding="utf-8")
    for s in SECRETS:
        assert s not in text, s
    mine = next(p for p in json.loads(text)["processes"] if p["pid"] == secret_process)
    for k in KEPT:
        assert any(k in a for a in mine["cmdline"]), (k, mine["cmdline"])
    assert mine["cmdline"][:3] == [sys.executable, "-c", "import time; time.sleep(120)"]


def test_containment_describes_a_process_without_its_secrets(secret_process: int) -> None:
    from secops.fim.contain import describe_process

    info = describe_process(secret_process)
    text = json.dumps(info)
    for s in SECRETS:
        assert s not in text, s
    assert info["cmdline"][:2] == [sys.executable, "-c"] and "--password" in info["cmdline"]


@pytest.mark.parametrize("argv,want", [
    (["mysql", "-uroot", "-pS3cret", "db"], ["mysql", "-uroot", "-p****", "db"]),
    (["sshpass", "-p", "S3cret", "ssh", "-p", "2222", "h"],
     ["sshpass", "-p", "****", "ssh", "-p", "2222", "h"]),
    (["ssh", "-p", "2222", "backup@host"], ["ssh", "-p", "2222", "backup@host"]),
    (["curl", "-u", "clerk:S3cret", "https://x"], ["curl", "-u", "clerk:****", "https://x"]),
    (["smbclient", "-U", "clerk%S3cret", "//srv/share"],
     ["smbclient", "-U", "clerk%****", "//srv/share"]),
    (["openssl", "enc", "-pass", "pass:S3cret"], ["openssl", "enc", "-pass", "pass:****"]),
    (["openssl", "enc", "-pass", "file:/etc/k"], ["openssl", "enc", "-pass", "file:/etc/k"]),
    (["mysql", "-pS3c=ret"], ["mysql", "-p****"]),
    (["x", "--sort-key=name", "-Ddb.password=S3cret"], ["x", "--sort-key=name",
                                                        "-Ddb.password=****"]),
    (["x", "PASSWORD_FILE=/etc/k", "--token-type", "t"], ["x", "PASSWORD_FILE=/etc/k",
                                                          "--token-type", "t"]),
    (["psql", "--no-password", "-h", "db"], ["psql", "--no-password", "-h", "db"]),
    (["restic", "--password-file", "/etc/k"], ["restic", "--password-file", "/etc/k"]),
    (["x", "--password=S3cret"], ["x", "--password=****"]),
    (["env", "GITHUB_TOKEN=S3cret", "gh"], ["env", "GITHUB_TOKEN=****", "gh"]),
    (["x", "--api-key", "S3cret"], ["x", "--api-key", "****"]),
    (["wget", "ftp://u:S3cret@h/f"], ["wget", "ftp://u:****@h/f"]),
    (["x", "https://h/cb?token=S3cret&x=1"], ["x", "https://h/cb?token=****&x=1"]),
    (["cp", "a.csv", "b.csv"], ["cp", "a.csv", "b.csv"]),
    (["x", "--password"], ["x", "--password"]),
])
def test_redaction(argv: list[str], want: list[str]) -> None:
    from secops.redact import redact_argv

    assert redact_argv(argv) == want


# -- SQLite databases are 0600 ----------------------------------------------------------------

def openers() -> dict[str, Callable[[Path], object]]:
    from secops.daemon.state import StateDB
    from secops.fim.baseline import Baseline
    from secops.fim.state import FimState
    from secops.logs import seal
    from secops.manifest.cache import HashCache
    from secops.playbooks.incidents import IncidentStore
    from secops.restore import history

    def logs_seal(db: Path) -> None:
        with seal._db(str(db.parent)) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
            conn.commit()

    return {
        "StateDB": lambda db: StateDB(db).record_changes(["/x"], 1.0),
        "IncidentStore": lambda db: IncidentStore(db, "tan-ky").close(),
        "FimState": lambda db: FimState(db).close(),
        "Baseline": lambda db: Baseline(db).close(),
        "HashCache": lambda db: HashCache(db).close(),
        "logs.seal": logs_seal,
        "restore.history": lambda db: history.record(db, {
            "time": "2026-05-22T01:47:09Z", "target": "local", "ok": True,
            "snapshot_id": "a" * 64, "files_checked": 1, "bytes": 1, "rto_s": 1.0,
            "rpo_s": 1.0, "report": "r.json"}),
    }


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.glob("state.db*")}


@pytest.mark.parametrize("opener", list(openers()))
def test_every_database_secops_creates_is_private(tmp_path: Path, opener: str) -> None:
    old = os.umask(0o022)
    try:
        db = tmp_path / "state" / "state.db"
        db.parent.mkdir()
        openers()[opener](db)
        assert db.exists()
        held = sqlite3.connect(db)  # keep -wal and -shm while we look
        held.execute("PRAGMA journal_mode=WAL")
        held.execute("SELECT count(*) FROM sqlite_master").fetchall()
        try:
            found = modes(db.parent)
        finally:
            held.close()
    finally:
        os.umask(old)
    assert found and set(found.values()) == {0o600}, found


def test_an_existing_readable_database_is_made_private(tmp_path: Path) -> None:
    from secops.daemon.state import StateDB

    db = tmp_path / "state.db"
    StateDB(db).close()
    for p in tmp_path.glob("state.db*"):
        p.chmod(0o644)
    StateDB(db).record_changes(["/srv/x"], 1.0)
    assert set(modes(tmp_path).values()) == {0o600}


def test_a_private_database_keeps_its_data(tmp_path: Path) -> None:
    from secops.daemon.state import StateDB

    db = StateDB(tmp_path / "state.db")
    db.record_changes(["/srv/x"], 5.0)
    db.close()
    again = StateDB(tmp_path / "state.db")
    try:
        assert again.last_change() == 5.0
    finally:
        again.close()


READER = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
          "print(c.execute('PRAGMA integrity_check').fetchone()[0], "
          "c.execute('SELECT count(*) FROM pending').fetchone()[0]); c.close()")


def test_opening_a_database_never_drops_the_locks_of_its_other_connections(tmp_path: Path
                                                                          ) -> None:
    """The daemon holds state.db open while its threads open more connections and other
    processes (``secops status``) open and close theirs. Making a file private must never
    close a descriptor of it: that drops the daemon's locks, and the other process, thinking
    itself the last user, deletes the live WAL under the daemon (``disk I/O error``, then
    ``database disk image is malformed``)."""
    from secops.daemon.state import StateDB

    db = tmp_path / "state.db"
    daemon = StateDB(db)
    try:
        for n in range(5):
            daemon.record_changes([f"/srv/bau-cu/{n}-{i}.csv" for i in range(200)], n + 1.0)
            StateDB(db).close()  # another thread's connection, through the helper
            other = subprocess.run([sys.executable, "-c", READER, str(db)], capture_output=True,
                                   text=True, timeout=30, check=False)
            assert other.stdout.split() == ["ok", str(200 * (n + 1))], other.stderr
            assert (tmp_path / "state.db-wal").exists()  # still the daemon's
        assert daemon.pending_count() == 1000
    finally:
        daemon.close()


def test_every_sqlite_connect_goes_through_the_one_helper() -> None:
    from secops import database

    helper = Path(database.__file__).resolve()
    found = [f"{p.relative_to(REPO)}:{n}" for p in sorted((REPO / "secops").rglob("*.py"))
             if p.resolve() != helper
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if "sqlite3.connect(" in line]
    assert found == []


# -- property tests: a loaded object or our error, in bounded time ----------------------------

YAML_BITS = st.sampled_from(["id:", "steps:", "- ", "  ", "\n", "{", "}", "[", "]", ",", ":",
                             "&a ", "*a", "!!binary ", "!!set ", "? ", "|", ">", "'", '"', "#",
                             "%YAML 1.1\n", "---\n", "...", "<<: ", "2026-13-01", "0x" + "f" * 9,
                             "1" * 5000, "~", "\t", "\x85", "\ufeff", "é", "on_success: ",
                             "type: end", "action: notify", "trigger: {event: a.b}"])
YAML_TEXT = st.lists(YAML_BITS | st.text(max_size=8), max_size=60).map("".join)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.dates()
           | st.text(max_size=12) | st.sampled_from(["{event.x}", "{vars.nope}", "*", "a.*",
                                                      "~nosuchuser/x", "\x00", "s1"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.integers(), inner,
                                        max_size=4), max_leaves=12)
SHIPPED_DOCS = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in SHIPPED]
PROPERTY = settings(max_examples=120, deadline=timedelta(seconds=3),
                    suppress_health_check=[HealthCheck.too_slow])


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_of(v, (*prefix, i))


def mutate(doc: Any, edits: list[tuple[int, Any]]) -> Any:
    doc = copy.deepcopy(doc)
    for pick, value in edits:
        paths = [p for p in paths_of(doc) if p]
        if not paths:
            return value
        *parent_path, last = paths[pick % len(paths)]
        parent = doc
        for part in parent_path:
            parent = parent[part]
        parent[last] = value
    return doc


def loads_or_playbook_error(text: str) -> None:
    try:
        load_text(text, "p.yaml")
    except PlaybookError as e:
        assert e.message.startswith("p.yaml:"), e.message


@PROPERTY
@given(YAML_TEXT)
def test_any_text_is_a_playbook_or_a_playbook_error(text: str) -> None:
    loads_or_playbook_error(text)


@PROPERTY
@given(st.sampled_from(SHIPPED_DOCS), st.lists(st.tuples(st.integers(0, 10_000), VALUES),
                                               min_size=1, max_size=3))
def test_any_edited_playbook_is_a_playbook_or_a_playbook_error(doc: Any,
                                                               edits: list[Any]) -> None:
    loads_or_playbook_error(yaml.safe_dump(mutate(doc, edits), allow_unicode=True))


TOML_BITS = st.sampled_from(["[office]\n", "[paths]\n", "[[backup.targets]]\n", "name = ",
                             '"x"', "'y'", '"""', "= ", "[", "]", "{", "}", ",", ".", "\n",
                             " ", "#", "1979-05-27T07:32:00Z", "1e400", "nan", "0x" + "f" * 9,
                             "1" * 5000, "true", '"~nosuchuser"', '"\\u0000"', "\\", "é"])
TOML_TEXT = st.lists(TOML_BITS | st.text(max_size=8), max_size=60).map("".join)
TOML_SCALARS = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats()
                | st.text(max_size=12) | st.sampled_from([
                    "~nosuchuser/x", "file:///etc/passwd", "rest:gopher://x", "sftp:-o:/",
                    "\x00", "", "/", "..", "mon-fri 07:30-17:30", "sun 99:99-00:00"]))
TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)
MINIMAL_DOC = tomllib.loads(MINIMAL_TOML)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config-property")


def loads_or_config_error(folder: Path, text: str) -> Config | None:
    path = folder / "secops.toml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_config(path)
    except ConfigError as e:
        assert e.message.startswith(str(path)), e.message
        return None


@PROPERTY
@given(text=TOML_TEXT)
def test_any_text_is_a_config_or_a_config_error(config_dir: Path, text: str) -> None:
    loads_or_config_error(config_dir, text)


@PROPERTY
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), TOML_VALUES), min_size=1, max_size=3))
def test_any_edited_config_is_a_config_or_a_config_error(config_dir: Path,
                                                         edits: list[Any]) -> None:
    import tomli_w

    doc = mutate(MINIMAL_DOC, edits)
    if not isinstance(doc, dict):
        return
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. a list of tables mixed with values)
    loads_or_config_error(config_dir, text)


STRING_LEAVES = [("office", "name"), ("office", "code"), ("paths", "state_dir"),
                 ("paths", "watch", 0), ("backup", "targets", 0, "name"),
                 ("backup", "targets", 0, "repository")]
HOSTILE_STRINGS = st.sampled_from(["~nosuchuser/x", "~", "file:///etc/passwd", "\x00",
                                   "rest:gopher://x/", "sftp:-oProxyCommand=x:/r", "", "..",
                                   "a" * 5000, "rest:http://[::1/", "s3:http://[x"])


@PROPERTY
@given(leaf=st.sampled_from(STRING_LEAVES), value=HOSTILE_STRINGS | st.text(max_size=30))
@example(leaf=("paths", "state_dir"), value="~nosuchuser/x")
@example(leaf=("paths", "watch", 0), value="~nosuchuser")
@example(leaf=("backup", "targets", 0, "repository"), value="rest:http://[::1/")
def test_any_string_in_the_config_is_a_config_or_a_config_error(
        config_dir: Path, leaf: tuple[Any, ...], value: str) -> None:
    import tomli_w

    doc = copy.deepcopy(MINIMAL_DOC)
    parent = doc
    for part in leaf[:-1]:
        parent = parent[part]
    parent[leaf[-1]] = value
    loads_or_config_error(config_dir, tomli_w.dumps(doc))


def test_the_untouched_minimal_config_loads(config_dir: Path) -> None:
    cfg = loads_or_config_error(config_dir, MINIMAL_TOML)
    assert cfg is not None and cfg.office.code == "tan-ky"
    assert msgspec.to_builtins(cfg)["backup"]["targets"][0]["name"] == "local"
