"""Parameter sweeps: run a step once per combination of the values of the swept keys.

A project config lists dotted keys under ``sweep:``; each of those keys holds a list of
values. ``run_sweep(step_fn)`` runs ``step_fn`` once per combination (cartesian product, in
the order the keys are listed), each inside its own ``NNN__sweep__k=v__...`` artifact dir with
the values applied through ``config.project.set_config`` and written to ``settings.yaml``. A
combination ends with ``exit_code`` and ``FINISHED`` in its dir; one that already finished green
anywhere under the run's ``ARTIFACT_DIR`` is skipped, so re-running ``ci/run`` with the same
``ARTIFACT_DIR`` resumes a sweep. The config is restored afterwards.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from library import artifacts, config, env, redact, yamlio
from library.errors import CheckFailed, ConfigError, UserError

log = logging.getLogger(__name__)

SWEEP_KEY = "sweep"
SETTINGS_FILE = artifacts.SWEEP_SETTINGS


def sweep_keys(cfg: config.ProjectConfig) -> list[str]:
    """The swept keys of ``cfg`` (``[]`` when it sweeps nothing); bad entries are a UserError."""
    keys = cfg.get_config(SWEEP_KEY, None)
    if keys is None or keys == []:
        return []
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{SWEEP_KEY}: expected a list of dotted config keys, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{SWEEP_KEY}: a key is listed twice in {keys}")
    for key in keys:
        value = cfg.get_config(key)  # an unknown key is an error naming the nearest one
        if not isinstance(value, list) or not value:
            raise ConfigError(
                f"{SWEEP_KEY}: {key} is swept, so it must hold a non-empty list of values "
                f"(it holds {value!r}); e.g. --var '{key}: [{value!r}]'"
            )
    return keys


def combinations(cfg: config.ProjectConfig) -> list[dict[str, Any]]:
    """Every combination of the swept values, as ``{key: value}`` in the order listed."""
    keys = sweep_keys(cfg)
    if not keys:
        return []
    values = [cfg.get_config(k) for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def dir_name(settings: dict[str, Any]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={_text(v)}" for k, v in settings.items()]
    return env.safe_name("sweep__" + "__".join(parts))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _search_root() -> Path:
    """Where finished combinations are looked for: the run's ARTIFACT_DIR, else the current dir."""
    here = env.artifact_dir()
    base = os.environ.get("ARTIFACT_DIR")
    if base:
        base_path = Path(base).absolute()
        if here == base_path or here.is_relative_to(base_path):
            return base_path
    return here


def finished_green(root: Path) -> dict[str, Path]:
    """Sweep dirs under ``root`` that finished with exit code 0, keyed by their settings."""
    found: dict[str, Path] = {}
    for settings_file in sorted(root.rglob(SETTINGS_FILE)):
        here = settings_file.parent
        try:
            green = (here / artifacts.FINISHED).exists() and (
                (here / artifacts.EXIT_CODE).read_text().strip() == "0"
            )
            settings = yamlio.load_file(settings_file) if green else None
        except Exception:  # noqa: BLE001 - an unreadable dir is not a finished one
            continue
        if isinstance(settings, dict):
            found[_identity(settings)] = here
    return found


def _identity(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def run_sweep(step_fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``step_fn`` once per combination; raise CheckFailed naming the failed ones at the end.

    Returns ``{"ran": [...], "skipped": [...], "failed": [...]}`` (dir names).
    """
    cfg = config.project
    combos = combinations(cfg)
    if not combos:
        step_fn()
        return {"ran": [], "skipped": [], "failed": []}
    originals = {k: cfg.get_config(k) for k in combos[0]}
    done = finished_green(_search_root())
    outcome: dict[str, list[str]] = {"ran": [], "skipped": [], "failed": []}
    log.info("sweep: %d combination(s) of %s", len(combos), ", ".join(originals))
    try:
        for settings in combos:
            name = dir_name(settings)
            previous = done.get(_identity(settings))
            if previous is not None:
                log.info("sweep: %s already passed in %s; skipped", name, previous)
                outcome["skipped"].append(str(previous))
                continue
            for key, value in settings.items():
                cfg.set_config(key, value, source=f"sweep:{name}")
            with env.NextArtifactDir(name) as here:
                yamlio.dump_file(settings, here / SETTINGS_FILE)
                log.info("sweep: %s in %s", name, here)
                code = 0
                try:
                    step_fn()
                except Exception as err:  # noqa: BLE001 - one failed combination, try the rest
                    code = err.exit_code if isinstance(err, UserError) else 1
                    (here / artifacts.FAILURE).write_text(
                        redact.redact_text(
                            f"sweep {name} failed: {err}\n\n{traceback.format_exc()}"
                        )
                    )
                    log.error("sweep: %s failed: %s", name, redact.redact_text(str(err)))
                    outcome["failed"].append(here.name)
                except BaseException:
                    # Interrupted: not finished, so a rerun runs this combination again.
                    (here / artifacts.EXIT_CODE).write_text("130\n")
                    raise
                else:
                    outcome["ran"].append(here.name)
                (here / artifacts.EXIT_CODE).write_text(f"{code}\n")
                (here / artifacts.FINISHED).write_text(
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds") + "\n"
                )
    finally:
        for key, value in originals.items():
            cfg.set_config(key, value, source="sweep:restore")
    if outcome["failed"]:
        raise CheckFailed(
            f"sweep: {len(outcome['failed'])} of {len(combos)} combination(s) "
            f"failed: {', '.join(outcome['failed'])} (see their FAILURE files)"
        )
    return outcome
