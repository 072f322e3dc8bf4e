"""Flock validation as mobu 19.x does it, on real flocks (tests/fixtures/mobu/, sources there).

mobu's verdicts below come from its models (``lsst-sqre/mobu`` at 95fe256: ``models/flock.py``,
``models/user.py``, ``models/business/*.py``, ``services/flock.py``) and its tests
(``tests/autostart_test.py``, ``tests/handlers/flock_test.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from library.errors import UserError
from library.flock import businesses
from library.flock.models import find_flock_list, load_flocks, parse_flocks
from library.flock.options import parse_duration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mobu"
PHALANX = sorted((FIXTURES / "phalanx").glob("values-*.yaml"))


def _one(flock: dict, source: str = "flocks.yaml"):
    (parsed,) = parse_flocks([flock], source)
    return parsed


def _phalanx_flocks():
    for path in PHALANX:
        flocks, where = find_flock_list(yaml.safe_load(path.read_text()))
        assert where == "config.autostart"
        for flock in flocks:
            yield pytest.param(path.name, flock, id=f"{path.stem}:{flock['name']}")


# Every flock Phalanx deploys; mobu refuses exactly these (its options forbid unknown keys, and
# `repo_branch` was renamed `repo_ref` in 2024: these two environments never followed).
PHALANX_REFUSED = {
    ("values-ccin2p3.yaml", "firefighter"): "business.options.repo_branch: not an option",
    ("values-ccin2p3.yaml", "weekly"): "business.options.repo_branch: not an option",
}


@pytest.mark.parametrize(("file", "flock"), list(_phalanx_flocks()))
def test_every_phalanx_flock_is_accepted_or_refused_as_mobu_does(file, flock):
    refused = PHALANX_REFUSED.get((file, flock["name"]))
    if refused:
        with pytest.raises(UserError) as err:
            _one(flock, file)
        assert f"{file}: flock {flock['name']!r}: {refused}" in str(err.value)
        assert "mobu renamed it repo_ref" in str(err.value)
        return
    parsed = _one(flock, file)
    assert parsed.business.type == flock["business"]["type"]
    assert parsed.notices == []  # Phalanx flocks use nothing bosun reads differently


def test_phalanx_flock_count():
    assert len(list(_phalanx_flocks())) == 25


def test_a_phalanx_values_file_loads_from_config_autostart():
    flocks = load_flocks(FIXTURES / "phalanx" / "values-idfint.yaml")
    assert [f.name for f in flocks] == [
        "phalanx-quotidian",
        "phalanx-recommended",
        "tutorial",
        "tap",
        "sia",
    ]
    quotidian, _, tutorial, tap, sia = flocks
    opts = quotidian.business.parsed_options
    assert opts.cell_execution_timeout == 1000.0  # "1000s"
    assert opts.image.to_spawn_form() == {"image_class": "latest-daily", "size": "Large"}
    assert [r.model_dump() for r in opts.collection_rules] == [
        {"type": "exclude_union_of", "patterns": ["sasquatch.ipynb"]}
    ]
    assert (opts.idle_time, opts.execution_idle_time, opts.max_executions) == (300.0, 0.0, 25)
    tap_opts = tap.business.parsed_options
    assert (tap_opts.dataset, tap_opts.query_set, tap_opts.sync) == ("dp02", "dp0.2", False)
    assert sia.business.type == "SIAQuerySetRunner"


def test_groups_on_users_are_kept():
    (quotidian, *_) = load_flocks(FIXTURES / "phalanx" / "values-idfdev.yaml")[1:]
    (user,) = quotidian.monkeys()
    assert [(g.name, g.id) for g in user.groups] == [("g_users", 2000003)]


def test_a_whole_file_stops_at_its_first_refused_flock():
    with pytest.raises(UserError) as err:
        load_flocks(FIXTURES / "phalanx" / "values-ccin2p3.yaml")
    assert str(err.value).startswith(
        f"{FIXTURES / 'phalanx' / 'values-ccin2p3.yaml'}: flock 'firefighter': "
        "business.options.repo_branch:"
    )


def test_mobus_own_autostart_test_file():
    """mobu's tests/autostart_test.py: the users, UIDs, GIDs and options it expects."""
    basic, python = load_flocks(FIXTURES / "mobu-tests-autostart.yaml")
    users = basic.monkeys()
    assert [u.username for u in users] == [f"bot-mobu-testuser{i:02d}" for i in range(1, 11)]
    assert [u.uidnumber for u in users] == [1000 + i for i in range(10)]
    assert [u.gidnumber for u in users] == [2000 + i for i in range(10)]
    assert basic.scopes == ["exec:notebook"]
    # The flock-level `restart` mobu ignores; the business one counts.
    assert python.notices == [
        "option spawn_settle_time is accepted as mobu accepts it, without effect: bosun "
        "follows the spawn progress from the start",
        "ignored flock key(s) restart, as mobu ignores them",
    ]
    assert python.business.restart is True
    opts = python.business.parsed_options
    assert opts.image.to_spawn_form() == {"image_class": "latest-weekly", "size": "Large"}
    assert opts.spawn_settle_time == 0.0
    # Gafaelfawr's rule mobu's test expects: no GID but a UID means GID = UID.
    assert [u.effective_gid for u in python.monkeys()] == [60000, 70000]


def test_mobus_docs_flocks():
    """docs/user-guide/flocks.rst: mobu accepts three of its five examples."""
    data = yaml.safe_load((FIXTURES / "mobu-docs-flocks.yaml").read_text())["autostart"]
    python, batch, firefighter, many, tap = data
    parsed = _one(python)
    assert parsed.business.type == "NubladoPythonLoop"
    assert parsed.notices == [
        "business.type JupyterPythonLoop is mobu's old name of NubladoPythonLoop; read as "
        "NubladoPythonLoop"
    ]
    with pytest.raises(UserError, match="flock 'python-batch': users: has 1 entries, count is 10"):
        _one(batch)
    assert _one(firefighter).business.parsed_options.max_executions == 1
    users = _one(many).monkeys()
    # mobu pads the index to the digits of count: 5 monkeys -> one digit.
    assert [u.username for u in users] == [f"bot-mobu-recommended{i}" for i in range(1, 6)]
    assert [u.uidnumber for u in users] == list(range(74768, 74773))
    with pytest.raises(UserError) as err:
        _one(tap)
    assert "business.options.query_set: not an option of TAPQueryRunner" in str(err.value)


def test_retired_business_types_are_refused_naming_their_successor():
    # ../shared/reference/mobu-flocks.txt still shows NotebookRunner (retired in mobu 15).
    flock = yaml.safe_load((FIXTURES / "mobu-docs-flocks.yaml").read_text())["autostart"][2]
    flock["business"]["type"] = "NotebookRunner"
    with pytest.raises(UserError) as err:
        _one(flock)
    assert "business type 'NotebookRunner' no longer exists" in str(err.value)
    assert "NotebookRunnerCounting" in str(err.value)


def _flock(**changes):
    base = {
        "name": "web",
        "count": 2,
        "user_spec": {"username_prefix": "bot-mobu-w"},
        "scopes": [],
        "business": {"type": "EmptyLoop"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("count", "first", "last"),
    [(1, "bot-mobu-w1", "bot-mobu-w1"), (9, "bot-mobu-w1", "bot-mobu-w9"),
     (10, "bot-mobu-w01", "bot-mobu-w10"), (120, "bot-mobu-w001", "bot-mobu-w120")],
)  # fmt: skip
def test_generated_names_are_padded_to_the_digits_of_count(count, first, last):
    names = [u.username for u in _one(_flock(count=count)).monkeys()]
    assert (names[0], names[-1], len(set(names))) == (first, last, count)


def test_user_spec_groups_reach_every_user():
    spec = {"username_prefix": "bot-mobu-g", "groups": [{"name": "g_special", "id": 123181}]}
    users = _one(_flock(user_spec=spec)).monkeys()
    assert all([(g.name, g.id) for g in u.groups] == [("g_special", 123181)] for u in users)


def test_mobu_defaults():
    opts = _one(_flock(business={"type": "NubladoPythonLoop"})).business.parsed_options
    assert (opts.idle_time, opts.error_idle_time, opts.log_level) == (60.0, 60.0, "INFO")
    assert (opts.max_executions, opts.code) == (25, 'print(2+2, end="")')
    assert (opts.delete_lab, opts.delete_timeout, opts.execution_idle_time) == (True, 60.0, 1.0)
    assert (opts.spawn_timeout, opts.spawn_settle_time, opts.jupyter_timeout) == (610, 10, 60)
    assert opts.max_websocket_message_size is None  # mobu 19.0: no limit
    assert opts.image.to_spawn_form() == {"image_class": "recommended", "size": "Large"}
    tap = _one(_flock(business={"type": "TAPQuerySetRunner"})).business.parsed_options
    assert (tap.query_set, tap.dataset, tap.sync, tap.query_timeout) == (
        "dp0.1",
        "dp02",
        True,
        None,
    )
    sia = _one(_flock(business={"type": "SIAQuerySetRunner"})).business.parsed_options
    assert (sia.query_set, sia.dataset) == ("dp02", "dp02")
    nb = _one(_flock(business={"type": "NotebookRunnerCounting"})).business.parsed_options
    assert (nb.repo_url, nb.repo_ref) == ("https://github.com/lsst-sqre/notebook-demo.git", "prod")
    assert (nb.max_executions, nb.exclude_dirs, nb.collection_rules) == (25, [], [])
    flock = _one(_flock())
    assert (flock.business.restart, flock.start_batch_size, flock.start_batch_wait) == (
        False,
        None,
        None,
    )


def test_a_zero_batch_size_starts_everything_at_once_as_in_mobu():
    flock = _one(_flock(start_batch_size=0))
    assert (flock.start_batch_size, flock.start_batch_wait) == (0, None)


def test_mobu_coerces_as_pydantic_does():
    flock = _one(_flock(count="3", business={"type": "EmptyLoop", "restart": "true"}))
    assert (flock.count, flock.business.restart) == (3, True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (12, 12),
        ("2.5", 2.5),
        ("5s", 5),
        ("1m", 60),
        ("5min", 300),
        ("2 hours", 7200),
        ("1d", 86400),
        ("1w2d", 9 * 86400),
        ("1h30m", 5400),
        ("4h 3minutes", 4 * 3600 + 180),
        ("1000s", 1000),
        # bosun's additions
        ("250ms", 0.25),
        ("1.5h", 5400),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "-1", "1m1h", "soon", True, None, -3])
def test_bad_durations(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("flock", "message"),
    [
        (_flock(scopes=None), "scopes: Field required"),
        (
            _flock(start_batch_size=10),
            "start_batch_wait: must be given (and not 0) with start_batch_size",
        ),
        (
            _flock(start_batch_size=10, start_batch_wait=0),
            "start_batch_wait: must be given (and not 0) with start_batch_size",
        ),
        (
            _flock(users=[{"username": "bot-mobu-a"}, {"username": "bot-mobu-b"}]),
            "give only one of users and user_spec, not both",
        ),
        (_flock(user_spec=None), "give one of users and user_spec"),
        (
            _flock(user_spec=None, users=[{"username": "bot-mobu-a"}, {"username": "alice"}]),
            "users.1.username: username 'alice' must start with 'bot-'",
        ),
        (
            _flock(business={"type": "PythonLoop"}),
            "business: unknown business type 'PythonLoop' (known: EmptyLoop,",
        ),
        (
            _flock(business={"type": "JupyterLoginLoop"}),
            "business: business type 'JupyterLoginLoop' no longer exists",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"code": "1"}}),
            "business.options.code: not an option of EmptyLoop (known: error_idle_time,",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"jitter": "5s"}}),
            "business.options.jitter: not an option of EmptyLoop (mobu has `jitter` on Nublado",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"idle_time": "soon"}}),
            "business.options.idle_time: expected a duration like 30, 5s",
        ),
        (
            _flock(business={"type": "EmptyLoop", "options": {"log_level": "loud"}}),
            "business.options.log_level: Input should be 'DEBUG', 'INFO'",
        ),
        (
            _flock(business={"type": "TAPQueryRunner"}),
            "business.options: Field required (TAPQueryRunner has required options)",
        ),
        (
            _flock(business={"type": "TAPQueryRunner", "options": {"sync": True}}),
            "business.options.queries: Field required (TAPQueryRunner)",
        ),
        (
            _flock(business={"type": "GitLFS", "options": {"lfs_read_url": "https://x"}}),
            "business.options.lfs_write_url: Field required (GitLFS)",
        ),
        (
            _flock(business={"type": "NubladoPythonLoop", "options": {"image": "w_2026_10"}}),
            "business.options.image: expected a mapping {image_class, size, debug}",
        ),
        (
            _flock(business={"type": "NubladoPythonLoop", "options": {"image": {"size": "XL"}}}),
            "business.options.image.size: Input should be 'Fine', 'Diminutive'",
        ),
        (
            _flock(
                business={"type": "NubladoPythonLoop", "options": {"image": {"class": "by-tag"}}}
            ),
            "business.options.image.tag: Field required",
        ),
        (
            _flock(business={"type": "NotebookRunnerList", "options": {"max_executions": 3}}),
            "business.options.max_executions: not an option of NotebookRunnerList",
        ),
        (
            _flock(
                business={
                    "type": "NotebookRunnerCounting",
                    "options": {"collection_rules": [{"type": "exclude", "patterns": ["a"]}]},
                }
            ),
            "business.options.collection_rules.0.type: Input should be 'intersect_union_of'",
        ),
        (
            _flock(business={"type": "EmptyLoop", "colour": "red"}),
            "business.colour: Extra inputs are not permitted",
        ),
        (_flock(count=0), "count: Input should be greater than or equal to 1"),
    ],
)
def test_refused_as_mobu_refuses_in_one_line(flock, message):
    with pytest.raises(UserError) as info:
        parse_flocks([flock], "flocks.yaml")
    text = str(info.value)
    assert text.startswith("flocks.yaml: flock 'web': " + message), text
    assert "\n" not in text


def test_accepted_as_mobu_accepts():
    image = {"image_class": "by-reference", "reference": "lighthouse.ceres/library/sketchbook:1"}
    opts = _one(
        _flock(
            business={
                "type": "NotebookRunnerInfinite",
                "options": {
                    "image": {**image, "size": "Small", "debug": True},
                    "log_level": "debug",
                    "exclude_dirs": ["drafts", "drafts"],
                    "notebook_idle_time": "30s",
                    "max_websocket_message_size": 1048576,
                },
            }
        )
    ).business.parsed_options
    assert opts.image.to_spawn_form() == {
        "image_list": image["reference"],
        "size": "Small",
        "enable_debug": "true",
    }
    assert (opts.log_level, opts.exclude_dirs, opts.notebook_idle_time) == (
        "DEBUG",
        ["drafts"],
        30.0,
    )
    assert _one(_flock(business={"type": "Muster"})).business.type == "Muster"


def test_flock_level_and_user_keys_mobu_ignores_are_named():
    flock = _one(
        _flock(
            user_spec=None,
            count=1,
            users=[{"username": "bot-mobu-a", "shell": "/bin/sh"}],
            restart=True,
            colour="red",
        )
    )
    assert flock.notices == [
        "ignored flock key(s) colour, restart, as mobu ignores them",
        "ignored users[0] key(s) shell, as mobu ignores them",
    ]


def test_a_bot_name_mobu_would_refuse_is_accepted_with_a_notice():
    flock = _one(_flock(user_spec={"username_prefix": "bot-scale"}))
    assert flock.notices == [
        "username 'bot-scale' does not start with 'bot-mobu': bosun accepts any 'bot-' name, "
        "mobu would refuse it"
    ]


def test_a_business_bosun_cannot_run_validates_and_says_what_it_needs(monkeypatch):
    from dataclasses import replace

    entry = replace(businesses.REGISTRY["Muster"], target=None, needs="a Muster service")
    monkeypatch.setitem(businesses.REGISTRY, "Muster", entry)
    assert _one(_flock(business={"type": "Muster"})).business.type == "Muster"
    assert businesses.runnable("Muster") == (
        "business Muster validates but cannot run here: it needs a Muster service"
    )
    with pytest.raises(UserError, match="cannot run here: it needs a Muster service"):
        businesses.business_class("Muster")
    assert businesses.runnable("EmptyLoop") is None


def test_lists_load_from_wherever_they_sit(tmp_path):
    flock = _flock()
    for data in ([flock], {"autostart": [flock]}, {"config": {"autostart": [flock]}}, flock):
        path = tmp_path / "f.yaml"
        path.write_text(yaml.safe_dump(data))
        assert [f.name for f in load_flocks(path)] == ["web"]


def test_duplicate_names_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="flock 'web': the name is used by another flock"):
        parse_flocks([_flock(), _flock()], "f")
    with pytest.raises(UserError, match="missing.yaml: no such"):
        load_flocks(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_flocks(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(UserError, match="empty.yaml: the file is empty; expected a list of flocks"):
        load_flocks(empty)
    other = tmp_path / "other.yaml"
    other.write_text("flocks: []\n")
    with pytest.raises(UserError, match="expected a list of flocks, an 'autostart:' list"):
        load_flocks(other)
    no_flocks = tmp_path / "values-summit.yaml"
    no_flocks.write_text("config:\n  slackAlerts: true\n")
    with pytest.raises(UserError, match="a Phalanx values file without config.autostart"):
        load_flocks(no_flocks)
    values = tmp_path / "values.yaml"
    values.write_text("config:\n  autostart: []\n")
    with pytest.raises(UserError, match="the flock list at config.autostart is empty"):
        load_flocks(values)


# lsst-sqre/mobu tests/handlers/flock_test.py at 95fe256: two flocks PUT to /mobu/flocks (201).
MOBU_HANDLER_FLOCKS = [
    {
        "name": "test",
        "count": 1,
        "user_spec": {"username_prefix": "bot-mobu-testuser"},
        "scopes": ["exec:notebook"],
        "business": {"type": "EmptyLoop"},
    },
    {
        "name": "test",
        "count": 2,
        "users": [
            {"username": "bot-mobu-testuser", "uidnumber": 1000, "gidnumber": 1056, "groups": []},
            {"username": "bot-mobu-otheruser", "uidnumber": 60000},
        ],
        "scopes": ["exec:notebook"],
        "business": {"type": "EmptyLoop"},
    },
]


def test_mobus_handler_test_flocks():
    one, listed = (_one(f) for f in MOBU_HANDLER_FLOCKS)
    assert [u.username for u in one.monkeys()] == ["bot-mobu-testuser1"]
    assert [(u.username, u.uidnumber, u.effective_gid) for u in listed.monkeys()] == [
        ("bot-mobu-testuser", 1000, 1056),
        ("bot-mobu-otheruser", 60000, 60000),
    ]
    assert one.notices == listed.notices == []
