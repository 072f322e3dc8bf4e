"""Labs started through the spawn form, as on Nublado: bearer login, form fields, XSRF token."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import urllib.parse

import pytest

from tests.helpers import REPO, error_lines, run_cli
from tests.integration.lab_fixtures import bot, endpoints

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ep(request):
    return endpoints(request)


def _user_token(ep, user: str) -> str:
    """Create USER on the hub and mint its own API token (what a bot has on Nublado)."""
    from library.jupyter import HubClient

    async def mint():
        hub = HubClient(ep.hub_url, ep.token)
        try:
            await hub.create_user(user)
            return await hub.create_token(user, note="form test")
        finally:
            await hub.aclose()

    return asyncio.run(mint())


def _server(ep, user: str) -> dict | None:
    """The hub's model of USER's default server, read with the admin token."""
    from library.sandbox.hub import api_json

    model = api_json(f"{ep.hub_api_url.rstrip('/')}/users/{urllib.parse.quote(user)}", ep.token)
    return (model.get("servers") or {}).get("")


def _cli(ep, tmp_path, *args):
    """./run_toolbox.py nublado ARGS with the bot's token file (tmp_path/tokens.txt)."""
    env = {
        "BOSUN_HUB_URL": ep.hub_url,
        "BOSUN_TOKEN_FILE": str(tmp_path / "tokens.txt"),
        "ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    return run_cli(REPO / "run_toolbox.py", "nublado", *args, env=env, timeout=240)


def _token_file(tmp_path, user: str, token: str) -> None:
    # Real-platform mode: the bot's own token, no admin token at all.
    fd = os.open(tmp_path / "tokens.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{user}: {token}\n")


def test_spawn_form_run_code_delete(ep, tmp_path):
    user = bot("formtest")
    token = _user_token(ep, user)
    _token_file(tmp_path, user, token)
    outputs = []

    spawned = _cli(
        ep,
        tmp_path,
        "spawn_lab",
        "--user",
        user,
        "--via",
        "form",
        "--image",
        "sandbox/lab:w_2025_01",
        "--size",
        "medium",
    )
    outputs.append(spawned)
    try:
        assert spawned.returncode == 0, spawned.stderr
        server = _server(ep, user)
        assert server is not None and server["ready"]
        # image_class comes from the form handler only: the REST path passes options as given.
        assert server["user_options"] == {
            "image": "sandbox/lab:w_2025_01",
            "image_class": "list",
            "size": "Medium",  # the form's size names are Nublado's; lower case is accepted
        }
        ran = _cli(
            ep,
            tmp_path,
            "run_code",
            "--user",
            user,
            "--code",
            "import os; print(os.environ['JUPYTER_IMAGE_SPEC'], os.environ['BOSUN_LAB_SIZE'])",
        )
        outputs.append(ran)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().splitlines()[0] == "sandbox/lab:w_2025_01 Medium"
    finally:
        deleted = _cli(ep, tmp_path, "delete_lab", "--user", user)
        outputs.append(deleted)
    assert deleted.returncode == 0, deleted.stderr
    assert _server(ep, user) is None

    artifacts = tmp_path / "artifacts"
    spawn_dir = next(artifacts.rglob("*nublado__spawn_lab"))
    progress = json.loads((spawn_dir / "spawn_progress.json").read_text())
    assert progress and progress[-1]["ready"] is True
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert token.encode() not in data, path
        assert ep.token.encode() not in data, path
    for out in outputs:
        assert token not in out.stdout + out.stderr


def test_form_refuses_a_bad_size_in_one_line(ep, tmp_path):
    user = bot("formbad")
    token = _user_token(ep, user)
    _token_file(tmp_path, user, token)
    result = _cli(ep, tmp_path, "spawn_lab", "--user", user, "--via", "form", "--size", "huge")
    assert result.returncode != 0
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "POST" in lines[0] and "/hub/spawn returned 400" in lines[0]
    assert "unknown size 'huge'" in lines[0]
    assert token not in result.stderr + result.stdout
    assert _server(ep, user) is None


def test_wrong_xsrf_token_is_refused_then_the_right_one_spawns(ep):
    from library.jupyter import HubClient, HubHTTPError

    user = bot("formxsrf")

    async def scenario():
        hub = HubClient(ep.hub_url, ep.token)
        lab = await hub.lab_session(user)
        try:
            form = await lab.open_spawn_form()
            assert form is not None
            assert form.fields["size"] == ["Small", "Medium", "Large"]
            assert form.fields["image_class"] == [
                "recommended",
                "latest-weekly",
                "latest-daily",
                "latest-release",
                "list",
                "tag",
            ]
            assert "sandbox/lab:r29_0_0" in form.fields["image_list"]
            assert "image_tag" in form.fields
            assert form.xsrf and form.xsrf not in repr(form)

            wrong = dataclasses.replace(form, xsrf=form.xsrf[::-1])
            with pytest.raises(HubHTTPError) as info:
                await lab.submit_spawn_form(wrong, {"image_tag": "r29_0_0", "size": "large"})
            err = info.value
            assert err.status == 403
            line = err.one_line()
            assert str(err) == line and line.startswith("POST ") and "returned 403" in line
            assert "XSRF" in line
            for secret in (form.xsrf, wrong.xsrf, ep.token):
                assert secret not in line
            assert await lab.server_status() is None

            # The same session with the cookie's own token starts the lab with those fields.
            pending = await lab.submit_spawn_form(form, {"image_tag": "r29_0_0", "size": "large"})
            assert "/hub/spawn-pending/" in pending
            result = await lab.spawn_lab(timeout=120, via="form")
            assert not result.already_running and result.progress[-1]["ready"]
            server = await lab.server_status()
            assert server["user_options"] == {
                "image": "sandbox/lab:r29_0_0",
                "image_class": "tag",
                "size": "Large",
            }
            kernel = await lab.open_kernel()
            out = await kernel.execute("import os; print(os.environ['JUPYTER_IMAGE_SPEC'])")
            assert out.stdout == "sandbox/lab:r29_0_0\n"
            await kernel.aclose()
        finally:
            await lab.delete_lab(timeout=90)
            assert await lab.server_status() is None
            await lab.aclose()
            await hub.aclose()

    asyncio.run(scenario())
