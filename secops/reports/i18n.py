"""Report wording, Vietnamese (default) and English: one data file per language,
``secops/reports/words/<lang>.toml``, shared by the incident, weekly and drill reports.

``words(lang)`` is the language's ``Words``: tables of text by key (``table``), one text
(``term``) and typed readings of the codes the rest of secops records: severities, incident
states, step outcomes, event and audit record kinds, playbook actions, actors, playbook
names, approval prompts, engine errors. A code the file has no word for is never shown bare
and never silently: it comes back as ``common.untranslated`` ("<code> (chưa có bản dịch)"),
which a reader sees and ``tests/unit/test_report_words.py`` catches.

Pure apart from reading the two shipped files once (package data, cached).
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

LANGS = ("vi", "en")
Text = str | list[str]

_VI_LETTERS = "àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ"
_VIETNAMESE = re.compile(f"[{_VI_LETTERS}{_VI_LETTERS.upper()}]")
_DEFAULT_PROMPT = re.compile(r"Approve step (.+)\?")          # engine.Runner._approval
_TIMED_OUT = re.compile(r"timed out after (\S+) s")           # engine._with_timeout
_UNKNOWN_VALUE = re.compile(r"unknown value \{(.+)\}")        # engine.Runner._action
_BRANCH_FAILED = "a branch failed or timed out"               # engine.Runner._parallel


def lang_of(lang: str | None) -> str:
    """"en" for English, else the default "vi"."""
    return "en" if lang == "en" else "vi"


def is_vietnamese(text: str) -> bool:
    return _VIETNAMESE.search(text) is not None


@functools.cache
def _load(lang: str) -> dict[str, dict[str, Text]]:
    raw = resources.files("secops.reports").joinpath("words", f"{lang}.toml").read_text(
        encoding="utf-8")
    doc = tomllib.loads(raw)
    tables: dict[str, dict[str, Text]] = {}
    for name, table in doc.items():
        if not isinstance(table, dict):
            raise ValueError(f"words/{lang}.toml: {name} is not a table")
        for key, value in table.items():
            ok = isinstance(value, str) or (isinstance(value, list) and all(
                isinstance(v, str) for v in value))
            if not ok:
                raise ValueError(f"words/{lang}.toml: [{name}] {key} is not text")
        tables[name] = dict(table)
    return tables


@dataclass(frozen=True)
class Words:
    """The wording of one language (see the module's docstring)."""

    lang: str
    tables: dict[str, dict[str, Text]]

    # -- plain access ----------------------------------------------------------------------

    def table(self, name: str) -> dict[str, str]:
        """A table's texts (lists left out), for a template: ``t.title``."""
        return {k: v for k, v in self.tables[name].items() if isinstance(v, str)}

    def has(self, table: str, key: str) -> bool:
        return key in self.tables[table]

    def term(self, table: str, key: str) -> str:
        """The text of ``key``; for an unknown key, the visible ``untranslated`` marker."""
        value = self.tables[table].get(key)
        if isinstance(value, str):
            return value
        return self.untranslated(key if value is None else f"{table}.{key}")

    def lines(self, table: str, key: str) -> list[str]:
        value = self.tables[table].get(key)
        if isinstance(value, list):
            return list(value)
        return [self.untranslated(key)]

    def term_or_default(self, table: str, key: str) -> str:
        return self.term(table, key if self.has(table, key) else "default")

    def lines_or_default(self, table: str, key: str) -> list[str]:
        return self.lines(table, key if self.has(table, key) else "default")

    def untranslated(self, key: str) -> str:
        return self.term("common", "untranslated").format(key=key)

    def quoted(self, text: str) -> str:
        return self.term("common", "quoted").format(text=text)

    def system(self, text: str) -> str:
        """A message the program wrote (in English): marked as such, kept as it is."""
        return self.term("common", "system_text").format(text=text)

    # -- codes -----------------------------------------------------------------------------

    def severity(self, code: str | None) -> str:
        return self.term("severity", code or "")

    def state(self, code: str | None) -> str:
        return self.term("state", code or "")

    def outcome(self, code: str) -> str:
        return self.term("outcome", code)

    def event(self, kind: str | None) -> str:
        """The name of an event kind (``ransomware.suspected``)."""
        return self.term("event", kind or "")

    def record(self, kind: str) -> str:
        """The name of a timeline entry or audit record kind; an event kind's own name."""
        if self.has("record", kind) or not self.has("event", kind):
            return self.term("record", kind)
        return self.event(kind)

    def action(self, name: str | None, step: str | None = None) -> str:
        """What a playbook action does; without a known action, the step by its id."""
        if name:
            return self.term("action", name)
        return self.term("action", "step").format(step=step or "?")

    def change(self, kind: str | None) -> str:
        return self.term("change", kind or "")

    def playbook(self, playbook_id: str) -> str:
        """A shipped playbook's name; an office's own playbook by its id (its own name)."""
        if self.has("playbook", playbook_id):
            return self.term("playbook", playbook_id)
        return playbook_id

    def actor(self, code: str | None) -> str:
        """Who did it, from the audit log's actor (``cli:root``, ``daemon``,
        ``playbook:<id>/<step>``) or an event's source (``integrity``, ``cli``)."""
        if not code:
            return self.term("common", "unknown")
        head, _, rest = code.partition(":")
        if head == "cli":
            if not rest:
                return self.term("actor", "cli")
            if rest == "root":
                return self.term("actor", "cli_root")
            return self.term("actor", "cli_user").format(user=rest)
        if head == "daemon":
            key = f"daemon_{rest}" if rest else "daemon"
            return self.term("actor", key if self.has("actor", key) else "daemon")
        if head == "playbook":
            if not rest:
                return self.term("actor", "playbook")
            playbook_id, _, step = rest.partition("/")
            key = "playbook_step" if step else "playbook_named"
            return self.term("actor", key).format(name=self.playbook(playbook_id), step=step)
        if not rest and head in ("integrity", "secops"):
            return self.term("actor", head)
        return self.untranslated(code)

    def prompt(self, playbook_id: str, step: str, text: str) -> str:
        """An approval question: a shipped one in this language; the engine's default one
        translated; any other as the playbook wrote it, marked as its own words when it is
        not in this language."""
        m = _DEFAULT_PROMPT.fullmatch(text)
        if m is not None:
            return self.term("common", "prompt_default").format(step=m[1])
        key = f"{playbook_id}/{step}"
        if self.has("prompt", key) and words("vi").tables["prompt"].get(key) == text:
            return self.quoted(self.term("prompt", key))
        if is_vietnamese(text) == (self.lang == "vi"):
            return self.quoted(text)
        return self.term("common", "own_words").format(text=text)

    def error(self, text: str | None) -> str:
        """Why a step failed: the engine's own reasons in words, any other error as the
        system's message, no error as such."""
        if not text:
            return self.outcome("failed_no_error")
        if text == _BRANCH_FAILED:
            reason = self.outcome("branch_failed")
        elif (m := _TIMED_OUT.fullmatch(text)) is not None:
            reason = self.outcome("timed_out").format(seconds=m[1])
        elif (m := _UNKNOWN_VALUE.fullmatch(text)) is not None:
            reason = self.outcome("unknown_value").format(name=m[1])
        else:
            reason = self.system(text)
        return self.outcome("failed_because").format(reason=reason)

    def result(self, ok: bool | None, error: str | None = None) -> str:
        """A step's result: succeeded, or failed and why."""
        return self.outcome("ok") if ok else self.error(error)


@functools.cache
def words(lang: str | None) -> Words:
    """The wording of ``lang`` ("en", else Vietnamese)."""
    code = lang_of(lang)
    return Words(code, _load(code))


def term(table: str, key: str, lang: str | None) -> str:
    """``words(lang).term(table, key)``: an unknown key comes back visibly marked."""
    return words(lang).term(table, key)
