"""Steps of the example project: prepare, test, cleanup (ci/run example ci)."""

import shlex

from library import config, run


def prepare():
    """Say what is about to happen (a toolbox call with arguments from the template)."""
    run.run_toolbox_from_config("shell", "run", prefix="prepare")


def _greet(name: str) -> None:
    greeting = config.project.get_config("tests.example.greeting")
    pause = float(config.project.get_config("tests.example.pause"))
    command = f"sleep {pause} && echo {shlex.quote(f'{greeting}, {name}')}"
    if name == config.project.get_config("tests.example.fail_on"):
        command += " && exit 3"
    run.run_toolbox_from_config("shell", "run", suffix="greet", extra={"cmd": command})


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
    run.run_toolbox_from_config("shell", "run", suffix="cleanup")
