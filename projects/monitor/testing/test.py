"""monitor steps: the checks a CI job makes of a running service (the service itself runs with
`./run_toolbox.py service run --project monitor`)."""

from library import config, run


def prepare():
    pass


def test():
    """Save every flock's report; fail when a flock is below its success bar."""
    from library.errors import CheckFailed
    from library.service.client import ServiceClient, read_token

    url = config.project.get_config("service_url")
    token_file = config.project.get_config("token_file")
    floor = float(config.project.get_config("min_success_pct"))
    client = ServiceClient(url, read_token(token_file))
    failing = []
    for flock in client.summary()["flocks"]:
        extra = {"url": url, "token_file": token_file}
        run.run_toolbox(
            "service", "report", artifact_dir_suffix=flock["name"], name=flock["name"], **extra
        )
        total = flock["success_count"] + flock["failure_count"]
        if flock.get("paused") or not total:
            continue
        pct = 100.0 * flock["success_count"] / total
        if pct < floor:
            failing.append(f"{flock['name']}: {pct:.2f}% success (below {floor:g}%)")
    if failing:
        raise CheckFailed("monitor: " + "; ".join(failing))


def cleanup():
    pass
