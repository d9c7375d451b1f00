"""Running the configured sources inside one process, and stopping them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from orderhooks.aio import until_done_or_set
from orderhooks.metrics import Metrics
from orderhooks.sources.config import SourceConfig
from orderhooks.sources.consumer import (
    STOP_TIMEOUT_SECONDS,
    Broker,
    IngestCall,
    SourceConsumer,
    SourceStatus,
    StoreCheck,
)


def broker_for(source: SourceConfig) -> Broker:
    """The broker half of a source; its client library is imported only when used."""
    if source.kind == "nats":
        from orderhooks.sources.nats import NatsBroker

        return NatsBroker(source)
    from orderhooks.sources.amqp import AmqpBroker

    return AmqpBroker(source)


@dataclass
class SourceSet:
    """The consumers of one process and their tasks."""

    consumers: Sequence[SourceConsumer]
    tasks: Sequence[asyncio.Task[None]]

    @property
    def statuses(self) -> list[SourceStatus]:
        """Each source's state and counters, in configuration order."""
        return [consumer.status for consumer in self.consumers]

    async def stop(
        self, wait_seconds: float = STOP_TIMEOUT_SECONDS, cut_short: asyncio.Event | None = None
    ) -> None:
        """Let each consumer finish its round (bounded, and no longer once `cut_short` is
        set: a second signal), then cancel what is left.

        Messages not yet acknowledged go back to their broker, to be delivered again.
        """
        for consumer in self.consumers:
            consumer.stop()
        if not self.tasks:
            return
        # Cut short, asyncio.wait is cancelled, and leaves the tasks running: cancelled below.
        await until_done_or_set(asyncio.wait(self.tasks, timeout=wait_seconds), cut_short)
        pending = [task for task in self.tasks if not task.done()]
        for task in pending:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def start_sources(
    sources: Sequence[SourceConfig],
    ingest: IngestCall,
    metrics: Metrics,
    max_message_bytes: int,
    store_check: StoreCheck | None = None,
) -> SourceSet:
    """Start one consumer task per source; `store_check` gates the rounds that have
    nothing to store (only dead letters)."""
    consumers = [
        SourceConsumer(
            broker=broker_for(source),
            status=SourceStatus(source),
            ingest=ingest,
            metrics=metrics,
            max_message_bytes=max_message_bytes,
            store_check=store_check,
        )
        for source in sources
    ]
    tasks = [
        asyncio.create_task(consumer.run(), name=f"source {consumer.source_id}")
        for consumer in consumers
    ]
    return SourceSet(consumers, tasks)
