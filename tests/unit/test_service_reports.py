"""The daily report's delivery: posted again with backoff while a post fails for a reason
that may pass, within its bounds, never after a success, cancelled when the service stops.

`send` is the post itself (the service's is an aiohttp POST to the webhook); here a list of
outcomes, and once a real aiohttp post to a port where nothing listens."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from library.service.reports import ReportLog, WebhookRefused, retryable


class Sender:
    """Fails with each of `outcomes` in turn (None: succeeds), then succeeds."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[float] = []

    async def __call__(self) -> None:
        self.calls.append(time.monotonic())
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome


async def settle(log: ReportLog, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while log._retries and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def test_retried_with_backoff_until_delivered_and_never_after():
    async def main():
        log = ReportLog(attempts=5, delay_s=0.05, within_s=10.0)
        send = Sender(ConnectionRefusedError(111, "Connection refused"), WebhookRefused(503, "x"))
        entry = await log.post("text", "schedule", send)
        assert entry["state"] == "retrying" and entry["attempts"] == 1
        assert entry["next_attempt"] is not None and entry["delivered"] is False
        await settle(log)
        await asyncio.sleep(0.3)  # nothing more once delivered
        return entry, send

    entry, send = asyncio.run(main())
    assert len(send.calls) == 3
    first, second = send.calls[1] - send.calls[0], send.calls[2] - send.calls[1]
    assert first >= 0.05 and second >= 0.1  # the delay doubles
    assert entry["delivered"] is True and entry["state"] == "delivered"
    assert entry["attempts"] == 3 and entry["next_attempt"] is None
    assert [f["error"] for f in entry["failures"]] == [
        "[Errno 111] Connection refused",
        "webhook answered 503: x",
    ]


def test_a_refusal_for_good_is_not_retried():
    async def main():
        log = ReportLog(attempts=5, delay_s=0.01)
        send = Sender(WebhookRefused(404, "no_service"))
        entry = await log.post("text", "asked by admin", send)
        await settle(log)
        return entry, send

    entry, send = asyncio.run(main())
    assert len(send.calls) == 1
    assert entry["state"] == "failed" and entry["error"] == "webhook answered 404: no_service"


def test_bounded_by_attempts_and_by_time():
    async def main():
        by_count = ReportLog(attempts=3, delay_s=0.01, within_s=10.0)
        counted = Sender(*[TimeoutError()] * 10)
        a = await by_count.post("text", "schedule", counted)
        by_time = ReportLog(attempts=20, delay_s=0.1, within_s=0.25)
        timed = Sender(*[WebhookRefused(500, "down")] * 10)
        b = await by_time.post("text", "schedule", timed)
        await settle(by_count)
        await settle(by_time)
        return a, counted, b, timed

    a, counted, b, timed = asyncio.run(main())
    assert len(counted.calls) == 3 and a["state"] == "failed" and a["error"] == "TimeoutError"
    # Attempts at 0 and 0.1 s; the next (0.3 s) would start after `within`.
    assert len(timed.calls) == 2 and b["state"] == "failed" and len(b["failures"]) == 2


def test_retries_are_cancelled_when_the_service_stops():
    async def main():
        log = ReportLog(attempts=5, delay_s=60.0)
        send = Sender(WebhookRefused(502, "bad gateway"))
        entry = await log.post("text", "schedule", send)
        began = time.monotonic()
        await log.aclose()
        return entry, send, time.monotonic() - began

    entry, send, took = asyncio.run(main())
    assert took < 1.0 and len(send.calls) == 1
    assert entry["state"] == "cancelled" and entry["next_attempt"] is None


@pytest.mark.parametrize(
    ("exc", "again"),
    [
        (WebhookRefused(500, ""), True),
        (WebhookRefused(503, ""), True),
        (WebhookRefused(429, ""), True),
        (WebhookRefused(408, ""), True),
        (WebhookRefused(400, ""), False),
        (WebhookRefused(403, ""), False),
        (TimeoutError(), True),
        (ValueError("bad URL"), False),
    ],
)
def test_which_failures_may_pass(exc, again):
    assert retryable(exc) is again


def test_no_answer_from_a_real_post_is_retryable():
    import aiohttp

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def post() -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.post(f"http://127.0.0.1:{port}/hook", json={"text": "x"})
            except Exception as exc:  # noqa: BLE001 - the error is what is checked
                return exc
        raise AssertionError("the post was answered")

    assert retryable(asyncio.run(post()))
    assert not retryable(aiohttp.InvalidURL("no scheme"))
