"""Trigger rules (``triggers.yaml``), in Taskotron's shape::

    - name: greet on deploy            # optional, for logs and errors
      when:                            # every entry must match (exact, glob, alternatives)
        type: deploy.finished
        environment: [int, dev]        # a list: any of these
        repository.full_name: lsst/*   # a dotted path into the event; a glob
        pull_request:                  # or nested mappings, the same as dotted paths
          base.ref: main
      do:
        - project: example
          step: prepare
          presets: [quick]
          vars: {tests.example.names: [alpha]}         # literal values
          vars_from: {tests.example.greeting: message} # config key <- event field path

A string pattern with ``*``, ``?`` or ``[`` is a glob (``fnmatch``, case-sensitive) and matches
string values; any other pattern matches an equal value of the same type. A missing field
never matches. ``vars_from`` copies event fields as data into the run's variable overrides,
the path ``/var`` values take: nothing is ever rendered as a template.

Rules are checked when loaded, each error one line naming the file and rule: the shape, the
field paths, the project, the step, the presets and the config keys the vars set.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from library import config, yamlio
from library.errors import ConfigError, UserError
from library.triggers.events import MISSING, Event, check_path

GLOB_CHARS = "*?["
STEP_NAMES = ("prepare", "test", "cleanup")
SEQUENCES = {"ci": ("cleanup", "prepare", "test")}


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    project: str = Field(min_length=1)
    step: str = Field(min_length=1)
    presets: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)
    vars_from: dict[str, str] = Field(default_factory=dict)
    # Report the run's outcome back where the event came from: a GitHub check run on the
    # commit (pull_request.head.sha, or a push's after).
    report: Literal["github_check"] | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = None
    when: dict[str, Any]
    do: list[RunSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Matcher:
    path: str
    pattern: Any

    def matches(self, event: Event) -> bool:
        value = event.get(self.path)
        if value is MISSING:
            return False
        alternatives = self.pattern if isinstance(self.pattern, list) else [self.pattern]
        return any(_one(alt, value) for alt in alternatives)


def _one(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, str):
        if not isinstance(value, str):
            return False
        if any(c in pattern for c in GLOB_CHARS):
            return fnmatchcase(value, pattern)
        return value == pattern
    # Same type and equal: `true` does not match 1, nor 1 the string "1".
    return type(pattern) is type(value) and pattern == value


@dataclass(frozen=True)
class RunRequest:
    """One run a matched rule asks for; `dedupe_key` is the same for a second delivery."""

    project: str
    step: str
    presets: list[str]
    vars: dict[str, Any]
    event_id: str
    event_type: str
    rule: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "step": self.step,
            "presets": list(self.presets),
            "vars": dict(self.vars),
        }


@dataclass(frozen=True)
class LoadedRule:
    index: int
    rule: Rule
    matchers: tuple[Matcher, ...]

    @property
    def label(self) -> str:
        return f"rule {self.index + 1}" + (f" ({self.rule.name})" if self.rule.name else "")

    def matches(self, event: Event) -> bool:
        return all(m.matches(event) for m in self.matchers)


class RuleSet:
    def __init__(self, rules: list[LoadedRule], source: str) -> None:
        self.rules = rules
        self.source = source

    def __len__(self) -> int:
        return len(self.rules)

    def match(self, event: Event) -> list[RunRequest]:
        """The runs EVENT asks for, in rule order; UserError when a matching rule needs a
        field the event lacks (named, with the rule)."""
        runs: list[RunRequest] = []
        git = git_data(event)
        for loaded in self.rules:
            if not loaded.matches(event):
                continue
            for number, spec in enumerate(loaded.rule.do):
                values = dict(spec.vars)
                for key, path in spec.vars_from.items():
                    value = event.get(path)
                    if value is MISSING:
                        raise UserError(
                            f"event {event.id} ({event.type}): {self.source}: {loaded.label} "
                            f"do[{number}] sets {key} from field {path!r}, which the event "
                            "does not have"
                        )
                    values[key] = value
                data = dict(git)
                if spec.report == "github_check":
                    if not git.get("repository") or not git.get("git_sha"):
                        raise UserError(
                            f"event {event.id} ({event.type}): {self.source}: {loaded.label} "
                            f"do[{number}] reports a GitHub check, but the event names no "
                            "repository.full_name and commit (pull_request.head.sha or after)"
                        )
                    data["report"] = "github_check"
                raw = f"{event.id}\0{loaded.index}\0{number}\0{spec.project}\0{spec.step}"
                runs.append(
                    RunRequest(
                        project=spec.project,
                        step=spec.step,
                        presets=list(spec.presets),
                        vars=values,
                        event_id=event.id,
                        event_type=event.type,
                        rule=loaded.label,
                        dedupe_key=hashlib.sha256(raw.encode()).hexdigest(),
                        data=data,
                    )
                )
        return runs


def git_data(event: Event) -> dict[str, Any]:
    """What a GitHub event says of the code: repository, ref, commit (for the results' data
    and the check run); {} for events that say nothing of it."""
    out: dict[str, Any] = {}
    for key, paths in (
        ("repository", ("repository.full_name",)),
        ("git_ref", ("pull_request.head.ref", "ref")),
        ("git_sha", ("pull_request.head.sha", "after", "head_sha", "check_suite.head_sha")),
        ("pull_request", ("pull_request.number",)),
    ):
        for path in paths:
            value = event.get(path)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                out[key] = value
                break
    return out


def _matchers(when: dict[str, Any], where: str, prefix: str = "") -> list[Matcher]:
    out: list[Matcher] = []
    for key, pattern in when.items():
        path = check_path(f"{prefix}{key}", f"{where}: when")
        if isinstance(pattern, dict):
            if not pattern:
                raise UserError(f"{where}: when.{path}: an empty mapping matches nothing")
            out.extend(_matchers(pattern, where, path + "."))
            continue
        alternatives = pattern if isinstance(pattern, list) else [pattern]
        if isinstance(pattern, list) and not pattern:
            raise UserError(f"{where}: when.{path}: an empty list of alternatives matches nothing")
        for alt in alternatives:
            if isinstance(alt, (list, dict)):
                raise UserError(
                    f"{where}: when.{path}: alternatives are strings, numbers, booleans or "
                    f"null, got {type(alt).__name__}"
                )
        out.append(Matcher(path, pattern))
    return out


def project_steps(project: str) -> tuple[str, ...]:
    """The steps a project's test.py defines (read, not imported: no project code runs)."""
    path = config.project_testing_dir(project) / "test.py"
    if not path.is_file():
        return ()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in STEP_NAMES
    }
    steps = tuple(s for s in STEP_NAMES if s in defined)
    return steps + (("ci",) if steps else ())


def _check_spec(spec: RunSpec, where: str) -> None:
    try:
        steps = project_steps(spec.project)
    except ConfigError as exc:
        raise UserError(f"{where}: {exc}") from None
    if spec.step not in steps:
        raise UserError(
            f"{where}: project {spec.project!r} has no step {spec.step!r} "
            f"(its test.py gives: {', '.join(steps) or 'none'})"
        )
    for key, path in spec.vars_from.items():
        check_path(path, f"{where}: vars_from.{key}")
    try:
        cfg = config.load(spec.project, presets=spec.presets, overrides=[("rule", spec.vars)])
        for key in spec.vars_from:
            cfg.get_config(key)
    except ConfigError as exc:
        raise UserError(f"{where}: {exc}") from None


def parse(data: Any, source: str) -> RuleSet:
    if data is None:
        data = []
    if not isinstance(data, list):
        raise UserError(
            f"{source}: expected a list of rules (- when: {{...}} do: [...]), "
            f"got {type(data).__name__}"
        )
    loaded: list[LoadedRule] = []
    for index, item in enumerate(data):
        where = f"{source}: rule {index + 1}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            where += f" ({item['name']})"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            loc = ".".join(str(p) for p in error["loc"]) or "(rule)"
            raise UserError(f"{where}: {loc}: {error['msg']}") from None
        matchers = _matchers(rule.when, where)
        for number, spec in enumerate(rule.do):
            _check_spec(spec, f"{where} do[{number}]")
        loaded.append(LoadedRule(index, rule, tuple(matchers)))
    return RuleSet(loaded, source)


def load(path: Path) -> RuleSet:
    """A rule file through the bounded YAML loader, checked whole before any rule is used."""
    return parse(yamlio.loads(yamlio.read_text(path, "rule file"), str(path)), str(path))
