"""rsp_checks steps: prepare (find the platform), test (the checks), cleanup."""

from library import config, env, run


def prepare():
    kind = config.project.get_config("platform.kind")
    if kind != "sandbox":
        from library.errors import UserError

        raise UserError(
            f"platform.kind is {kind!r}: rsp_checks runs against the sandbox for now "
            "(use --preset sandbox)"
        )
    # Fails with "start it with ./run_toolbox.py sandbox up" when the sandbox is down.
    from library import sandbox

    ep = sandbox.endpoints()
    (env.artifact_dir() / "platform.txt").write_text(f"hub {ep.hub_url}\ntap {ep.tap_url}\n")


def test():
    run.run_toolbox_from_config("sandbox", "check")


def cleanup():
    # Nothing to undo: the next run reuses the bot user, and the sandbox is stopped by
    # whoever started it (`make demo`, the test fixture, a developer).
    pass
