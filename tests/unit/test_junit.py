"""library/junit.py: every JUnit file bosun writes stays well-formed, whatever a name holds.

XML 1.0 cannot hold NUL, BEL or ESC even escaped; before the one writer, a flock name or an error
message with one of them made `junit.xml` unreadable (scale run, notebook ci, ci/run's root).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from library import junit

HOSTILE = "bad\x00name\x07with\x1b[31mcontrol\ufffe"


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode())  # raises ParseError when not well-formed


def test_clean_keeps_what_xml_allows_and_shows_the_rest():
    assert junit.clean("tab\tnew\nline é ✓") == "tab\tnew\nline é ✓"
    assert junit.clean("a\x00b\x07c\x1bd") == "a\\x00b\\x07c\\x1bd"


def test_a_suite_with_control_characters_is_well_formed():
    cases = [
        junit.Case("x.y", HOSTILE, 1.5, failure=f"boom {HOSTILE}", details=f"trace\x00{HOSTILE}"),
        junit.Case("x.y", "fine", 0.1),
    ]
    root = _parse(junit.to_string(junit.suite(HOSTILE, cases)))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    case = root.find("testcase")
    assert case.get("name") == "bad\\x00name\\x07with\\x1b[31mcontrol\\ufffe"
    assert "\\x1b" in case.find("failure").get("message")


def test_scale_run_junit_with_a_hostile_flock_name():
    from library.flock.summary import junit_xml

    summary = {
        "duration_s": 2.0,
        "flocks": {
            HOSTILE: {"successes": 0, "failures": 3, "success_pct": 0.0},
            "ok": {"successes": 5, "failures": 0, "success_pct": 100.0},
        },
    }
    root = _parse(junit_xml(summary, 95.0))
    assert root.get("tests") == "2" and root.get("failures") == "1"
    assert root.find("testcase/failure").get("message").startswith("0.00% success")


def test_notebook_ci_junit_with_control_characters(tmp_path):
    # The shape `notebook ci` writes (library/notebooks/runs.py): a wrapped notebook_ci suite.
    path = tmp_path / "junit.xml"
    junit.write(
        path,
        junit.suite("notebook_ci", [junit.Case("notebook_ci.run", HOSTILE, 1.0, HOSTILE)]),
        wrap=True,
    )
    root = _parse(path.read_text())
    assert root.tag == "testsuites"
    assert root.find("testsuite").get("failures") == "1"


@pytest.mark.parametrize("fragment_ok", [True, False], ids=["fragment", "broken fragment"])
def test_ci_root_junit_with_control_characters(tmp_path, fragment_ok):
    from library import ci

    step = tmp_path / "001__test"
    step.mkdir()
    fragment = step / "junit.xml"
    if fragment_ok:
        junit.write(fragment, junit.suite("scale", [junit.Case("scale.run", HOSTILE, 1, "x\x07")]))
    else:
        fragment.write_text("<testsuite><testcase name='a\x00'/>")
    results = [ci.StepResult("test", step, "failure", 2.0, f"failed: {HOSTILE}")]
    ci.write_junit(tmp_path, "proj", results)
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("tests") == ("2" if fragment_ok else "1")
    assert root.get("failures") == root.get("tests")
    assert "\\x00" in root.find("testcase/failure").get("message")
