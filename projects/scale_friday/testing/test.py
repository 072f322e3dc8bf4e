"""scale_friday steps: prepare (find the platform), test (the campaign's flocks together)."""

from library import config, run


def _platform() -> dict:
    if config.project.get_config("platform.kind") != "sandbox":
        return {}
    from library import platform

    resolved = platform.resolve()
    # Fails with "start the sandbox with ./run_toolbox.py sandbox up" when no hub is known.
    hub_url = resolved.require("hub_url")
    return {"hub_api_url": hub_url.rstrip("/") + "/hub/api", "tap_url": resolved.tap_url}


def prepare():
    from library import env

    platform = _platform()
    lines = [f"{k} {v}" for k, v in platform.items()] or ["endpoints from the environment"]
    (env.artifact_dir() / "platform.txt").write_text("\n".join(lines) + "\n")


def _run_flock(name: str, platform: dict) -> None:
    extra = {}
    if name == "http":
        url = config.project.get_config("tests.scale.flocks.http.url")
        url = url or platform.get("hub_api_url")
        if url:
            options = list(config.project.get_config("tests.scale.flocks.http.options") or [])
            extra["option"] = [*options, f"url={url}"]
    run.run_toolbox_from_config("scale", "run", suffix=name, extra=extra)


def test():
    from library.errors import UserError

    campaign = config.project.get_config("tests.scale.campaign")
    known = config.project.get_config("tests.scale.flocks")
    unknown = [name for name in campaign if name not in known]
    if unknown:
        raise UserError(
            f"tests.scale.campaign: unknown flock {unknown[0]!r} (known: {', '.join(known)})"
        )
    platform = _platform()
    # exit_on_exception=False: a failing flock must not hide the figures of the others; the
    # failures are still raised below, after every flock ran.
    parallel = run.Parallel("scale_campaign", exit_on_exception=False)
    with parallel:
        for name in campaign:
            parallel.delayed(_run_flock, name, platform)
    if parallel.failures:
        raise UserError(
            "scale campaign: " + "; ".join(f"{task}: {err}" for task, err in parallel.failures)
        )


def cleanup():
    # Each `scale run` deletes its own labs when it stops; nothing is left to undo.
    pass
