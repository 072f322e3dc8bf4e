"""Jupyter messaging and progress-stream parsing, and what the typed errors carry."""

from library.jupyter.errors import ExecutionError, HubHTTPError, safe_url
from library.jupyter.messages import Execution, decode, execute_request, parse_progress_line


def _msg(msg_type, content, parent="req-1", channel="iopub"):
    return {
        "msg_type": msg_type,
        "content": content,
        "channel": channel,
        "parent_header": {"msg_id": parent} if parent else {},
    }


def test_execute_request_is_a_shell_message_with_a_fresh_id():
    a = execute_request("print(1)", "sess")
    b = execute_request("print(1)", "sess")
    assert a["channel"] == "shell"
    assert a["header"]["msg_type"] == "execute_request"
    assert a["header"]["session"] == "sess"
    assert a["content"]["code"] == "print(1)"
    assert a["header"]["msg_id"] != b["header"]["msg_id"]


def test_execution_collects_streams_and_result_and_needs_reply_and_idle():
    ex = Execution("req-1")
    assert not ex.feed(_msg("status", {"execution_state": "busy"})).done
    ex.feed(_msg("stream", {"name": "stdout", "text": "a\n"}))
    ex.feed(_msg("stream", {"name": "stderr", "text": "warn\n"}))
    ex.feed(_msg("stream", {"name": "stdout", "text": "b\n"}))
    ex.feed(_msg("execute_result", {"data": {"text/plain": "12"}, "execution_count": 3}))
    # idle first, reply second: both orders happen because they travel on different channels
    assert not ex.feed(_msg("status", {"execution_state": "idle"})).done
    out = ex.feed(_msg("execute_reply", {"status": "ok", "execution_count": 3}, channel="shell"))
    assert out.done and out.error is None and out.died is None
    assert ex.result.stdout == "a\nb\n"
    assert ex.result.stderr == "warn\n"
    assert ex.result.result == "12"
    assert ex.result.execution_count == 3


def test_messages_of_other_requests_are_ignored():
    ex = Execution("req-1")
    ex.feed(_msg("stream", {"name": "stdout", "text": "not mine"}, parent="req-0"))
    assert not ex.feed(_msg("status", {"execution_state": "idle"}, parent="req-0")).done
    ex.feed(_msg("execute_reply", {"status": "ok"}, parent="req-0", channel="shell"))
    assert ex.result.stdout == ""
    ex.feed(_msg("execute_reply", {"status": "ok"}, channel="shell"))
    assert ex.feed(_msg("status", {"execution_state": "idle"})).done


def test_error_is_reported_with_traceback():
    ex = Execution("req-1")
    ex.feed(
        _msg(
            "error",
            {
                "ename": "ZeroDivisionError",
                "evalue": "division by zero",
                "traceback": ["\x1b[31mTraceback\x1b[0m", "line 1"],
            },
        )
    )
    ex.feed(
        _msg(
            "execute_reply",
            {"status": "error", "ename": "ZeroDivisionError", "evalue": "division by zero"},
            channel="shell",
        )
    )
    out = ex.feed(_msg("status", {"execution_state": "idle"}))
    assert out.done
    assert out.error["ename"] == "ZeroDivisionError"
    assert out.error["traceback"] == ["\x1b[31mTraceback\x1b[0m", "line 1"]


def test_aborted_reply_is_an_error():
    ex = Execution("req-1")
    ex.feed(_msg("execute_reply", {"status": "aborted"}, channel="shell"))
    assert ex.feed(_msg("status", {"execution_state": "idle"})).error["ename"] == "Aborted"


def test_kernel_restart_without_parent_means_died():
    ex = Execution("req-1")
    ex.feed(_msg("status", {"execution_state": "busy"}))
    out = ex.feed(_msg("status", {"execution_state": "restarting"}, parent=None))
    assert out.died == "kernel status restarting"
    assert Execution("x").feed(_msg("status", {"execution_state": "dead"}, parent=None)).died


def test_decode_skips_binary_and_garbage():
    assert decode(b"\x00\x01") is None
    assert decode("not json") is None
    assert decode("[1, 2]") is None
    assert decode('{"msg_type": "status"}') == {"msg_type": "status"}


def test_progress_lines():
    assert parse_progress_line(": keepalive\n") is None
    assert parse_progress_line("\n") is None
    ev = parse_progress_line('data: {"progress": 50, "message": "Spawning server..."}\n')
    assert (ev.progress, ev.message, ev.ready, ev.failed) == (
        50,
        "Spawning server...",
        False,
        False,
    )
    ready = parse_progress_line('data: {"progress": 100, "ready": true, "url": "/user/a/"}')
    assert ready.ready and ready.url == "/user/a/"
    failed = parse_progress_line('data: {"failed": true, "message": "Spawn failed: boom"}')
    assert failed.failed and "boom" in failed.message


def test_errors_never_carry_query_strings_or_userinfo():
    url = "https://bot:s3cr3t@hub.example/hub/api/users/a?token=abcdef123"
    assert safe_url(url) == "https://hub.example/hub/api/users/a"
    err = HubHTTPError("GET", url, 403, "Forbidden", user="a")
    assert "abcdef123" not in str(err) and "s3cr3t" not in str(err)
    assert err.status == 403 and err.url == "https://hub.example/hub/api/users/a"


def test_execution_error_names_notebook_and_cell_and_strips_colours():
    err = ExecutionError("ValueError", "bad", ["\x1b[0;31mValueError\x1b[0m: bad"])
    located = err.with_context("nb/x.ipynb", 3)
    assert str(located) == "nb/x.ipynb cell 3: ValueError: bad"
    assert located.plain_traceback() == "ValueError: bad"
