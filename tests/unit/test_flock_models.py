"""Flock validation: mobu's schema, one-line errors naming the flock and the field."""

from __future__ import annotations

import pytest
import yaml

from library.errors import UserError
from library.flock.models import load_flocks, parse_flocks
from library.flock.options import parse_duration

# The four flocks of mobu's "Managing mobu flocks" page, verbatim.
MOBU_FLOCKS = """
- name: "python"
  count: 1
  users:
    - username: "bot-mobu-user"
  scopes: ["exec:notebook"]
  business:
    type: "JupyterPythonLoop"
    restart: true
    options:
      max_executions: 1
      code: "print(1+1)"
- name: "firefighter"
  count: 1
  users:
    - username: "bot-mobu-recommended"
      uidnumber: 74768
      gidnumber: 74768
  scopes: ["exec:notebook", "exec:portal", "read:image", "read:tap"]
  business:
    type: "NotebookRunner"
    options:
      repo_url: "https://github.com/lsst-sqre/system-test.git"
      repo_ref: "prod"
      max_executions: 1
    restart: true
- name: "firefighter-many"
  count: 5
  user_spec:
    username_prefix: "bot-mobu-recommended"
    uid_start: 74768
    gid_start: 74768
  scopes: ["exec:notebook", "exec:portal", "read:image", "read:tap"]
  business:
    type: "NotebookRunner"
    options:
      repo_url: "https://github.com/lsst-sqre/system-test.git"
      repo_ref: "prod"
      max_executions: 1
    restart: true
- name: "tap"
  count: 1
  users:
    - username: "bot-mobu-tap"
      uidnumber: 74775
      gidnumber: 74775
  scopes: ["read:tap"]
  business:
    type: "TAPQueryRunner"
    restart: true
    options:
      sync: true
      query_set: "dp0.2"
"""


def test_the_four_mobu_flocks_validate_from_an_autostart_file(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"autostart": yaml.safe_load(MOBU_FLOCKS)}))
    python, firefighter, many, tap = load_flocks(path)
    assert python.business.type == "NubladoPythonLoop"  # the old name is an alias
    assert python.business.parsed_options.code == "print(1+1)"
    assert python.business.restart is True
    assert firefighter.business.parsed_options.repo_ref == "prod"
    assert tap.business.parsed_options.query_set == "dp0.2"
    users = many.monkeys()
    assert [u.username for u in users] == [f"bot-mobu-recommended0{i}" for i in range(1, 6)]
    assert [u.uidnumber for u in users] == list(range(74768, 74773))
    assert [u.gidnumber for u in users] == list(range(74768, 74773))


def test_generated_names_are_padded_to_the_count():
    (flock,) = parse_flocks(
        [
            {
                "name": "e",
                "count": 120,
                "user_spec": {"username_prefix": "bot-u"},
                "business": {"type": "EmptyLoop"},
            }
        ]
    )
    names = [u.username for u in flock.monkeys()]
    assert names[0] == "bot-u001" and names[-1] == "bot-u120" and len(set(names)) == 120
    assert flock.monkeys()[0].uidnumber is None


def test_mobu_defaults():
    (flock,) = parse_flocks(
        [
            {
                "name": "p",
                "count": 1,
                "user_spec": {"username_prefix": "bot-p"},
                "business": {"type": "NubladoPythonLoop"},
            }
        ]
    )
    opts = flock.business.parsed_options
    assert flock.business.restart is False
    assert (opts.idle_time, opts.error_idle_time, opts.max_executions) == (60.0, 60.0, 25)
    assert (opts.delete_lab, opts.spawn_timeout, opts.execution_idle_time) == (True, 600.0, 1.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("1m", 60), ("1h30m", 5400), ("250ms", 0.25), (12, 12), ("2.5", 2.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "", "-1", "1d", True, None, -3])
def test_bad_durations(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def _flock(**changes):
    base = {
        "name": "web",
        "count": 2,
        "user_spec": {"username_prefix": "bot-w"},
        "business": {"type": "EmptyLoop"},
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("flock", "message"),
    [
        (
            _flock(users=[{"username": "bot-a"}, {"username": "bot-b"}]),
            "flock 'web': give exactly one of users and user_spec",
        ),
        (
            _flock(user_spec=None, users=[{"username": "bot-a"}]),
            "flock 'web': users has 1 entries but count is 2; they must match",
        ),
        (
            _flock(user_spec=None, users=[{"username": "bot-a"}, {"username": "alice"}]),
            "flock 'web': users.1.username: username 'alice' must start with 'bot-'",
        ),
        (
            _flock(user_spec={"username_prefix": "mobu"}),
            "flock 'web': user_spec.username_prefix: username_prefix 'mobu' must start with 'bot-'",
        ),
        (
            _flock(business={"type": "PythonLoop"}),
            "flock 'web': business.type: unknown business type 'PythonLoop' (known: EmptyLoop,",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"code": "1"}}),
            "flock 'web': business.options: unknown option 'code' for EmptyLoop (known:",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"idle_time": "soon"}}),
            "flock 'web': business.options.idle_time: expected a duration like 5s",
        ),
        (
            _flock(business={"type": "HTTPLoop", "options": {}}),
            "flock 'web': business.options.url: Field required (HTTPLoop)",
        ),
        (_flock(count="2"), "flock 'web': count: Input should be a valid integer"),
        (_flock(count=0), "flock 'web': count: Input should be greater than or equal to 1"),
        (_flock(colour="red"), "flock 'web': colour: Extra inputs are not permitted"),
        (_flock(start_batch_wait="later"), "flock 'web': start_batch_wait: expected a duration"),
    ],
)
def test_bad_flocks_give_one_line(flock, message):
    with pytest.raises(UserError) as info:
        parse_flocks([flock], "flocks.yaml")
    text = str(info.value)
    assert text.startswith("flocks.yaml: " + message), text
    assert "\n" not in text


def test_duplicate_names_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="flock 'web': the name is used by another flock"):
        parse_flocks([_flock(), _flock()], "f")
    with pytest.raises(UserError, match="no such flock file"):
        load_flocks(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_flocks(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="expected a list of flocks"):
        load_flocks(empty)
