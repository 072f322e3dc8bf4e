"""Steps of the example project: prepare, test, cleanup (ci/run example ci)."""

from library import config, run


def prepare():
    """Say what is about to happen (a toolbox call with arguments from the template)."""
    run.run_toolbox_from_config("shell", "run_argv", prefix="prepare")


def _greet(name: str) -> None:
    # Values reach the program as arguments, never as shell text: a greeting holding
    # `$(...)` or a quote is printed, not run.
    greeting = config.project.get_config("tests.example.greeting")
    pause = float(config.project.get_config("tests.example.pause"))
    fail = name == config.project.get_config("tests.example.fail_on")
    script = 'sleep "$1" && echo "$2"' + (" && exit 3" if fail else "")
    argv = ["sh", "-c", script, "greet", str(pause), f"{greeting}, {name}"]
    run.run_toolbox_from_config("shell", "run_argv", suffix="greet", extra={"argv": argv})


def test():
    """Greet every name, in a Parallel block unless the `sequential` preset says otherwise."""
    names = config.project.get_config("tests.example.names")
    if not config.project.get_config("tests.example.parallel"):
        for name in names:
            _greet(name)
        return
    with run.Parallel("greetings") as parallel:
        for name in names:
            parallel.delayed(_greet, name)


def cleanup():
    run.run_toolbox_from_config("shell", "run_argv", suffix="cleanup")
