"""`/summary`'s ci_manager: the commit address a job shows, from the GitHub API's address."""

from __future__ import annotations

from library.queue.store import QueuedRun
from library.service.ci_manager import commit_url, web_url


def run(data: dict) -> QueuedRun:
    return QueuedRun(
        id=1, dedupe_key="k", event_id="e", event_type="github.push", rule="rule 1",
        project="p", step="s", presets=[], vars={}, data=data, lane="service",
        state="running", attempts=1, max_attempts=2, created=0.0,
    )  # fmt: skip


def test_github_web_address_from_its_api_address():
    assert web_url("https://api.github.com") == "https://github.com"
    assert web_url("https://api.github.com/") == "https://github.com"
    assert web_url("https://ghe.example.org/api/v3") == "https://ghe.example.org"


def test_commit_url_only_when_the_event_named_repository_and_commit():
    sha = "c" * 40
    git = {"repository": "org/repo", "git_sha": sha}
    assert commit_url(run(git), "https://github.com") == f"https://github.com/org/repo/commit/{sha}"
    assert commit_url(run({"repository": "org/repo"}), "https://github.com") is None
    assert commit_url(run({}), "https://github.com") is None
