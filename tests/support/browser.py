"""Debian's headless Chromium driven by Playwright for Python, for the browser tests.

Playwright is pointed at /usr/bin/chromium (installed by `make setup` through
library/sandbox/system.py): its own browser downloads are never used. Every page opened by
`Watched` records console errors, uncaught exceptions, failed requests and HTTP errors, so a
test can assert the page ran clean; screenshots go under the test's artifact dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright Browser over the system Chromium."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise AssertionError("chromium is not installed: run `make setup` (Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """$BOSUN_TEST_ARTIFACTS (kept by CI), else the test's own tmp artifact dir."""
    root = os.environ.get("BOSUN_TEST_ARTIFACTS")
    out = Path(root) / "screenshots" if root else tmp_path / "artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Watched:
    """A page and what went wrong on it: console errors, page errors, failed requests,
    responses >= 400 (`allowed_status` lists the URL parts a test provokes on purpose)."""

    page: Any
    problems: list[str] = field(default_factory=list)
    transferred: list[tuple[str, int]] = field(default_factory=list)
    allowed_status: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: Any, record_sizes: bool = False) -> Watched:
        watched = cls(context.new_page())
        page = watched.page
        page.on(
            "console",
            lambda m: (
                watched.problems.append(f"console.{m.type}: {m.text}")
                if m.type in ("error", "assert")
                else None
            ),
        )
        page.on("pageerror", lambda e: watched.problems.append(f"page error: {e}"))
        page.on("requestfailed", watched._failed)
        page.on("request", lambda r: watched.urls.append(r.url))
        page.on("response", watched._response)
        if record_sizes:
            page.on("requestfinished", watched._size)
        return watched

    def hosts(self) -> set[str]:
        """Every host the page asked anything of (data: URLs aside)."""
        from urllib.parse import urlsplit

        return {urlsplit(u).netloc for u in self.urls if not u.startswith(("data:", "blob:"))}

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        # A poll cut by the page being closed or left (a link followed) is not the page's
        # fault: its script never aborts a fetch itself, so an aborted fetch means unload.
        if "ERR_ABORTED" in failure and (self.page.is_closed() or request.resource_type == "fetch"):
            return
        self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not any(a in response.url for a in self.allowed_status):
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def _size(self, request: Any) -> None:
        sizes = request.sizes()
        self.transferred.append(
            (request.url, sizes["responseBodySize"] + sizes["responseHeadersSize"])
        )

    def shot(self, directory: Path, name: str, full_page: bool = True) -> Path:
        path = directory / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path
