"""The report page in a real headless Chromium (Debian's, driven by Playwright): it loads
with no console error, no uncaught exception and no failed load, every image decodes, every
link stays inside the artifact tree, and a screenshot is kept as a test artifact."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from library.report import post_mortem
from tests.support import synthetic
from tests.support.browser import Watched, chromium, screenshot_dir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "recorded_run"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def inspect_page(browser, url: str, screenshot: Path) -> dict:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        watched = Watched.open(context)
        page = watched.page
        page.goto(url, wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => "
            "({src: i.getAttribute('src'), ok: i.complete, w: i.naturalWidth}))"
        )
        links = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
        height = page.evaluate("document.documentElement.scrollHeight")
        page.screenshot(path=str(screenshot), full_page=True)
        return {"problems": watched.problems, "images": images, "links": links, "height": height}
    finally:
        context.close()


def _check(browser, index: Path, name: str, tmp_path: Path) -> dict:
    shot = screenshot_dir(tmp_path) / f"{name}.png"
    page = inspect_page(browser, index.resolve().as_uri(), shot)
    assert page["problems"] == []
    assert page["images"], "the page shows no plot"
    broken = [i["src"] for i in page["images"] if not (i["ok"] and i["w"] > 0)]
    assert broken == []
    # Every link stays inside the artifact tree and points at a file that exists.
    root = index.parent.parent.resolve()
    for href in page["links"]:
        assert href.startswith("file://"), href
        target = Path(unquote(href.removeprefix("file://").split("#")[0]))
        assert target.resolve().is_relative_to(root), href
        assert target.exists(), href
    assert shot.stat().st_size > 10_000
    return page


def test_recorded_fixture_page_in_chromium(browser, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    page = _check(browser, post_mortem(run), "recorded_run", tmp_path)
    assert len(page["images"]) >= 9
    assert any(h.endswith("/FAILURE") for h in page["links"])
    assert page["height"] > 2000


def test_all_failed_page_in_chromium(browser, tmp_path):
    run = synthetic.write_run(tmp_path / "failed", 2_000, all_failed=True, monkeys=10)
    _check(browser, post_mortem(run), "all_failed_run", tmp_path)
