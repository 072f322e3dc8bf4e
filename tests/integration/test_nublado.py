"""Labs on the sandbox hub: spawn, execute, failures of every kind, delete, concurrency."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.lab_fixtures import bot, endpoints, lab_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ep(request):
    return endpoints(request)


def test_spawn_run_delete(ep):
    from library.jupyter import SpawnResult

    async def scenario():
        from library.jupyter import HubClient

        hub = HubClient(ep.hub_url, ep.token)
        lab = await hub.lab_session(bot("srd"))
        try:
            result: SpawnResult = await lab.spawn_lab(timeout=120)
            assert not result.already_running
            assert result.progress[-1]["ready"] is True
            assert [p["t_s"] for p in result.progress] == sorted(p["t_s"] for p in result.progress)
            assert 0 <= result.client_overhead_s < result.duration_s
            again = await lab.spawn_lab(timeout=30)
            assert again.already_running
            assert await lab.lab_running()
            kernel = await lab.open_kernel()
            out = await kernel.execute("import sys\nprint(1+1)\nprint('e', file=sys.stderr)\n6*7")
            assert (out.stdout, out.stderr, out.result) == ("2\n", "e\n", "42")
            second = await kernel.execute("x = 5\nx")
            assert second.result == "5" and second.execution_count == out.execution_count + 1
            await kernel.aclose()
            seconds = await lab.delete_lab(timeout=60)
            assert seconds > 0
            assert await lab.server_status() is None
            assert not await lab.lab_running()
        finally:
            await lab.aclose()
            await hub.aclose()

    asyncio.run(scenario())


def test_code_that_raises_timeout_and_dead_kernel(ep):
    from library.jupyter import ExecutionError, ExecutionTimeout, KernelDied

    async def scenario():
        async with lab_for(ep, bot("fail")) as lab:
            kernel = await lab.open_kernel()
            with pytest.raises(ExecutionError) as info:
                await kernel.execute("def f():\n    raise ValueError('bad value')\nf()")
            err = info.value
            assert (err.ename, err.evalue) == ("ValueError", "bad value")
            assert "raise ValueError('bad value')" in err.plain_traceback()
            assert "\x1b[" not in err.plain_traceback()

            with pytest.raises(ExecutionTimeout, match="not finished after 1 s"):
                await kernel.execute("import time\ntime.sleep(30)", timeout=1)
            # the interrupt freed the kernel: its state survives and it answers at once
            assert (await kernel.execute("print('alive')", timeout=10)).stdout == "alive\n"

            with pytest.raises(KernelDied):
                await kernel.execute("import os\nos._exit(1)", timeout=30)
            assert kernel.dead
            with pytest.raises(KernelDied, match="already dead"):
                await kernel.execute("1")
            await kernel.aclose()
            fresh = await lab.open_kernel()
            assert (await fresh.execute("print(3)")).stdout == "3\n"
            await fresh.aclose()
            # lab_for deletes the lab: a dead kernel must not prevent that
            await lab.delete_lab(timeout=60)
            assert await lab.server_status() is None

    asyncio.run(scenario())


def test_spawn_timeout_then_delete(ep):
    from library.jupyter import HubClient, SpawnTimeout

    async def scenario():
        hub = HubClient(ep.hub_url, ep.token)
        lab = await hub.lab_session(bot("slow"))
        try:
            # A lab takes seconds to start: a quarter of a second cannot be enough.
            with pytest.raises(SpawnTimeout, match="not ready after 0.25 s") as info:
                await lab.spawn_lab(timeout=0.25)
            assert info.value.user == lab.user
        finally:
            # the spawn goes on in the hub; delete must wait for it and stop it
            await lab.delete_lab(timeout=90)
            assert await lab.server_status() is None
            await lab.aclose()
            await hub.aclose()

    asyncio.run(scenario())


def test_ten_labs_at_once_from_one_process(ep):
    import aiohttp

    from library.jupyter import HubClient

    async def one(hub, user):
        lab = await hub.lab_session(user)
        try:
            await lab.spawn_lab(timeout=180)
            kernel = await lab.open_kernel()
            out = await kernel.execute(f"print('{user}')", timeout=60)
            await kernel.aclose()
            return out.stdout.strip()
        finally:
            await lab.delete_lab(timeout=120)
            await lab.aclose()

    async def scenario():
        connector = aiohttp.TCPConnector(limit=0)
        hub = HubClient(ep.hub_url, ep.token, connector=connector)
        users = [bot(f"ten{i}") for i in range(10)]
        try:
            results = await asyncio.gather(*(one(hub, u) for u in users), return_exceptions=True)
        finally:
            await hub.aclose()
            await connector.close()
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures
        assert results == users

    asyncio.run(scenario())


def test_toolbox_commands_write_their_artifacts(ep, tmp_path, monkeypatch):
    from library import run
    from library.errors import UserError

    monkeypatch.setenv("BOSUN_HUB_URL", ep.hub_url)
    monkeypatch.setenv("BOSUN_TOKEN_FILE", str(ep.token_file))
    monkeypatch.setenv("ARTIFACT_DIR", str(tmp_path))
    user = bot("cli")
    from library import env

    with env.NextArtifactDir("nublado_cli"):
        base = env.artifact_dir()
        try:
            spawned = run.run_toolbox("nublado", "spawn_lab", user=user, timeout=120)
            assert spawned["already_running"] is False
            loop = run.run_toolbox(
                "nublado", "python_loop", user=user, code="print(2+2)", max_executions=3
            )
            assert loop["executions"] == 3
            status = run.run_toolbox("nublado", "lab_status", user=user)
            assert status["state"] == "running"
            with pytest.raises(UserError, match="ZeroDivisionError"):
                run.run_toolbox("nublado", "run_code", user=user, code="1/0")
        finally:
            deleted = run.run_toolbox("nublado", "delete_lab", user=user)
        assert deleted["was_running"] is True
        dirs = sorted(p.name for p in base.iterdir() if p.is_dir())
        assert [d.split("__", 1)[1] for d in dirs] == [
            "nublado__spawn_lab",
            "nublado__python_loop",
            "nublado__lab_status",
            "nublado__run_code",
            "nublado__delete_lab",
        ]
        progress = json.loads((base / dirs[0] / "spawn_progress.json").read_text())
        assert progress[-1]["ready"] and all("time" in p for p in progress)
        execs = json.loads((base / dirs[1] / "executions.json").read_text())["executions"]
        assert [e["stdout"] for e in execs] == ["4\n"] * 3
        failure = json.loads((base / dirs[3] / "executions.json").read_text())["failure"]
        assert "ZeroDivisionError" in failure["traceback"]
        assert list((base / dirs[0] / "events").glob("*.parquet"))
        for path in base.rglob("*"):
            if path.is_file() and path.suffix != ".parquet":
                assert ep.token not in path.read_text(errors="replace"), path
