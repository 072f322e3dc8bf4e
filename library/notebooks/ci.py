"""Notebooks must run green before merge: the changed ones run, all must be clean, JUnit out."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path


def changed_notebooks(repo: Path, base_ref: str, head_ref: str = "HEAD") -> list[str]:
    """Notebooks added or modified since the merge base of BASE_REF and HEAD_REF (repo-relative).

    Deleted notebooks are left out: there is nothing to run.
    """
    from library.errors import UserError

    proc = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "diff",
            "--name-only",
            "--diff-filter=ACMR",
            f"{base_ref}...{head_ref}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["git diff failed"])[-1]
        raise UserError(f"--base-ref {base_ref}: cannot diff {repo} against it: {last}")
    return [n for n in proc.stdout.splitlines() if n.endswith(".ipynb")]


def junit(suite_name: str, cases: list[dict]) -> str:
    """JUnit XML with one testcase per dict {name, classname, time, failure?, details?}."""
    suite = ET.Element(
        "testsuite",
        name=suite_name,
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c.get("failure"))),
    )
    for case in cases:
        el = ET.SubElement(
            suite,
            "testcase",
            name=case["name"],
            classname=case["classname"],
            time=f"{case.get('time', 0.0):.3f}",
        )
        if case.get("failure"):
            fail = ET.SubElement(el, "failure", message=case["failure"][:500])
            fail.text = case.get("details", "")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
