"""`orderhooks receive`: a local receiver for development.

It verifies both signature headers of every request (docs/events.md, signatures) with the webhook's
secret, answers 401 with a short reason when they are missing or wrong, else the
configured status, and prints one line per event: type, order, sequence, status,
attempt, and how long after the event's creation it arrived. A batch body is verified
once and shown event by event, each line naming its batch.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from rich.console import Console
from rich.text import Text

from orderhooks.clock import Clock, utc_now
from orderhooks.delivery.signing import verify
from orderhooks.domain.lenient import int_or_none, timestamp_or_none
from orderhooks.domain.statuses import CourierStatus, OrderStatus

SIGNATURE_TOLERANCE_SECONDS = 300  # the Standard Webhooks default
MAX_BODY_BYTES = 4 * 1024 * 1024
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
HEX_HEADER = "x-server-authorization-hmac-sha256"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """What the receiver shows of one accepted request."""

    event_id: str
    event_type: str
    order_id: str | None
    sequence: int | None
    status: int | None
    attempt: str
    delay_seconds: float | None
    test: bool
    batch_id: str | None = None  # the batch it came in, if it came in one
    # Operational events: the webhook they are about, and why (reason or last error).
    about: str | None = None


def rejection_reason(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime
) -> str | None:
    """Why a request must be refused (401), or None when both signatures are valid."""
    for name in (*STANDARD_HEADERS, HEX_HEADER):
        if not headers.get(name):
            return f"missing {name} header"
    try:
        sent_at = int(headers["webhook-timestamp"])
    except ValueError:
        return "webhook-timestamp is not an integer"
    try:
        skew = abs(now.timestamp() - sent_at)
    except OverflowError:  # an integer no float can hold: far outside any tolerance
        return "webhook-timestamp outside the tolerance"
    if skew > SIGNATURE_TOLERANCE_SECONDS:
        return "webhook-timestamp outside the tolerance"
    if not verify(secret, headers, body, SIGNATURE_TOLERANCE_SECONDS, now=now.timestamp()):
        return "signature does not match"
    return None


def describe_all(headers: Mapping[str, str], body: bytes, now: datetime) -> list[ReceivedEvent]:
    """The events of one request: each event of a batch body (docs/events.md, "Batches"),
    else the one event of an envelope or raw body."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    payload: Mapping[str, Any] = parsed if isinstance(parsed, dict) else {}
    events = payload.get("events")
    if payload.get("type") != "batch" or not isinstance(events, list):
        return [describe_payload(headers, payload, now)]
    batch_id = str(payload.get("id") or headers.get("webhook-id", ""))
    return [
        replace(
            describe_payload(headers, event if isinstance(event, dict) else {}, now),
            event_id=str(event.get("id", "")) if isinstance(event, dict) else "",
            batch_id=batch_id,
        )
        for event in events
    ]


def describe(headers: Mapping[str, str], body: bytes, now: datetime) -> ReceivedEvent:
    """Read the event out of an envelope body or, for `raw` webhooks, the data alone."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    payload: Mapping[str, Any] = parsed if isinstance(parsed, dict) else {}
    return describe_payload(headers, payload, now)


def describe_payload(
    headers: Mapping[str, str], payload: Mapping[str, Any], now: datetime
) -> ReceivedEvent:
    """The event of one parsed envelope or, for `raw` webhooks, of the data alone."""
    is_envelope = "data" in payload and "type" in payload and "sequence" in payload
    data = payload.get("data") if is_envelope else payload
    data = data if isinstance(data, dict) else {}
    order_id = payload.get("orderId") if is_envelope else (data.get("orderId") or data.get("_id"))
    return ReceivedEvent(
        event_id=headers.get("webhook-id", ""),
        event_type=str(payload.get("type") or headers.get("orderhooks-event-type", "?")),
        order_id=str(order_id) if order_id is not None else None,
        sequence=int_or_none(payload.get("sequence")),
        status=int_or_none(data.get("status")),
        attempt=headers.get("orderhooks-attempt", "?"),
        delay_seconds=_delay(payload.get("timestamp"), now) if is_envelope else None,
        test=bool(payload.get("test", False)),
        about=_operational_about(data) if is_envelope and data.get("webhookId") else None,
    )


def _operational_about(data: Mapping[str, Any]) -> str:
    """`wh_… (reason)` of an operational event's data: which webhook, and why."""
    why = data.get("reason") or data.get("lastError") or data.get("lastStatusCode")
    return f"{data.get('webhookId')}" + (f" ({why})" if why is not None else "")


def _delay(timestamp: object, now: datetime) -> float | None:
    created = timestamp_or_none(timestamp, naive_zone=UTC)
    return None if created is None else (now - created).total_seconds()


def status_name(event_type: str, status: int | None) -> str:
    """`20 ACCEPTED`, or the bare number for a status without a name."""
    if status is None:
        return "-"
    names: type[OrderStatus] | type[CourierStatus] = (
        CourierStatus if event_type == "order.courier_update" else OrderStatus
    )
    try:
        return f"{status} {names(status).name}"
    except ValueError:
        return str(status)


def event_line(event: ReceivedEvent, at: datetime) -> Text:
    """One printed line for an accepted event."""
    line = Text()
    line.append(at.strftime("%H:%M:%S.%f")[:-3], style="dim")
    line.append(f"  {event.event_type:<22}", style="bold cyan")
    line.append(f" order {event.order_id or '-'}")
    line.append(f"  seq {event.sequence if event.sequence is not None else '-'}")
    line.append(f"  status {status_name(event.event_type, event.status)}", style="green")
    line.append(f"  attempt {event.attempt}")
    if event.delay_seconds is not None:
        line.append(f"  {event.delay_seconds * 1000:+.0f} ms", style="yellow")
    if event.test:
        line.append("  [test]", style="magenta")
    if event.about is not None:
        line.append(f"  about {event.about}", style="red")
    line.append(f"  {event.event_id}", style="dim")
    if event.batch_id is not None:
        line.append(f"  in {event.batch_id}", style="dim")
    return line


def rejection_line(reason: str, headers: Mapping[str, str], at: datetime) -> Text:
    """One printed line for a refused request."""
    line = Text()
    line.append(at.strftime("%H:%M:%S.%f")[:-3], style="dim")
    line.append("  rejected (401): ", style="bold red")
    line.append(reason)
    line.append(f"  {headers.get('webhook-id', '')}", style="dim")
    return line


def create_receiver_app(
    secret: str,
    status: int,
    on_line: Callable[[Text], None],
    clock: Clock = utc_now,
) -> web.Application:
    """The aiohttp application that checks, answers and reports each request."""

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        now = clock()
        reason = rejection_reason(secret, headers, body, now)
        if reason is not None:
            on_line(rejection_line(reason, headers, now))
            return web.json_response({"error": reason}, status=401)
        # One signature covers a whole batch: checked once above, then each event shown.
        for event in describe_all(headers, body, now):
            on_line(event_line(event, now))
        return web.json_response({"received": headers["webhook-id"]}, status=status)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("POST", "/{tail:.*}", receive)
    return app


def console_printer(console: Console) -> Callable[[Text], None]:
    """Print each line and flush at once, so the output follows events live through pipes."""

    def print_line(line: Text) -> None:
        console.print(line, soft_wrap=True)
        console.file.flush()

    return print_line


async def run_receiver(secret: str, host: str, port: int, status: int, console: Console) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code."""
    app = create_receiver_app(secret, status, console_printer(console))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"orderhooks: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print(
        Text(f"listening on http://{host}:{port}/ (answering {status}); Ctrl-C to stop", "bold")
    )
    console.file.flush()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    return 0
