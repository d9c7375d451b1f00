"""Retries (docs/guarantees.md, retries and manual control): Retry-After, the last attempt, attempt
errors, retry now, recover, replay, and secret rotation with a grace period.

The module's server retries after 1, 1, 1 seconds without jitter, so every wait below
is a few seconds at most.
"""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from orderhooks.testing import Receiver, signature_problem
from orderhooks.testing.server import free_port
from tests.e2e.support import states
from tests.support.api import Api, expect, poll
from tests.support.data import new_order

# Arrival times are taken on another clock than the server's timers: allow this much.
CLOCK_SLACK_SECONDS = 0.15
SETTLE_SECONDS = 1.5


def rfc3339(moment: datetime) -> str:
    """A time in the API's format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def gap_between_first_two_attempts(
    api: Api, rx: Receiver, account: str, **webhook_fields: Any
) -> float:
    """Create a webhook, ingest one order, and measure the gap between attempts 1 and 2."""
    hook = await api.create_webhook(rx.url, [account], **webhook_fields)
    ids = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(ids), timeout=20)
    first, second = rx.requests[0], rx.requests[1]
    assert (first.attempt, second.attempt) == (1, 2)
    rx.verify_all(hook["secret"])
    return second.arrived_monotonic - first.arrived_monotonic


async def test_429_retry_after_is_honoured(api: Api, account: str, rx: Receiver) -> None:
    rx.fail_first(1, status=429, headers={"Retry-After": "3"})
    gap = await gap_between_first_two_attempts(api, rx, account)
    assert gap >= 3 - CLOCK_SLACK_SECONDS, f"retried {gap:.2f} s after a 429 with Retry-After: 3"
    assert gap < 3 + 3, f"retried only {gap:.2f} s later"


async def test_503_retry_after_is_honoured(api: Api, account: str, rx: Receiver) -> None:
    rx.fail_first(1, status=503, headers={"Retry-After": "2"})
    gap = await gap_between_first_two_attempts(api, rx, account)
    assert gap >= 2 - CLOCK_SLACK_SECONDS, f"retried {gap:.2f} s after a 503 with Retry-After: 2"
    assert gap < 2 + 3


async def test_retry_after_as_an_http_date(api: Api, account: str, rx: Receiver) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    rx.fail_first(1, status=503, headers={"Retry-After": when})
    gap = await gap_between_first_two_attempts(api, rx, account)
    # The date has whole seconds: the wait is at least 3 s of the 4 asked.
    assert gap >= 3 - CLOCK_SLACK_SECONDS, f"retried {gap:.2f} s after Retry-After: {when}"


async def test_longer_schedule_wins_over_retry_after(api: Api, account: str, rx: Receiver) -> None:
    rx.fail_first(1, status=429, headers={"Retry-After": "1"})
    gap = await gap_between_first_two_attempts(api, rx, account, retrySchedule=[3])
    assert gap >= 3 - CLOCK_SLACK_SECONDS, f"retried {gap:.2f} s later; the schedule says 3 s"


@pytest.mark.parametrize("retry_after", ["1" + "0" * 400, "9" * 5000])
async def test_a_retry_after_too_large_for_a_number_waits_the_cap(
    api: Api, account: str, rx: Receiver, retry_after: str
) -> None:
    # Digits beyond a float (or beyond Python's 4,300-digit conversion limit) raised while
    # the attempt's outcome was decided: the outcome was never recorded, the delivery
    # stayed `delivering` and its lease sent it again and again, past its schedule.
    rx.throttle(429, retry_after=retry_after)
    hook = await api.create_webhook(rx.url, [account])
    await api.new_order(new_order(account))
    [delivery] = await api.wait_deliveries(
        hook["id"],
        lambda ds: [(d["state"], d["attemptCount"]) for d in ds] == [("pending", 1)],
        timeout=10,
        what="the first attempt recorded",
    )
    detail = await api.delivery(delivery["id"])
    assert [(a["statusCode"], a["error"]) for a in detail["attempts"]] == [(429, "http_status")]
    started = datetime.fromisoformat(detail["attempts"][0]["startedAt"])
    waited = datetime.fromisoformat(delivery["nextAttemptAt"]) - started
    assert timedelta(hours=23, minutes=59) < waited <= timedelta(hours=24, seconds=5)


async def test_failed_after_the_last_attempt(api: Api, account: str, rx: Receiver) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account])  # the server's schedule: 1,1,1
    ids = await api.new_order(new_order(account))
    deliveries = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"failed": 1}, timeout=20, what="failed"
    )
    await asyncio.sleep(SETTLE_SECONDS)
    assert [r.attempt for r in rx.requests] == [1, 2, 3, 4], "3 retries, then no more"
    assert {r.webhook_id for r in rx.requests} == set(ids)
    delivery = await api.delivery(deliveries[0]["id"])
    assert delivery["attemptCount"] == 4
    assert [(a["statusCode"], a["error"]) for a in delivery["attempts"]] == [
        (500, "http_status")
    ] * 4
    assert delivery["nextAttemptAt"] is None
    rx.verify_all(hook["secret"])


async def test_attempt_errors(api: Api, account: str) -> None:
    async with Receiver() as redirect, Receiver() as reset, Receiver() as hole:
        redirect.redirect()
        reset.reset_connections()
        hole.black_hole()
        urls = {
            "redirect": redirect.url,
            "connection_error": reset.url,
            "timeout": hole.url,
            "refused": f"http://127.0.0.1:{free_port()}/hook",
        }
        hooks = {
            name: await api.create_webhook(url, [account], retrySchedule=[], timeoutSeconds=1)
            for name, url in urls.items()
        }
        await api.new_order(new_order(account))
        for name, hook in hooks.items():
            deliveries = await api.wait_deliveries(
                hook["id"], lambda ds: states(ds) == {"failed": 1}, what=f"{name} failed"
            )
            attempts = (await api.delivery(deliveries[0]["id"]))["attempts"]
            assert len(attempts) == 1, name
            expected_error = "connection_error" if name == "refused" else name
            assert attempts[0]["error"] == expected_error, (name, attempts)
            expected_status = 302 if name == "redirect" else None
            assert attempts[0]["statusCode"] == expected_status, (name, attempts)
        assert [r.path for r in redirect.requests] == ["/hook"], "redirects are never followed"
        redirect.verify_all(hooks["redirect"]["secret"])
        reset.verify_all(hooks["connection_error"]["secret"])
        hole.verify_all(hooks["timeout"]["secret"])


async def test_retry_now(api: Api, account: str, rx: Receiver) -> None:
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[])
    ids = await api.new_order(new_order(account))
    [failed] = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"failed": 1}, what="failed"
    )
    rx.healthy()
    expect(await api.client.post(f"/v1/deliveries/{failed['id']}/retry"), 202)
    await rx.wait_for_delivered(set(ids))
    assert [(r.attempt, r.webhook_id, r.delivery_id) for r in rx.requests] == [
        (1, ids[0], failed["id"]),
        (2, ids[0], failed["id"]),
    ]
    delivered = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"delivered": 1}, what="delivered"
    )
    assert delivered[0]["attemptCount"] == 2
    rx.verify_all(hook["secret"])


async def fail_one_order(api: Api, rx: Receiver, hook_id: str, account: str) -> str:
    """Ingest an order whose delivery fails its whole schedule, then let one test delivery
    succeed, so that the webhook's failures never run long enough for it to be probed."""
    rx.answer(500)
    [event_id] = await api.new_order(new_order(account))
    await api.wait_deliveries(
        hook_id,
        lambda ds: any(d["eventId"] == event_id and d["state"] == "failed" for d in ds),
        what=f"{event_id} failed",
    )
    rx.healthy()
    test = await api.client.post(f"/v1/webhooks/{hook_id}/test", json={"type": "order.new"})
    test_id = expect(test, 202)["deliveryId"]
    await rx.wait_for(
        lambda: any(r.delivery_id == test_id for r in rx.accepted()), what="test delivery"
    )
    # The success counts for the webhook's health once its outcome is recorded, a moment
    # after the receiver answered.
    await poll(
        lambda: api.delivery(test_id),
        lambda delivery: delivery["state"] == "delivered",
        15.0,
        "the test delivery recorded",
    )
    return event_id


@pytest.mark.slow
async def test_recover_a_time_range(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[1])
    start = datetime.now(UTC) - timedelta(seconds=1)
    early = [await fail_one_order(api, rx, hook["id"], account) for _ in range(2)]
    await asyncio.sleep(0.3)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.3)
    late = await fail_one_order(api, rx, hook["id"], account)
    deliveries = [d for d in await api.deliveries(hook["id"]) if not d["test"]]
    assert states(deliveries) == {"failed": 3}
    assert all(d["attemptCount"] == 2 for d in deliveries)

    # Each recovered delivery gets the whole schedule again: fail once more, then succeed.
    rx.fail_first(1, per_delivery=True)
    body = {"since": rfc3339(start), "until": rfc3339(middle)}
    recovered = await api.client.post(f"/v1/webhooks/{hook['id']}/recover", json=body)
    assert expect(recovered, 200)["requeued"] == 2
    await rx.wait_for_delivered(set(early), timeout=20)
    # Recorded a moment after the receiver answered; no attempt follows a recorded success.
    await api.wait_deliveries(
        hook["id"],
        lambda ds: all(d["state"] == "delivered" for d in ds if d["eventId"] in early),
        what="the recovered deliveries recorded",
    )
    await asyncio.sleep(SETTLE_SECONDS)
    assert late not in rx.delivered_ids(), "outside the range: still failed"
    for event_id in early:
        assert [r.attempt for r in rx.requests if r.webhook_id == event_id] == [1, 2, 3, 4]
    by_event = {d["eventId"]: d for d in await api.deliveries(hook["id"]) if not d["test"]}
    assert by_event[late]["state"] == "failed"
    assert all(by_event[i]["state"] == "delivered" for i in early)
    assert {by_event[i]["id"] for i in early} == {
        d["id"] for d in deliveries if d["eventId"] in early
    }, "recovered deliveries keep their ids"

    recovered = await api.client.post(
        f"/v1/webhooks/{hook['id']}/recover", json={"since": rfc3339(middle)}
    )
    assert expect(recovered, 200)["requeued"] == 1
    await rx.wait_for_delivered({late}, timeout=20)
    rx.verify_all(hook["secret"])


async def test_replay(api: Api, account: str, rx: Receiver) -> None:
    since = rfc3339(datetime.now(UTC) - timedelta(seconds=1))
    hook = await api.create_webhook(
        rx.url, [account], eventTypes=["order.new", "order.status_update"], retrySchedule=[]
    )
    order = new_order(account)
    delivered = await api.new_order(order)
    await rx.wait_for_delivered(set(delivered))
    rx.answer(500)
    failed = await api.status(order["_id"], 20)
    await api.courier(order["_id"], 83)  # not in the webhook's eventTypes
    await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"delivered": 1, "failed": 1}, what="1 failed"
    )
    rx.healthy()
    replay = await api.client.post(f"/v1/webhooks/{hook['id']}/replay", json={"since": since})
    assert expect(replay, 200)["queued"] == 2
    await rx.wait_for_delivered(set(delivered + failed))
    await rx.wait_for(lambda: len(rx.accepted()) == 3, what="both replayed")
    replays = [r for r in rx.requests if r.index >= 2]
    assert [r.webhook_id for r in replays] == delivered + failed, "same webhook-id, in order"
    all_deliveries = await api.wait_deliveries(
        hook["id"], lambda ds: states(ds) == {"delivered": 3, "failed": 1}, what="replays done"
    )
    replayed = [d for d in all_deliveries if d["replay"]]
    assert sorted(d["eventId"] for d in replayed) == sorted(delivered + failed)
    assert all(d["state"] == "delivered" for d in replayed)
    assert {r.delivery_id for r in replays} == {d["id"] for d in replayed}, "new deliveries"
    assert states(d for d in all_deliveries if not d["replay"]) == {"delivered": 1, "failed": 1}

    only_updates = {"since": since, "eventTypes": ["order.status_update"]}
    replay = await api.client.post(f"/v1/webhooks/{hook['id']}/replay", json=only_updates)
    assert expect(replay, 200)["queued"] == 1
    await rx.wait_for(lambda: len(rx.accepted()) == 4, what="the status update replayed")
    assert rx.accepted()[-1].webhook_id == failed[0]
    rx.verify_all(hook["secret"])


async def test_secret_rotation_with_grace(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    old = hook["secret"]
    rotate = await api.client.post(
        f"/v1/webhooks/{hook['id']}/secret/rotate", json={"gracePeriodSeconds": 60}
    )
    new = expect(rotate, 200)["secret"]
    assert new != old
    ids = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(ids))
    [request] = rx.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert signature_problem(request, old, hex_secret=new) is None, "the old secret verifies"
    assert signature_problem(request, new) is None, "the new secret verifies"
    assert signature_problem(request, old) is not None, "the hex header uses the newest"
    path = f"/v1/webhooks/{hook['id']}/secret"
    assert expect(await api.client.get(path), 200)["secret"] == new


async def test_secret_rotation_without_grace(api: Api, account: str, rx: Receiver) -> None:
    hook = await api.create_webhook(rx.url, [account])
    chosen = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    rotate = await api.client.post(
        f"/v1/webhooks/{hook['id']}/secret/rotate",
        json={"secret": chosen, "gracePeriodSeconds": 0},
    )
    assert expect(rotate, 200)["secret"] == chosen
    ids = await api.new_order(new_order(account))
    await rx.wait_for_delivered(set(ids))
    [request] = rx.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert signature_problem(request, chosen) is None
    assert signature_problem(request, hook["secret"], hex_secret=chosen) is not None
    rx.verify_all(chosen)


async def test_retry_now_and_a_test_event_go_at_once_while_the_webhook_is_probed(
    api: Api, account: str, rx: Receiver
) -> None:
    # Three failed attempts in a row: the webhook is probed, and its next probe is the
    # first failed delivery's retry, an hour away. The receiver is fixed; a retry now and
    # a test event are sent now, not at that probe (docs/guarantees.md, manual control).
    rx.answer(500)
    hook = await api.create_webhook(rx.url, [account], retrySchedule=[3600])
    await api.new_orders(account, 3)
    failed = await api.wait_deliveries(
        hook["id"],
        lambda ds: len(ds) == 3 and all(d["attemptCount"] == 1 for d in ds),
        what="three failed attempts",
    )
    rx.healthy()
    retried = failed[0]
    expect(await api.client.post(f"/v1/deliveries/{retried['id']}/retry"), 202)
    await rx.wait_for_delivered({retried["eventId"]}, timeout=15)

    rx.answer(500)
    await api.new_orders(account, 3)
    await api.wait_deliveries(
        hook["id"],
        lambda ds: sum(d["attemptCount"] == 1 and d["state"] == "pending" for d in ds) == 5,
        what="three more failed attempts",
    )
    rx.healthy()
    test = expect(await api.client.post(f"/v1/webhooks/{hook['id']}/test"), 202)
    await rx.wait_for(
        lambda: any(r.delivery_id == test["deliveryId"] for r in rx.accepted()),
        what="the test event",
        timeout=15,
    )
    rx.verify_all(hook["secret"])


async def test_a_probed_webhook_moved_to_another_url_is_sent_there_at_once(
    api: Api, account: str, rx: Receiver
) -> None:
    # The old endpoint failed three times in a row: the webhook is probed, its next probe
    # an hour away. Pointed at a receiver that works, it delivers there now.
    async with Receiver() as broken:
        broken.answer(500)
        hook = await api.create_webhook(broken.url, [account], retrySchedule=[3600])
        ids = [event_id for _ in range(3) for event_id in await api.new_order(new_order(account))]
        await api.wait_deliveries(
            hook["id"],
            lambda ds: len(ds) == 3 and all(d["attemptCount"] == 1 for d in ds),
            what="three failed attempts",
        )
    expect(await api.client.patch(f"/v1/webhooks/{hook['id']}", json={"url": rx.url}), 200)
    [late] = await api.new_order(new_order(account))
    await rx.wait_for_delivered({late}, timeout=15)
    assert set(rx.delivered_ids()) <= {late, *ids}
    rx.verify_all(hook["secret"])
