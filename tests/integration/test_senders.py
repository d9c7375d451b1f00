"""SenderPool: real sender processes sending to a real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from datetime import timedelta

import psutil
import pytest

from orderhooks.clock import utc_now
from orderhooks.delivery.senders import (
    SenderConfig,
    SenderPool,
)
from orderhooks.delivery.transport import AttemptAbandoned, OutboundRequest
from orderhooks.domain.model import AttemptError
from orderhooks.testing.receiver import Receiver

LOOPBACK_ONLY = SenderConfig(("127.0.0.0/8",), 16, None, "json", "warning")


def request(url: str, body: bytes = b'{"n":1}', timeout: float = 5.0) -> OutboundRequest:
    """A signed-looking POST (the senders never look at the headers)."""
    return OutboundRequest(url, body, {"content-type": "application/json", "x-n": "1"}, timeout)


@pytest.fixture()
async def rx() -> AsyncIterator[Receiver]:
    """A receiver answering 200 until told otherwise."""
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture()
async def pool() -> AsyncIterator[SenderPool]:
    """Two sender processes, closed (and gone) after the test."""
    senders = SenderPool(2, LOOPBACK_ONLY)
    await senders.start()
    yield senders
    await senders.close()


async def test_requests_reach_the_receiver_and_results_come_back(
    pool: SenderPool, rx: Receiver
) -> None:
    results = await asyncio.gather(
        *(pool.send(request(rx.url, b'{"n":%d}' % i)) for i in range(20))
    )
    assert [r.status_code for r in results] == [200] * 20
    assert all(r.error is None for r in results)
    assert sorted(r.body for r in rx.requests) == sorted(b'{"n":%d}' % i for i in range(20))
    assert {r.headers["x-n"] for r in rx.requests} == {"1"}

    rx.throttle(503, retry_after="7")
    [throttled] = await asyncio.gather(pool.send(request(rx.url)))
    assert throttled.status_code == 503
    assert throttled.error is AttemptError.HTTP_STATUS
    assert throttled.response_headers["Retry-After"] == "7"


async def test_the_network_guard_works_in_the_senders(rx: Receiver) -> None:
    senders = SenderPool(1, SenderConfig((), 4, None, "json", "warning"))
    await senders.start()
    try:
        result = await senders.send(request(rx.url))
    finally:
        await senders.close()
    assert result.error is AttemptError.BLOCKED_ADDRESS
    assert rx.requests == [], "nothing was sent to a blocked address"


async def test_a_killed_sender_is_replaced_and_its_requests_sent_again(
    pool: SenderPool, rx: Receiver
) -> None:
    # Answers slow enough that four attempts are surely in flight together, even on a
    # loaded machine (0.5 s was not: each was answered before the fourth arrived).
    rx.slow(2.0)
    before = pool.pids
    assert len(before) == 2
    attempts = [asyncio.ensure_future(pool.send(request(rx.url, timeout=5.0))) for _ in range(6)]
    await rx.wait_for(lambda: rx.in_flight >= 4, what="attempts in flight in both senders")
    os.kill(before[0], signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*attempts), 20)
    assert [r.status_code for r in results] == [200] * 6, "every request was answered"
    for _ in range(100):
        if len(pool.pids) == 2 and before[0] not in pool.pids:
            break
        await asyncio.sleep(0.1)
    assert before[0] not in pool.pids and len(pool.pids) == 2, "the dead sender was replaced"


async def test_close_ends_every_sender() -> None:
    senders = SenderPool(2, LOOPBACK_ONLY)
    await senders.start()
    pids = senders.pids
    await senders.close()
    assert not [pid for pid in pids if psutil.pid_exists(pid)]


async def test_a_copy_that_could_outlast_the_lease_is_not_sent(rx: Receiver) -> None:
    # Sent again once the timeout is over, a copy would still be in flight when the
    # delivery's lease ends and the claim sends one of its own: it is given up instead.
    rx.black_hole()
    senders = SenderPool(1, LOOPBACK_ONLY)
    await senders.start()
    try:
        [pid] = senders.pids
        lease = utc_now() + timedelta(seconds=4)
        sent = dataclasses.replace(request(rx.url, timeout=2.0), lease_expires_at=lease)
        attempt = asyncio.ensure_future(senders.send(sent))
        await rx.wait_for(lambda: rx.in_flight == 1, what="the first copy in flight")
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(AttemptAbandoned):
            await asyncio.wait_for(attempt, 20)
    finally:
        await senders.close()
    assert len(rx.requests) == 1, "no second copy was sent"


async def test_close_ends_a_stopped_sender_with_requests_unsent(rx: Receiver) -> None:
    # A sender stopped (SIGSTOP) reads nothing: what the parent wrote to it stays in the
    # parent's buffer, and closing the channel waited for that buffer to drain, for ever.
    senders = SenderPool(1, LOOPBACK_ONLY)
    await senders.start()
    [pid] = senders.pids
    os.kill(pid, signal.SIGSTOP)
    try:
        body = b"x" * 1_000_000
        attempts = [asyncio.ensure_future(senders.send(request(rx.url, body))) for _ in range(20)]
        await asyncio.sleep(0)  # written to the channel
        await asyncio.wait_for(senders.close(), 30)
        assert all(attempt.cancelled() for attempt in attempts)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def test_a_sender_whose_restart_fails_in_an_unforeseen_way_is_started_again(
    rx: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only OSError was retried: any other error from a start ended the restart, and that
    # sender never came back.
    senders = SenderPool(1, LOOPBACK_ONLY)
    await senders.start()
    try:
        [first] = senders.pids
        real_start = SenderPool._start
        failures = [RuntimeError("an unforeseen failure")]

        async def failing_once(pool: SenderPool, sender: object) -> None:
            if failures:
                raise failures.pop()
            await real_start(pool, sender)  # type: ignore[arg-type]

        monkeypatch.setattr(SenderPool, "_start", failing_once)
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if senders.pids and senders.pids != [first]:
                break
            await asyncio.sleep(0.1)
        assert not failures, "the restart was tried"
        assert senders.pids and senders.pids != [first], "the sender came back"
        result = await asyncio.wait_for(senders.send(request(rx.url)), 20)
        assert result.status_code == 200
    finally:
        await senders.close()
