"""`notebook run_repo --list`: what would run and which rule skipped each other notebook."""

from __future__ import annotations

import json

from tests.helpers import REPO, run_cli


def _nb(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_list_names_the_rule_that_skipped_each_notebook_and_runs_nothing(tmp_path):
    repo = tmp_path / "repo"
    for rel in ("a_first.ipynb", "butler_x.ipynb", "drafts/wip.ipynb", "sub/b.ipynb"):
        _nb(repo / rel)
    # A notebook that would fail if it ran: --list must not run it.
    (repo / "a_first.ipynb").write_text(
        json.dumps(
            {
                "cells": [{"cell_type": "code", "source": "1/0", "metadata": {}, "outputs": []}],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    (repo / "mobu.yaml").write_text(
        "collection_rules:\n  - type: exclude_union_of\n    patterns: ['sub/**']\n"
    )
    args = ["notebook", "run_repo", str(repo), "--list", "--exclude-dir", "drafts"]
    env = {"ARTIFACT_DIR": str(tmp_path / "art")}
    plain = run_cli(REPO / "run_toolbox.py", *args, "--services", "nublado", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == [
        "run   a_first.ipynb",
        "run   butler_x.ipynb",  # no metadata, and the name convention is off by default
        "skip  drafts/wip.ipynb: exclude_dirs (options): matches 'drafts/**'",
        "skip  sub/b.ipynb: collection_rules[0] exclude_union_of (mobu.yaml): matches 'sub/**'",
        "rule  collection_rules[0] exclude_union_of (mobu.yaml): sub/**",
        "rule  exclude_dirs (options): drafts/**",
        "2 to run, 2 skipped",
    ]
    named = run_cli(
        REPO / "run_toolbox.py", *args, "--services", "nublado", "--name-convention", env=env
    )
    assert (
        "skip  butler_x.ipynb: file-name convention (SQR-080, turned on by the caller): "
        "needs butler, not deployed"
    ) in named.stdout.splitlines()
    assert not list((tmp_path / "art").rglob("notebooks.json"))  # nothing ran
