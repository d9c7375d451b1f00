"""The load generator: a process of its own that posts orders and status updates.

`python -m bench.loadgen CONFIG.json` runs one load as configured (see `LoadConfig`)
and writes two files: the acknowledgements, one `<unix time> <event id>` line per
event acknowledged (the join key of the latency measurement), and a JSON summary.

Modes: `orders` (one order or status update per request), `batch` (`POST /v1/events`
with `batch_size` items), and `raw` (envelope-shaped bodies posted straight to the
receiver with a `webhook-id` header: the ceiling, with no service in between; the
"acknowledgement" time there is when the request was sent).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.aio import run_async
from bench.workload import Batch, Workload

ACK_FLUSH_LINES = 20_000
ERROR_BACKOFF_SECONDS = 0.05
REQUEST_TIMEOUT_SECONDS = 120
MAX_ERROR_SAMPLES = 5


@dataclass
class LoadConfig:
    """What one load generator run does."""

    target: str
    mode: str
    acks_path: str
    summary_path: str
    api_key: str = ""
    raw_urls: list[str] = field(default_factory=list)
    concurrency: int = 32
    batch_size: int = 100
    status_ratio: float = 0.4
    rate: float = 0.0  # requests per second; 0 sends as fast as answers come
    duration: float = 0.0  # seconds; 0 means until max_events
    max_events: int = 0  # 0 means until the duration ends
    run_id: str = "0"


def percentile(values: list[float], fraction: float) -> float | None:
    """The value below which `fraction` of `values` fall (nearest rank), or None."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


class LoadGenerator:
    """Runs `concurrency` senders until the duration or the event budget is spent."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.workload = Workload(config.run_id, status_ratio=config.status_ratio)
        self.requests = 0
        self.events = 0
        self.reserved_events = 0
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.request_ms: list[float] = []
        self._ack_lines: list[str] = []
        self._ack_file = Path(config.acks_path).open("w")  # noqa: SIM115 - closed in run()
        self._slot = 0
        self._started = 0.0
        self._deadline = float("inf")
        self._headers = {"content-type": "application/json"}
        if config.api_key:
            self._headers["authorization"] = f"Bearer {config.api_key}"

    async def run(self) -> dict[str, Any]:
        """Send the load; returns the summary."""
        connector = aiohttp.TCPConnector(limit=self.config.concurrency, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        self._started = time.time()
        if self.config.duration > 0:
            self._deadline = self._started + self.config.duration
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            senders = [self._sender(session) for _ in range(self.config.concurrency)]
            await asyncio.gather(*senders)
        finished = time.time()
        self._flush_acks()
        self._ack_file.close()
        return self._summary(finished)

    def _summary(self, finished: float) -> dict[str, Any]:
        elapsed = max(finished - self._started, 1e-9)
        return {
            "config": asdict(self.config),
            "requests": self.requests,
            "events": self.events,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "started_at": self._started,
            "finished_at": finished,
            "elapsed_seconds": elapsed,
            "events_per_second": self.events / elapsed,
            "request_ms_p50": percentile(self.request_ms, 0.50),
            "request_ms_p99": percentile(self.request_ms, 0.99),
        }

    def _take_budget(self, wanted: int) -> int:
        """Reserve up to `wanted` events of the budget; 0 when the load is over."""
        if time.time() >= self._deadline:
            return 0
        if self.config.max_events <= 0:
            return wanted
        granted = min(wanted, self.config.max_events - self.reserved_events)
        self.reserved_events += max(granted, 0)
        return max(granted, 0)

    async def _pace(self) -> None:
        """Open-loop pacing: request i is due at start + i / rate."""
        if self.config.rate <= 0:
            return
        due = self._started + self._slot / self.config.rate
        self._slot += 1
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _sender(self, session: aiohttp.ClientSession) -> None:
        send = {"orders": self._send_one, "batch": self._send_batch, "raw": self._send_raw}[
            self.config.mode
        ]
        while True:
            budget = self._take_budget(self.config.batch_size if self.config.mode == "batch" else 1)
            if budget <= 0:
                return
            await self._pace()
            if time.time() >= self._deadline:
                return
            await send(session, budget)

    async def _post(
        self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[float, dict[str, Any] | None]:
        """POST and return (acknowledgement time, JSON answer) or None on failure."""
        sent = time.time()
        try:
            async with session.post(url, data=body, headers=headers) as answer:
                raw = await answer.read()
                acked = time.time()
                self.requests += 1
                self.request_ms.append((acked - sent) * 1000)
                if 200 <= answer.status < 300:
                    parsed: dict[str, Any] = orjson.loads(raw) if raw else {}
                    return acked, parsed
                self._error(str(answer.status), raw[:300].decode(errors="replace"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._error(type(exc).__name__, str(exc)[:300])
        await asyncio.sleep(ERROR_BACKOFF_SECONDS)
        return time.time(), None

    def _error(self, kind: str, sample: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {sample}")

    async def _send_one(self, session: aiohttp.ClientSession, _budget: int) -> None:
        if self.workload.wants_status_update():
            order_id, step, update = self.workload.status_update()
            url = f"{self.config.target}/v1/orders/{order_id}/status"
            acked, answer = await self._post(session, url, orjson.dumps(update), self._headers)
            if answer is not None:
                self.workload.acknowledged([], [(order_id, step)])
        else:
            order = self.workload.new_order()
            url = f"{self.config.target}/v1/orders"
            acked, answer = await self._post(session, url, orjson.dumps(order), self._headers)
            if answer is not None:
                self.workload.acknowledged([order["_id"]], [])
        if answer is not None:
            self._acknowledge(acked, answer.get("eventIds", []))

    async def _send_batch(self, session: aiohttp.ClientSession, budget: int) -> None:
        batch: Batch = self.workload.batch(budget)
        url = f"{self.config.target}/v1/events"
        acked, answer = await self._post(session, url, orjson.dumps(batch.items), self._headers)
        if answer is not None:
            self.workload.acknowledged(batch.new_ids, batch.updates)
            self._acknowledge(acked, answer.get("eventIds", []))

    async def _send_raw(self, session: aiohttp.ClientSession, _budget: int) -> None:
        order = self.workload.new_order()
        event_id = f"raw_{order['_id']}"
        envelope = {
            "id": event_id,
            "type": "order.new",
            "timestamp": order["_created"],
            "account": order["account"],
            "location": order["location"],
            "orderId": order["_id"],
            "sequence": 1,
            "test": False,
            "data": order,
        }
        headers = {"content-type": "application/json", "webhook-id": event_id}
        url = self.config.raw_urls[self.requests % len(self.config.raw_urls)]
        sent = time.time()
        _, answer = await self._post(session, url, orjson.dumps(envelope), headers)
        if answer is not None:
            self._acknowledge(sent, [event_id])

    def _acknowledge(self, acked: float, event_ids: list[str]) -> None:
        self.events += len(event_ids)
        stamp = f"{acked:.6f} "
        self._ack_lines.extend(stamp + event_id + "\n" for event_id in event_ids)
        if len(self._ack_lines) >= ACK_FLUSH_LINES:
            self._flush_acks()

    def _flush_acks(self) -> None:
        self._ack_file.writelines(self._ack_lines)
        self._ack_lines.clear()


def read_acks(path: Path) -> dict[str, float]:
    """The acknowledgement file as `{event id: unix time}`."""
    acks: dict[str, float] = {}
    with path.open("rb") as handle:
        for line in handle:
            at, _, event_id = line.rstrip(b"\n").partition(b" ")
            if event_id:
                acks[event_id.decode()] = float(at)
    return acks


def main() -> None:
    """Run the load described by the JSON file named on the command line."""
    config = LoadConfig(**orjson.loads(Path(sys.argv[1]).read_bytes()))
    summary = run_async(LoadGenerator(config).run())
    Path(config.summary_path).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
