"""rsp_checks steps: prepare (find the platform), test (the checks), cleanup (no lab left)."""

from __future__ import annotations

import logging
from pathlib import Path

from library import config, env, run

log = logging.getLogger(__name__)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _check_kind() -> None:
    kind = config.project.get_config("platform.kind")
    if kind != "sandbox":
        from library.errors import UserError

        raise UserError(
            f"platform.kind is {kind!r}: rsp_checks runs against the sandbox for now "
            "(use --preset sandbox)"
        )


def _platform():
    """The platform: the platform.* config keys, else the environment, else the sandbox."""
    from library import platform

    return platform.resolve(
        hub_url=config.project.get_config("platform.hub_url") or None,
        tap_url=config.project.get_config("platform.tap_url") or None,
        token_file=config.project.get_config("platform.token_file") or None,
    )


def _tap_url() -> str | None:
    """platform.tap_url, else $BOSUN_TAP_URL, else the sandbox's own TAP service."""
    return _platform().tap_url


def _notebook_services() -> list[str]:
    return [str(s) for s in config.project.get_config("tests.notebooks.services") or []]


def prepare():
    _check_kind()
    platform = _platform()
    # Fails with "start it with ./run_toolbox.py sandbox up" when no hub is known.
    hub_url = platform.require("hub_url", "platform.hub_url")
    tap_url = platform.tap_url
    notebooks_need_tap = (
        config.project.get_config("tests.notebooks.enabled") and "tap" in _notebook_services()
    )
    if notebooks_need_tap and not tap_url:
        from library.errors import UserError

        raise UserError(
            "tests.notebooks.services lists tap but no TAP URL is known: set "
            "platform.tap_url or $BOSUN_TAP_URL, start the sandbox with its TAP service, "
            "or drop tap from the services"
        )
    (env.artifact_dir() / "platform.txt").write_text(f"hub {hub_url}\ntap {tap_url}\n")


def _lab_checks() -> None:
    run.run_toolbox_from_config("nublado", "spawn_lab")
    run.run_toolbox_from_config("nublado", "python_loop")
    if config.project.get_config("tests.notebooks.enabled"):
        source = config.project.get_config("tests.notebooks.source") or str(NOTEBOOKS)
        parameters = []
        if "tap" in _notebook_services():
            parameters.append(f"tap_url={_tap_url()}")
        # Runs the notebooks in the lab spawned above, then deletes that lab.
        run.run_toolbox_from_config(
            "notebook", "run_repo", extra={"source": source, "parameters": parameters}
        )


def test():
    extra = {}
    if config.project.get_config("tests.tap.enabled"):
        from library import sandbox

        own = sandbox.platform()
        if (own is None or own.tap_url is None) and _tap_url():
            # The sandbox runs without TAP, the TAP service is elsewhere: the TAP notebook
            # checks it from the lab instead of the sandbox's own row count.
            log.info("the sandbox has no TAP service of its own: its TAP count is skipped")
            extra["tap"] = False
    run.run_toolbox_from_config("sandbox", "check", extra=extra)
    if config.project.get_config("tests.tap.enabled") and _tap_url():
        run.run_toolbox_from_config("tap", "run_query_set")

    if not config.project.get_config("tests.labs.enabled"):
        return
    try:
        _lab_checks()
    except BaseException:
        # A failed check must not leave the lab running; the check's own error is the one
        # to report, a failing delete is recorded in its artifact dir (and cleanup retries).
        try:
            run.run_toolbox_from_config("nublado", "delete_lab")
        except Exception as exc:  # noqa: BLE001
            log.error("deleting the lab after the failure failed too: %s", exc)
        raise
    run.run_toolbox_from_config("nublado", "delete_lab")


def cleanup():
    # The bot user stays (the next run reuses it), its lab does not; the sandbox is stopped by
    # whoever started it (`make demo`, the test fixture, a developer).
    if not config.project.get_config("tests.labs.enabled"):
        return
    if config.project.get_config("platform.kind") != "sandbox":
        log.info("platform.kind is not set: no platform to clean up")
        return
    run.run_toolbox_from_config("nublado", "delete_lab")
