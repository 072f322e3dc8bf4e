"""A run's artifact dir as the web page shows it (library/service/web/rundir.py): files served
only from inside the dir, steps and JUnit cases read from what ci/run leaves."""

from __future__ import annotations

import json

import pytest

from library.service.web.rundir import OutsideRun, confined, describe


def make_run(root):
    step = root / "000__test" / "000__shell__run"
    step.mkdir(parents=True)
    (step / "result.json").write_text(
        json.dumps({"group": "shell", "command": "run", "status": "success", "duration_s": 0.5})
    )
    (step / "log.txt").write_text("hello\n")
    (root / "junit.xml").write_text(
        '<testsuite><testcase classname="p" name="ok" time="0.1"/>'
        '<testcase classname="p" name="bad" time="0.2"><failure message="boom"/></testcase>'
        "</testsuite>"
    )
    (root / "report").mkdir()
    (root / "report" / "index.html").write_text("<html></html>")
    return root


def test_files_stay_inside_the_run(tmp_path):
    root = make_run(tmp_path / "run")
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    assert confined(root, "000__test/000__shell__run/log.txt").read_text() == "hello\n"
    for bad in ("../secret", "link", "000__test", "/etc/passwd", "nothing"):
        with pytest.raises(OutsideRun):
            confined(root, bad)


def test_describe_lists_steps_cases_files_and_report(tmp_path):
    root = make_run(tmp_path / "run")
    detail = describe({"id": 1, "artifact_dir": str(root)})
    (step,) = detail["steps"]
    assert step["name"] == "shell run" and step["status"] == "success"
    assert step["log"] == "000__test/000__shell__run/log.txt"
    assert [(c["name"], c["outcome"], c["message"]) for c in detail["cases"]] == [
        ("ok", "passed", None),
        ("bad", "failed", "boom"),
    ]
    assert detail["report"] == "report/index.html"
    assert "junit.xml" in [f["path"] for f in detail["files"]]
    assert describe({"id": 2, "artifact_dir": None})["steps"] == []
