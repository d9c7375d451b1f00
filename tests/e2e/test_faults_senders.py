"""A multi-process serve (docs/architecture.md): SIGKILL of one sender process loses
nothing and the parent brings it back; SIGTERM drains and stops every process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import psutil
import pytest

from orderhooks.delivery.senders import HUNG_GRACE_SECONDS
from orderhooks.testing.receiver import Receiver
from orderhooks.testing.recording import Reply, ReplyKind
from orderhooks.testing.server import ServerProcess
from tests.e2e.support import assert_per_order
from tests.support.api import Api, poll
from tests.support.data import new_order

SENDERS = 2
SERVER_ENV = {"ORDERHOOKS_WORKERS": str(SENDERS + 1)}
MAX_CONCURRENCY = 4
# What a dead sender had in flight is sent again once the attempt's timeout is over, long
# before its lease (timeout + 30 s) would bring it back: the wait below is shorter.
TIMEOUT_SECONDS = 3
WAIT_DELIVERED_SECONDS = 20.0
# A stopped sender is killed only HUNG_GRACE_SECONDS after the timeout of the oldest
# request it holds (one handed to it before the stop), and its requests go out then: most
# of WAIT_DELIVERED_SECONDS is spent before the first resend, too little is left for a
# loaded host. A wait, not a bound: passing tests never reach it.
WAIT_AFTER_HANG_SECONDS = TIMEOUT_SECONDS + HUNG_GRACE_SECONDS + WAIT_DELIVERED_SECONDS * 2
ORDERS = 40
SECOND_SIGTERM_EXIT_SECONDS = 20.0
BATCH_WAIT_NEVER_MS = 60_000  # the longest wait: longer than any test here
STATUS_FLOW = (20, 50, 70, 90)


# Each test starts, and leaves, the module's server running, whatever the last did.
pytestmark = pytest.mark.usefixtures("server_up")


def sender_pids(server: ServerProcess) -> list[int]:
    """The sender processes the server runs now."""
    assert server.pid is not None
    pids = []
    for child in psutil.Process(server.pid).children():
        try:
            if (
                "orderhooks.delivery.sender" in child.cmdline()
                and child.status() != psutil.STATUS_ZOMBIE
            ):
                pids.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


async def wait_senders(server: ServerProcess, count: int) -> list[int]:
    """Wait until the server runs `count` sender processes; their pids."""

    async def fetch() -> list[int]:
        return sender_pids(server)

    return await poll(fetch, lambda pids: len(pids) == count, 30, f"{count} sender processes")


async def slowed_webhook(api: Api, rx: Receiver, account: str, seconds: float) -> dict[str, object]:
    """A webhook on `rx`, which answers after `seconds`: attempts stay in flight in both
    senders."""
    rx.slow(seconds)
    return await api.create_webhook(
        rx.url, [account], maxConcurrency=MAX_CONCURRENCY, timeoutSeconds=TIMEOUT_SECONDS
    )


async def test_sigkill_of_a_sender_loses_nothing_and_it_comes_back(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    before = await wait_senders(server, SENDERS)
    hook = await slowed_webhook(api, rx, account, 0.05)
    acknowledged: list[str] = []
    order_ids: list[str] = []
    for _ in range(ORDERS):
        order = new_order(account)
        acknowledged += await api.new_order(order)
        order_ids.append(order["_id"])
    for status in STATUS_FLOW:
        for order_id in order_ids:
            acknowledged += await api.status(order_id, status)
        if status == STATUS_FLOW[0]:
            await rx.wait_for(lambda: rx.in_flight > 0, what="attempts in flight")
            os.kill(before[0], signal.SIGKILL)

    await rx.wait_for_delivered(set(acknowledged), timeout=WAIT_DELIVERED_SECONDS)
    assert_per_order(rx.requests, contiguous=True)
    assert rx.max_in_flight <= MAX_CONCURRENCY
    rx.verify_all(hook["secret"])
    after = await wait_senders(server, SENDERS)
    assert before[0] not in after, "the killed sender was replaced"
    assert before[1] in after, "the other sender kept running"
    assert "sender process died; restarting it" in server.log_text()


async def test_sigterm_drains_and_stops_every_sender(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    senders = await wait_senders(server, SENDERS)
    rx.slow(1.0)
    await api.create_webhook(rx.url, [account], timeoutSeconds=10)
    ids = await api.new_orders(account, 3)
    await rx.wait_for(lambda: rx.in_flight == 3, what="3 attempts in flight")

    code = await asyncio.to_thread(server.terminate)
    assert code == 0, f"exit code {code} after SIGTERM"
    assert not [pid for pid in senders if psutil.pid_exists(pid)], "every sender exited"
    assert rx.delivered_ids() >= set(ids), "the attempts in flight finished"
    assert rx.abandoned() == [], "no attempt was cut short"


async def test_a_resend_after_a_sender_died_is_signed_afresh(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    # webhook-timestamp is the Unix time of each attempt (docs/events.md, signatures): the
    # copy a dead sender's request gets, a timeout later, is signed when it is sent.
    senders = await wait_senders(server, SENDERS)
    rx.fail_first(1, failure=Reply(ReplyKind.BLACK_HOLE))  # the first copy is never answered
    hook = await api.create_webhook(rx.url, [account], timeoutSeconds=TIMEOUT_SECONDS)
    [event_id] = await api.new_order(new_order(account))
    await rx.wait_for(lambda: rx.in_flight == 1, what="the first copy in flight")
    for pid in senders:
        os.kill(pid, signal.SIGKILL)

    await rx.wait_for_delivered({event_id}, timeout=WAIT_DELIVERED_SECONDS)
    first, second = rx.requests[:2]
    assert first.webhook_id == second.webhook_id == event_id
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"]), (
        "the resend carried the first copy's timestamp and signature"
    )
    rx.verify_all(hook["secret"])


async def test_a_hung_sender_is_replaced_and_its_requests_sent_again(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    # A sender that stops (SIGSTOP) keeps its channel open: nothing ever comes back from
    # it, so its attempts would hold their slots, and their orders, for ever.
    senders = await wait_senders(server, SENDERS)
    hook = await slowed_webhook(api, rx, account, 0.5)
    acknowledged = await api.new_orders(account, 8)
    await rx.wait_for(lambda: rx.in_flight >= 2, what="attempts in flight")
    os.kill(senders[0], signal.SIGSTOP)
    try:
        # Some go to the stopped sender too (the least busy one).
        acknowledged += await api.new_orders(account, 8)
        # What the stopped sender sent reached the receiver, but its answer never came
        # back: only the server's own record shows the attempt was finished.
        await api.wait_deliveries(
            hook["id"],
            lambda ds: len(ds) == len(acknowledged) and {d["state"] for d in ds} == {"delivered"},
            timeout=WAIT_AFTER_HANG_SECONDS,
            what="every delivery recorded as delivered",
        )
        after = await wait_senders(server, SENDERS)
        assert senders[0] not in after, "the hung sender was replaced"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(senders[0], signal.SIGKILL)
    assert "sender process hung; killing it" in server.log_text()


@pytest.mark.slow
async def test_no_copy_sent_again_outlasts_the_lease(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    # The webhook's longest timeout: a copy sent again after a hung sender is killed (its
    # timeout and HUNG_GRACE_SECONDS later) could not end before the lease (timeout + 30 s),
    # and the claim after the lease would send one of its own beside it.
    senders = await wait_senders(server, SENDERS)
    rx.slow(40)  # every copy waits until the sender gives up on it
    hook = await api.create_webhook(rx.url, [account], maxConcurrency=1, timeoutSeconds=30)
    await api.new_order(new_order(account))
    await rx.wait_for(lambda: rx.in_flight == 1, what="the first copy in flight")
    for pid in senders:
        os.kill(pid, signal.SIGSTOP)
    try:
        await api.wait_deliveries(
            hook["id"],
            lambda ds: ds[0]["attemptCount"] >= 1,
            timeout=120,
            what="an attempt recorded",
        )
    finally:
        for pid in senders:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert rx.max_in_flight == 1, "two copies of the delivery were in flight at once"


async def test_a_batch_in_flight_in_a_killed_sender_is_sent_again_signed_afresh(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    senders = await wait_senders(server, SENDERS)
    rx.fail_first(1, failure=Reply(ReplyKind.BLACK_HOLE))  # the first batch hangs
    # The batch goes when its 4 events are due, never by its wait: a wait as short as the
    # four ingests on a loaded host sends a partial first batch, and requests[1] is then
    # the rest of the events rather than the copy sent again.
    hook = await api.create_webhook(
        rx.url,
        [account],
        timeoutSeconds=TIMEOUT_SECONDS,
        batch={"maxEvents": 4, "maxWaitMs": BATCH_WAIT_NEVER_MS},
    )
    acknowledged = await api.new_orders(account, 4)
    await rx.wait_for(lambda: rx.in_flight == 1, what="the first batch in flight")
    for pid in senders:
        os.kill(pid, signal.SIGKILL)

    def delivered() -> set[str]:
        return {event["id"] for body in rx.events(accepted_only=True) for event in body["events"]}

    await rx.wait_for(lambda: delivered() >= set(acknowledged), timeout=WAIT_DELIVERED_SECONDS)
    first, second = rx.requests[:2]
    assert first.webhook_id == second.webhook_id and first.body == second.body
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    rx.verify_all(hook["secret"])


async def test_a_second_sigterm_stops_every_process_at_once(
    api: Api, server: ServerProcess, account: str, rx: Receiver
) -> None:
    senders = await wait_senders(server, SENDERS)
    rx.black_hole()
    await api.create_webhook(rx.url, [account], timeoutSeconds=30)
    await api.new_orders(account, 3)
    await rx.wait_for(lambda: rx.in_flight == 3, what="3 attempts in flight")
    os.kill(senders[0], signal.SIGSTOP)  # one of them will not exit by itself either
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    # This run's log: the module's earlier runs stopped with a "shutting down" too, and a
    # second signal sent before the first is taken merges with it (signals do not queue).
    await rx.wait_for(lambda: "shutting down" in server.run_log_text(), what="the drain")
    # The stopped sender alone takes EXIT_WAIT_SECONDS (5 s) before it is killed: 10 s left
    # a loaded host 5 s for the rest of the exit. 20 s is still short of the 30 s drain
    # that a second signal must cut.
    code = await asyncio.to_thread(server.terminate, SECOND_SIGTERM_EXIT_SECONDS)
    assert code == 0, f"exit code {code} after two signals"
    assert not [pid for pid in senders if psutil.pid_exists(pid)], "every sender exited"
