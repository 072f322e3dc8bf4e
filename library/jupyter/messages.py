"""Jupyter messaging and hub progress-stream parsing, free of any I/O.

The kernel websocket speaks the JSON form of the Jupyter messaging protocol: every frame is one
message with a ``channel`` field. An execution is finished when both the shell
``execute_reply`` and the iopub ``status: idle`` for its request have arrived; output from
other requests sharing the kernel is ignored by matching ``parent_header.msg_id``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

PROTOCOL_VERSION = "5.3"

# iopub states that mean the code will never finish in this kernel process.
DEAD_STATES = {"dead", "restarting", "autorestarting"}


def execute_request(code: str, session_id: str, username: str = "") -> dict[str, Any]:
    """An execute_request message for the shell channel."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": username,
            "session": session_id,
            "date": datetime.now(UTC).isoformat(),
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


@dataclass
class ExecutionResult:
    """What one execution produced."""

    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    execution_count: int | None = None
    duration_s: float = 0.0
    display_data: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "result": self.result,
            "execution_count": self.execution_count,
            "duration_s": round(self.duration_s, 6),
        }


@dataclass
class Outcome:
    """Result of feeding one message to an Execution."""

    done: bool = False
    error: dict[str, Any] | None = None  # {"ename", "evalue", "traceback"}
    died: str | None = None  # reason the kernel is gone


class Execution:
    """Collects the replies to one execute_request until it is finished."""

    def __init__(self, msg_id: str):
        self.msg_id = msg_id
        self.result = ExecutionResult()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._reply = False
        self._idle = False
        self.error: dict[str, Any] | None = None

    def feed(self, msg: dict[str, Any]) -> Outcome:
        """Account for one decoded message; says whether the execution is over and how."""
        msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
        content = msg.get("content") or {}
        parent = (msg.get("parent_header") or {}).get("msg_id")
        # A restart after a crash is announced kernel-wide, with no parent of ours: whatever
        # ran in the old process is lost.
        if msg_type == "status" and content.get("execution_state") in DEAD_STATES:
            return Outcome(died=f"kernel status {content['execution_state']}")
        if parent != self.msg_id:
            return Outcome()
        if msg_type == "stream":
            target = self._stderr if content.get("name") == "stderr" else self._stdout
            target.append(content.get("text", ""))
        elif msg_type == "execute_result":
            self.result.result = (content.get("data") or {}).get("text/plain")
            self.result.execution_count = content.get("execution_count")
        elif msg_type == "display_data":
            self.result.display_data.append(content.get("data") or {})
        elif msg_type == "error":
            self.error = {
                "ename": content.get("ename", ""),
                "evalue": content.get("evalue", ""),
                "traceback": list(content.get("traceback") or []),
            }
        elif msg_type == "execute_reply":
            self._reply = True
            if self.result.execution_count is None:
                self.result.execution_count = content.get("execution_count")
            if content.get("status") == "error" and self.error is None:
                self.error = {
                    "ename": content.get("ename", "Error"),
                    "evalue": content.get("evalue", ""),
                    "traceback": list(content.get("traceback") or []),
                }
            elif content.get("status") == "aborted" and self.error is None:
                self.error = {"ename": "Aborted", "evalue": "execution aborted", "traceback": []}
        elif msg_type == "status" and content.get("execution_state") == "idle":
            self._idle = True
        self.result.stdout = "".join(self._stdout)
        self.result.stderr = "".join(self._stderr)
        if self._reply and self._idle:
            return Outcome(done=True, error=self.error)
        return Outcome()


def decode(frame: str | bytes) -> dict[str, Any] | None:
    """One websocket text frame as a message dict; None for frames that are not JSON messages.

    Binary frames (the v1 websocket subprotocol) are never requested by this client.
    """
    if isinstance(frame, bytes):
        return None
    try:
        msg = json.loads(frame)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


@dataclass
class ProgressEvent:
    """One event of the hub's spawn progress stream."""

    progress: int | None
    message: str
    ready: bool
    failed: bool
    url: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def parse_progress_line(line: str) -> ProgressEvent | None:
    """Parse one line of ``text/event-stream`` output; None for anything but a data line."""
    line = line.rstrip("\r\n")
    if not line.startswith("data:"):
        return None
    payload = line[len("data:") :].strip()
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return ProgressEvent(
        progress=data.get("progress"),
        message=str(data.get("message") or data.get("html_message") or ""),
        ready=bool(data.get("ready")),
        failed=bool(data.get("failed")),
        url=str(data.get("url") or ""),
        raw=data,
    )
