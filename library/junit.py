"""The one JUnit XML writer: the root `junit.xml` of `ci/run`, `scale run`, `notebook ci`.

Built on xml.etree, never by pasting strings. XML 1.0 cannot carry most control characters
at all, not even escaped (a NUL, BEL or ESC in a flock name or an error message would make the
file unreadable to every CI server), so `clean()` shows each one as a visible `\\xNN` (or
`\\uNNNN`) before it reaches the tree: the file stays well-formed and the reader still sees
what was there.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Characters XML 1.0 forbids (tab, newline and carriage return are allowed), plus lone
# surrogates and the two non-characters, which no encoder writes.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MESSAGE_MAX_CHARS = 1000


def clean(text: object) -> str:
    """`text` as a string that XML 1.0 can hold: forbidden characters become `\\xNN`."""
    return _FORBIDDEN.sub(_visible, str(text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass
class Case:
    """One testcase; `failure` (a one-line message) marks it failed, `details` is its body."""

    classname: str
    name: str
    time_s: float = 0.0
    failure: str | None = None
    details: str | None = None

    def element(self) -> ET.Element:
        el = ET.Element(
            "testcase",
            classname=clean(self.classname),
            name=clean(self.name),
            time=f"{float(self.time_s or 0.0):.3f}",
        )
        if self.failure:
            fail = ET.SubElement(el, "failure", message=clean(self.failure[:MESSAGE_MAX_CHARS]))
            fail.text = clean(self.failure if self.details is None else self.details)
        return el


def suite(name: str, cases: Iterable[Case | ET.Element]) -> ET.Element:
    """A <testsuite> with its `tests` and `failures` counted from the cases it holds."""
    el = ET.Element("testsuite", name=clean(name))
    tests = failures = 0
    for case in cases:
        child = case.element() if isinstance(case, Case) else _cleaned(case)
        el.append(child)
        tests += 1
        failures += int(child.find("failure") is not None or child.find("error") is not None)
    el.set("tests", str(tests))
    el.set("failures", str(failures))
    return el


def to_string(*suites: ET.Element, wrap: bool = False) -> str:
    """The XML text of one suite, or of `<testsuites>` around them when `wrap` or several."""
    root = _root(suites, wrap)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write(path: str | Path, *suites: ET.Element, wrap: bool = False) -> Path:
    """Write the suites to `path` (UTF-8, with an XML declaration)."""
    path = Path(path)
    root = _root(suites, wrap)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def read_cases(path: str | Path) -> list[ET.Element]:
    """The <testcase> elements of a JUnit file another command left; [] if it is unreadable."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError):
        return []
    return list(tree.iter("testcase"))


def _root(suites: tuple[ET.Element, ...], wrap: bool) -> ET.Element:
    if len(suites) == 1 and not wrap:
        return suites[0]
    root = ET.Element("testsuites")
    root.extend(suites)
    return root


def _cleaned(element: ET.Element) -> ET.Element:
    """A testcase read from elsewhere, with every attribute and text made XML-safe."""
    for el in element.iter():
        for key, value in list(el.attrib.items()):
            el.set(key, clean(value))
        if el.text:
            el.text = clean(el.text)
        if el.tail:
            el.tail = clean(el.tail)
    return element
