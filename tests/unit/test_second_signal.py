"""The second signal during shutdown drops the store's connections, whichever step is
waiting on them. asyncpg hands a cancelled transaction's connection back to its pool
only once the server has heard the cancel request; a frozen host never hears it, so
the cancelled purge or drain would wait on it for as long as the host stays frozen
(tests/cluster/test_frozen_abort.py shows that wait with real asyncpg). The fakes here
stand for it: what they wait on ends only when the store is aborted."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from orderhooks.cli.runner import ShutdownSignals, _shut_down

STEP_SECONDS = 1.0


class FrozenStore:
    """A store whose transactions in flight end only when its connections are dropped."""

    def __init__(self) -> None:
        self.aborted = asyncio.Event()
        self.closed = False

    def abort(self) -> None:
        self.aborted.set()

    async def close(self) -> None:
        self.closed = True

    async def transaction(self, started: asyncio.Event) -> None:
        """A query, then the release: shielded in asyncpg, it waits for the abort once
        the query is cancelled."""
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.aborted.wait())


class StuckDispatcher:
    """A dispatcher whose stop waits on a transaction of the store."""

    def __init__(self, store: FrozenStore) -> None:
        self._store = store
        self.stopping = asyncio.Event()

    async def stop(self, drain_timeout: float) -> None:
        await self._store.transaction(self.stopping)


def shutdown(
    store: FrozenStore, signals: ShutdownSignals, *, dispatcher: Any = None, retention: Any = None
) -> asyncio.Task[None]:
    return asyncio.create_task(_shut_down(cast(Any, store), dispatcher, None, retention, signals))


def second_signal(signals: ShutdownSignals) -> None:
    signals.requested.set()
    signals.forced.set()


async def test_a_second_signal_ends_a_purge_waiting_on_a_frozen_host() -> None:
    store, signals, started = FrozenStore(), ShutdownSignals(), asyncio.Event()
    retention = asyncio.create_task(store.transaction(started))
    await asyncio.wait_for(started.wait(), STEP_SECONDS)
    stopping = shutdown(store, signals, retention=retention)
    await asyncio.sleep(0.1)
    assert not stopping.done()  # the cancelled purge waits on the frozen host
    second_signal(signals)
    await asyncio.wait_for(stopping, STEP_SECONDS)
    assert store.aborted.is_set() and store.closed


async def test_a_second_signal_ends_a_drain_waiting_on_a_frozen_host() -> None:
    store, signals = FrozenStore(), ShutdownSignals()
    dispatcher = StuckDispatcher(store)
    stopping = shutdown(store, signals, dispatcher=dispatcher)
    await asyncio.wait_for(dispatcher.stopping.wait(), STEP_SECONDS)
    second_signal(signals)
    await asyncio.wait_for(stopping, STEP_SECONDS)
    assert store.aborted.is_set() and store.closed


async def test_without_a_second_signal_the_store_is_closed_not_aborted() -> None:
    store, signals = FrozenStore(), ShutdownSignals()

    class Drained:
        async def stop(self, drain_timeout: float) -> None:
            return None

    await asyncio.wait_for(shutdown(store, signals, dispatcher=Drained()), STEP_SECONDS)
    assert store.closed and not store.aborted.is_set()
