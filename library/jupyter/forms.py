"""What the hub's HTML pages say: the spawn form's fields, and the message of an error page."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class _PageParser(HTMLParser):
    """Collects the first POST form (action, field names, offered values) and error texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form_action: str | None = None
        self.fields: dict[str, list[str]] = {}
        self._in_form = False
        self._form_done = False
        self._select: str | None = None
        # Error texts: the spawn form's error line, or the error page's heading and paragraph.
        self.spawn_errors: list[str] = []
        self.error_texts: list[tuple[str, str]] = []
        # spawn_errors or error_texts while a capture is open
        self._capture: list[Any] | None = None
        self._capture_tag = ""
        self._error_depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "div" and "error" in classes:
            self._error_depth = 1
        elif tag == "div" and self._error_depth:
            self._error_depth += 1
        if "spawn-error-msg" in classes:
            self._start_capture(tag, self.spawn_errors)
        elif self._error_depth and tag in ("h1", "p"):
            self._start_capture(tag, self.error_texts)
        if tag == "form" and not self._form_done and a.get("method", "").lower() == "post":
            self._in_form = True
            self.form_action = a.get("action", "")
            return
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            values = self.fields.setdefault(name, [])
            if a.get("type", "text").lower() in ("radio", "checkbox") and a.get("value"):
                values.append(a["value"])
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, [])
        elif tag == "option" and self._select and "value" in a:
            self.fields[self._select].append(a["value"])
        elif tag == "textarea" and name:
            self.fields.setdefault(name, [])

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and tag == self._capture_tag:
            text = " ".join("".join(self._text).split())
            if text:
                self._capture.append((tag, text) if self._capture is self.error_texts else text)
            self._capture = None
        if tag == "div" and self._error_depth:
            self._error_depth -= 1
        if tag == "select":
            self._select = None
        if tag == "form" and self._in_form:
            self._in_form = False
            self._form_done = True

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._text.append(data)

    def _start_capture(self, tag: str, into: list[Any]) -> None:
        self._capture, self._capture_tag, self._text = into, tag, []


def parse_page(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:100].lower()
    return head.startswith("<!doctype html") or head.startswith("<html")


def page_message(html: str) -> str:
    """The message a hub page shows for an error: the spawn form's error line, else the
    error page's paragraph (``XSRF cookie does not match POST argument``), else its heading
    (``403 : Forbidden``)."""
    page = parse_page(html)
    if page.spawn_errors:
        return page.spawn_errors[0]
    paragraphs = [text for tag, text in page.error_texts if tag == "p"]
    return " ".join(paragraphs or [text for _, text in page.error_texts])
