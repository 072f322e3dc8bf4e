"""A flock file as it would run, without running it (`scale check`).

For each flock: its users (as mobu generates them), the scopes of their tokens, every business
option with its default filled in, what one execution talks to, whether bosun can run it here,
and the notices of what bosun reads differently from mobu. Nothing is contacted: endpoints come
from the arguments or the environment, else they are named as what a run would resolve.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from library import yamlio
from library.errors import UserError
from library.flock import businesses
from library.flock import options as o
from library.flock.models import FlockConfig, User, parse_flocks
from library.sia import params as sia_params
from library.tap import query_set

SHOWN_USERS = 10  # beyond this, the first and last few stand for the rest


def check_file(
    path: str | Path, endpoints: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """The effective flocks of the file at PATH; UserError on the first invalid flock."""
    path = Path(path)
    data = yamlio.loads(yamlio.read_text(path, "flock file"), str(path))
    flocks = parse_flocks(data, str(path))
    return [effective(flock, endpoints or {}) for flock in flocks]


def _user(user: User) -> dict[str, Any]:
    out: dict[str, Any] = {"username": user.username}
    if user.uidnumber is not None:
        out["uidnumber"] = user.uidnumber
    if user.effective_gid is not None:
        out["gidnumber"] = user.effective_gid
    if user.groups:
        out["groups"] = [{"name": g.name, "id": g.id} for g in user.groups]
    return out


def _users(flock: FlockConfig) -> list[Any]:
    users = flock.monkeys()
    if len(users) <= SHOWN_USERS:
        return [_user(u) for u in users]
    head, tail = users[:3], users[-2:]
    middle = f"... {len(users) - 5} more, {users[3].username} to {users[-3].username} ..."
    return [*(_user(u) for u in head), middle, *(_user(u) for u in tail)]


def _env(name: str, given: str | None) -> str | None:
    return given or os.environ.get(name) or None


def _discovery(endpoints: dict[str, str | None]) -> str:
    url = _env("BOSUN_DISCOVERY_URL", endpoints.get("discovery_url"))
    return url or "the sandbox's discovery document"


def _data_service(service: str, dataset: str, endpoints: dict[str, str | None]) -> str:
    """A URL the user gave for the service wins; else discovery picks it by dataset."""
    given = _env(f"BOSUN_{service.upper()}_URL", endpoints.get(f"{service}_url"))
    if given:
        return given
    return f"{service} of dataset {dataset!r} from service discovery ({_discovery(endpoints)})"


def _sia_set(name: str) -> dict[str, Any]:
    try:
        return {"name": name, "directory": str(sia_params.resolve(name).parent)}
    except UserError as exc:
        return {"name": name, "error": str(exc)}


def _query_set(name: str) -> dict[str, Any]:
    try:
        return {"name": name, "directory": str(query_set.resolve(name))}
    except UserError as exc:
        return {"name": name, "error": str(exc)}


def endpoint(flock: FlockConfig, endpoints: dict[str, str | None]) -> dict[str, Any]:
    """What one execution of the flock's business talks to, as far as it is known offline."""
    entry = businesses.REGISTRY[flock.business.type]
    opts = flock.business.parsed_options
    kind = entry.endpoint
    if kind == "hub" and isinstance(opts, o.NubladoOptions):
        hub = _env("BOSUN_HUB_URL", endpoints.get("hub_url"))
        out: dict[str, Any] = {
            "hub": hub or "the running sandbox's hub (resolved when the run starts)",
            "spawn_form": opts.image.to_spawn_form(),
        }
        if isinstance(opts, o.NotebookRunnerOptions) and opts.notebooks_dir:
            out["notebooks"] = opts.notebooks_dir
        elif isinstance(opts, o.NotebookRunnerOptions):
            out["notebooks"] = f"{opts.repo_url} at {opts.repo_ref} (then its mobu.yaml rules)"
        return out
    if kind == "tap" and isinstance(opts, o.TAPOptions):
        out = {
            "tap": _data_service("tap", opts.dataset, endpoints),
            "mode": "sync" if opts.sync else "async",
        }
        if isinstance(opts, o.TAPQuerySetRunnerOptions):
            out["query_set"] = _query_set(opts.query_set)
        elif isinstance(opts, o.TAPQueryRunnerOptions):
            out["queries"] = len(opts.queries)
        return out
    if kind == "sia" and isinstance(opts, o.SIAQuerySetRunnerOptions):
        return {
            "sia": _data_service("sia", opts.dataset, endpoints),
            "query_set": _sia_set(opts.query_set),
        }
    if kind == "git-lfs" and isinstance(opts, o.GitLFSOptions):
        return {"lfs_read": opts.lfs_read_url, "lfs_write": opts.lfs_write_url}
    if kind == "muster":
        return {"muster": f"Muster from service discovery ({_discovery(endpoints)})"}
    if kind == "url" and isinstance(opts, o.HTTPLoopOptions):
        return {"url": f"{opts.method} {opts.url}"}
    return {"none": "the business makes no requests"}


def effective(flock: FlockConfig, endpoints: dict[str, str | None]) -> dict[str, Any]:
    """One flock as it would run: plain data for YAML."""
    options = flock.business.parsed_options.model_dump(mode="json")
    out: dict[str, Any] = {
        "name": flock.name,
        "count": flock.count,
        "business": flock.business.type,
        "restart": flock.business.restart,
        "runs_here": businesses.runnable(flock.business.type) is None,
        "users": _users(flock),
        "token_scopes": list(flock.scopes),
    }
    if flock.start_batch_size:
        out["start"] = {
            "batch_size": flock.start_batch_size,
            "batch_wait_s": flock.start_batch_wait,
        }
    out["options"] = options
    out["endpoint"] = endpoint(flock, endpoints)
    needs = businesses.runnable(flock.business.type)
    missing_set = out["endpoint"].get("query_set", {})
    if not needs and isinstance(missing_set, dict) and "error" in missing_set:
        needs = f"its query set: {missing_set['error']}"
    if needs:
        out["runs_here"] = False
        out["needs"] = needs
    if flock.notices:
        out["notices"] = flock.notices
    return out
