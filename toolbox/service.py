"""The standing service: flocks that run until stopped, managed over mobu's REST API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Literal

from library import env, yamlio
from library.cli import load_config_from_cli
from library.errors import UserError
from library.flock.models import find_flock_list, load_flocks, parse_flocks
from library.service.auth import load_entries
from library.service.client import ServiceClient, read_token, save_report
from library.service.server import serve
from library.service.settings import ServiceSettings, parse_settings
from library.toolbox import command
from library.triggers import rules as rules_mod
from library.triggers.github import read_secret

log = logging.getLogger(__name__)


@command
def run(
    project: str | None = None,
    config: Path | None = None,
    preset: list[str] | None = None,
    var: list[str] | None = None,
    listen: str | None = None,
    prefix: str | None = None,
    autostart: list[Path] | None = None,
    auth_file: Path | None = None,
    state_dir: Path | None = None,
    rules: Path | None = None,
    github_secret_file: Path | None = None,
) -> dict:
    """Run the service in the foreground until SIGTERM or SIGINT.

    mobu's API (list, create, replace, refresh and delete flocks, monkeys and their logs,
    summaries, solitary runs) plus pause and resume, under the prefix, with OpenAPI docs at
    PREFIX/docs and PREFIX/redoc. The ``service:`` section of the project config holds the
    settings (docs/service.md); the flags override it. Flocks created over the API, and which
    flocks are paused, are kept in the state dir and come back after a restart; events are
    written under the events dir at least every ``flush_interval`` (10 s). The first signal
    stops every flock (labs deleted), a second one stops at once.

    Args:
        project: Project whose config has the ``service:`` section (projects/NAME/testing).
        config: A config file, instead of --project.
        preset: Preset to apply (repeatable, in order).
        var: Override 'key: value' (repeatable, applied after presets).
        listen: HOST:PORT to listen on (service.listen; 127.0.0.1:8080).
        prefix: URL path of the API (service.prefix; /mobu, as mobu's).
        autostart: Flock file started at boot, as ``scale run`` reads it (repeatable; replaces
            service.autostart).
        auth_file: YAML list of {name, token_sha256, scopes} (service.auth_file); without one
            every change is refused.
        state_dir: Where API flocks and events are kept (service.state_dir; .service).
        rules: Trigger rule file: events and webhooks queue the runs it names
            (service.triggers.rules; docs/triggers.md).
        github_secret_file: File holding the GitHub webhook secret; POST PREFIX/github/webhook
            checks each delivery's signature with it (service.triggers.github.secret_file).
    """
    settings = _settings(project, config, preset or [], var or [])
    updates: dict = {}
    if listen is not None:
        updates["listen"] = listen
    if prefix is not None:
        updates["prefix"] = prefix
    if auth_file is not None:
        updates["auth_file"] = auth_file
    if state_dir is not None:
        updates["state_dir"] = state_dir
    if autostart:
        updates["autostart"] = [str(p) for p in autostart]
    if rules is not None or github_secret_file is not None:
        triggers = settings.triggers.model_dump(exclude_unset=True)
        if rules is not None:
            triggers["rules"] = rules
        if github_secret_file is not None:
            triggers["github"] = {**triggers.get("github", {}), "secret_file": github_secret_file}
        updates["triggers"] = triggers
    if updates:
        merged = settings.model_dump(exclude_unset=True)
        merged.update(updates)
        settings = parse_settings(merged, "service (with flags)")
    if settings.auth_file is not None:
        load_entries(settings.auth_file)  # a bad file is refused before anything starts
    if settings.triggers.rules is not None:
        rules_mod.load(settings.triggers.rules)  # so is a bad rule file
    if settings.triggers.github.secret_file is not None:
        read_secret(settings.triggers.github.secret_file)  # and a missing secret
    flocks = _autostart(settings.autostart, load_flocks)
    result = serve(settings, flocks)
    return {
        "url": result.url,
        "stop_reason": result.stop_reason,
        "flocks_at_exit": result.flocks_at_exit,
    }


def _settings(project, config, presets, variables):
    if project is None and config is None:
        return ServiceSettings()

    cfg = load_config_from_cli(project, config, presets, variables)
    section = cfg.resolved().get("service")
    source = f"{cfg.path or project}: service"
    settings = parse_settings(section, source)
    return settings.with_base(cfg.path.parent) if cfg.path is not None else settings


def _autostart(items, load_flocks):
    flocks = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            flocks.extend(load_flocks(item))
        else:
            flocks.extend(parse_flocks([item], f"service.autostart[{index}]"))
    names = [f.name for f in flocks]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"service.autostart: flock {name!r} is given twice")
    return flocks


def _client(url: str | None, token_file: Path | None):
    return ServiceClient(url, read_token(token_file))


def _print(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


@command(record=False)
def flocks(url: str | None = None, token_file: Path | None = None) -> dict:
    """List the flocks of a running service, with their summaries.

    Args:
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    summary = _client(url, token_file).summary()
    _print(summary["flocks"])
    return {"flocks": [f["name"] for f in summary["flocks"]]}


@command
def start(flocks: Path, url: str | None = None, token_file: Path | None = None) -> dict:
    """Start (or replace) the flocks of a flock file on a running service.

    Each flock is validated here first, as ``scale run`` reads the file, then PUT to the
    service, which replaces a flock of the same name.

    Args:
        flocks: Flock YAML file (a list, an ``autostart:`` list, or one flock).
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    load_flocks(flocks)  # refused here, naming the file, before anything is sent
    items, _ = find_flock_list(yamlio.loads(yamlio.read_text(flocks, "flock file"), str(flocks)))
    client = _client(url, token_file)
    started = []
    for item in items:
        data = client.start(item)
        started.append(data["name"])
        if client.last_notice:
            log.warning("flock %s: %s", data["name"], client.last_notice)
        log.info("started flock %s (%d monkeys)", data["name"], len(data["monkeys"]))
    return {"started": started}


@command
def stop(name: str, /, url: str | None = None, token_file: Path | None = None) -> dict:
    """Stop a flock of a running service (its monkeys stopped, their labs deleted).

    Args:
        name: Flock name.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    _client(url, token_file).stop(name)
    log.info("stopped flock %s", name)
    return {"stopped": name}


@command
def pause(
    name: str,
    /,
    labs: Literal["release", "keep"] | None = None,
    url: str | None = None,
    token_file: Path | None = None,
) -> dict:
    """Pause a flock of a running service: its monkeys idle until resumed.

    Args:
        name: Flock name.
        labs: Delete the monkeys' labs (release) or keep them (keep); the service's
            pause_labs when omitted.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    summary = _client(url, token_file).pause(name, labs)
    log.info("paused flock %s", name)
    return summary


@command
def resume(name: str, /, url: str | None = None, token_file: Path | None = None) -> dict:
    """Resume a paused flock of a running service.

    Args:
        name: Flock name.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    summary = _client(url, token_file).resume(name)
    log.info("resumed flock %s", name)
    return summary


@command
def refresh(name: str, /, url: str | None = None, token_file: Path | None = None) -> dict:
    """Signal a flock to refresh: notebook runners re-read their repository.

    Args:
        name: Flock name.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    _client(url, token_file).refresh(name)
    return {"refreshed": name}


@command(record=False)
def summary(
    name: str | None = None, url: str | None = None, token_file: Path | None = None
) -> dict:
    """Print the summary of a running service (every flock), or of one flock.

    Args:
        name: Flock name; every flock when omitted.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    data = _client(url, token_file).summary(name)
    _print(data)
    return data


@command
def report(name: str, /, url: str | None = None, token_file: Path | None = None) -> dict:
    """Save a flock's JSON and its monkeys' logs and stats into the artifact dir.

    As mobu's ``monkeyflocker report``: ``flock.json``, ``flock_summary.json``, and per monkey
    ``USER_log.txt`` and ``USER_stats.json``.

    Args:
        name: Flock name.
        url: The service's URL with its prefix ($BOSUN_SERVICE_URL; http://127.0.0.1:8080/mobu).
        token_file: File holding a bearer token for the service.
    """
    return save_report(_client(url, token_file), name, env.artifact_dir())
