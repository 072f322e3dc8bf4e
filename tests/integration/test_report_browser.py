"""The report page in a real headless Chromium: it loads with no console error, every image
decodes, and a screenshot is kept as a test artifact.

Chromium is driven over the DevTools protocol (its websocket, with aiohttp) so that console
messages, failed loads and image sizes come from the browser itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from library.report import post_mortem
from tests.support import synthetic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURE = Path(__file__).parents[1] / "fixtures" / "recorded_run"
SCREENSHOT_DIR = Path(os.environ.get("BOSUN_TEST_ARTIFACTS", "artifacts/test-screenshots"))


class Browser:
    """One headless Chromium with a fresh profile and its DevTools endpoint."""

    def __init__(self, profile: Path):
        self.profile = profile
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def inspect_page(port: int, url: str, screenshot: Path) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            if pages:
                break
            await asyncio.sleep(0.05)
        async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 10_000))
            pending: dict[int, asyncio.Future] = {}
            problems: list[str] = []
            loaded = asyncio.Event()

            async def reader():
                async for msg in ws:
                    data = json.loads(msg.data)
                    if "id" in data and data["id"] in pending:
                        pending.pop(data["id"]).set_result(data)
                    method = data.get("method")
                    params = data.get("params", {})
                    if method == "Page.loadEventFired":
                        loaded.set()
                    elif method == "Runtime.consoleAPICalled" and params["type"] in (
                        "error",
                        "assert",
                    ):
                        problems.append(f"console.{params['type']}: {params['args']}")
                    elif method == "Runtime.exceptionThrown":
                        problems.append(f"exception: {params['exceptionDetails']}")
                    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                        problems.append(
                            f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}"
                        )
                    elif method == "Network.loadingFailed":
                        problems.append(f"network: {params.get('errorText')}")

            async def call(method, **params):
                i = next(ids)
                pending[i] = asyncio.get_running_loop().create_future()
                await ws.send_json({"id": i, "method": method, "params": params})
                reply = await asyncio.wait_for(pending[i], 30)
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

            task = asyncio.create_task(reader())
            for domain in ("Page", "Runtime", "Log", "Network"):
                await call(f"{domain}.enable")
            await call(
                "Emulation.setDeviceMetricsOverride",
                width=1300,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            await call("Page.navigate", url=url)
            await asyncio.wait_for(loaded.wait(), 30)
            images = (
                await call(
                    "Runtime.evaluate",
                    returnByValue=True,
                    expression="Array.from(document.images).map(i => "
                    "({src: i.getAttribute('src'), ok: i.complete, w: i.naturalWidth}))",
                )
            )["result"]["value"]
            links = (
                await call(
                    "Runtime.evaluate",
                    returnByValue=True,
                    expression="Array.from(document.querySelectorAll('a')).map(a => a.href)",
                )
            )["result"]["value"]
            metrics = await call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"])
            shot = await call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": 1300, "height": height, "scale": 1},
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            task.cancel()
    return {"problems": problems, "images": images, "links": links, "height": height}


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian chromium)")
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def _check(browser, index: Path, name: str) -> dict:
    shot = SCREENSHOT_DIR / f"{name}.png"
    page = asyncio.run(inspect_page(browser.port, index.resolve().as_uri(), shot))
    assert page["problems"] == []
    assert page["images"], "the page shows no plot"
    broken = [i["src"] for i in page["images"] if not (i["ok"] and i["w"] > 0)]
    assert broken == []
    # Every link stays inside the artifact tree and points at a file that exists.
    root = index.parent.parent.resolve()
    for href in page["links"]:
        assert href.startswith("file://"), href
        target = Path(href.removeprefix("file://").split("#")[0])
        from urllib.parse import unquote

        target = Path(unquote(str(target)))
        assert target.resolve().is_relative_to(root), href
        assert target.exists(), href
    assert shot.stat().st_size > 10_000
    return page


def test_recorded_fixture_page_in_chromium(browser, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    page = _check(browser, post_mortem(run), "recorded_run")
    assert len(page["images"]) >= 9
    assert any(h.endswith("/FAILURE") for h in page["links"])
    assert page["height"] > 2000


def test_all_failed_page_in_chromium(browser, tmp_path):
    run = synthetic.write_run(tmp_path / "failed", 2_000, all_failed=True, monkeys=10)
    _check(browser, post_mortem(run), "all_failed_run")
