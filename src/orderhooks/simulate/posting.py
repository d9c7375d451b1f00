"""Posting simulated events to the ingest API, one request each or in batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

BATCH_MAX_ITEMS = 100
BATCH_INTERVAL_SECONDS = 0.1
RATE_WINDOW_SECONDS = 5.0
ERROR_TEXT_CHARS = 200


@dataclass
class SimulationStats:
    """Counters shown live and in the summary."""

    started_at: float = field(default_factory=time.monotonic)
    orders_started: int = 0
    orders_finished: int = 0
    orders_cancelled: int = 0
    orders_abandoned: int = 0
    requests_ok: int = 0
    requests_failed: int = 0
    events_posted: int = 0
    last_error: str = ""
    _recent: deque[tuple[float, int]] = field(default_factory=deque)

    def accepted(self, events: int) -> None:
        """Count one acknowledged request that created `events` events."""
        self.requests_ok += 1
        self.events_posted += events
        self._recent.append((time.monotonic(), events))

    def failed(self, reason: str) -> None:
        """Count one request the server refused or never answered."""
        self.requests_failed += 1
        self.last_error = reason[:ERROR_TEXT_CHARS]

    def recent_rate(self) -> float:
        """Events per second over the last few seconds."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - RATE_WINDOW_SECONDS:
            self._recent.popleft()
        window = min(RATE_WINDOW_SECONDS, max(now - self.started_at, 1e-3))
        return sum(n for _, n in self._recent) / window

    @property
    def in_progress(self) -> int:
        """Orders started and not yet finished, cancelled or abandoned."""
        ended = self.orders_finished + self.orders_cancelled + self.orders_abandoned
        return self.orders_started - ended

    @property
    def elapsed(self) -> float:
        """Seconds since the simulation started."""
        return time.monotonic() - self.started_at

    @property
    def mostly_failed(self) -> bool:
        """Whether most requests failed: the run did not do its job."""
        return self.requests_failed > self.requests_ok


class Poster(Protocol):
    """Sends one event of an order; True when the server acknowledged it."""

    async def send(self, event_type: str, order_id: str, body: dict[str, Any]) -> bool:
        """Post the event; wait for the server's answer."""
        ...

    async def close(self) -> None:
        """Send what is still queued."""
        ...


async def post_json(
    session: aiohttp.ClientSession, url: str, payload: object, stats: SimulationStats
) -> bool:
    """POST JSON; count the outcome; True on 2xx."""
    try:
        async with session.post(
            url, data=orjson.dumps(payload), headers={"content-type": "application/json"}
        ) as response:
            text = await response.text()
            if response.status >= 300:
                stats.failed(f"{response.status} {url.rsplit('/v1/', 1)[-1]}: {text}")
                return False
            answer: Any = orjson.loads(text) if text else {}
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        stats.failed(f"{type(exc).__name__}: {exc}")
        return False
    event_ids = answer.get("eventIds", []) if isinstance(answer, dict) else []
    stats.accepted(len(event_ids) if isinstance(event_ids, list) else 0)
    return True


class DirectPoster:
    """One request per event, to the endpoint of its type."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, stats: SimulationStats):
        self._session = session
        self._base = base_url.rstrip("/")
        self._stats = stats

    async def send(self, event_type: str, order_id: str, body: dict[str, Any]) -> bool:
        """Post to /v1/orders, or its status or courier endpoint."""
        path = {
            "order.new": "/v1/orders",
            "order.status_update": f"/v1/orders/{order_id}/status",
            "order.courier_update": f"/v1/orders/{order_id}/courier",
        }[event_type]
        return await post_json(self._session, self._base + path, body, self._stats)

    async def close(self) -> None:
        """Nothing is queued."""


class BatchPoster:
    """Events of all orders gathered into `POST /v1/events` batches.

    One batch is in flight at a time: a status update must never reach the server before
    the batch that creates its order, and each order waits for its own acknowledgement
    before its next step anyway.
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str, stats: SimulationStats):
        self._session = session
        self._url = base_url.rstrip("/") + "/v1/events"
        self._stats = stats
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[bool]]] = asyncio.Queue()
        self._flusher = asyncio.create_task(self._flush_forever())

    async def send(self, event_type: str, order_id: str, body: dict[str, Any]) -> bool:
        """Queue the event for the next batch and wait for that batch's answer."""
        item: dict[str, Any] = {"type": event_type, "data": body}
        if event_type != "order.new":
            item["orderId"] = order_id
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, done))
        return await done

    async def close(self) -> None:
        """Stop batching; whoever still waits is told the event was not sent."""
        self._flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._flusher
        while not self._queue.empty():
            _, done = self._queue.get_nowait()
            if not done.done():
                done.set_result(False)

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(BATCH_INTERVAL_SECONDS)  # let a batch gather
            while len(batch) < BATCH_MAX_ITEMS and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            ok = False
            try:
                items = [item for item, _ in batch]
                ok = await post_json(self._session, self._url, items, self._stats)
            finally:  # also when cancelled: nobody may wait forever
                for _, done in batch:
                    if not done.done():
                        done.set_result(ok)
