"""Fixtures for every test: a clean artifact dir, and a history database of the session's own."""

import pytest


def pytest_configure(config):
    # Runs started by the tests must not append to a developer's run history.
    import os
    import tempfile

    os.environ.setdefault("BOSUN_HISTORY_DB", os.path.join(tempfile.mkdtemp(), "history.sqlite"))
    # ... nor queue runs in a developer's run queue.
    os.environ.setdefault("BOSUN_QUEUE_STORE", os.path.join(tempfile.mkdtemp(), "queue.sqlite"))


@pytest.fixture
def artifact_dir(tmp_path, monkeypatch):
    """A fresh ARTIFACT_DIR for the test, made current for library.env."""
    from library import env

    path = tmp_path / "artifacts"
    path.mkdir()
    monkeypatch.setenv("ARTIFACT_DIR", str(path))
    with env.using_artifact_dir(path):
        yield path
