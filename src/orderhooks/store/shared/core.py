"""What every operation of the store stands on: the engine, the webhook catalog, the
store's options, and the two ways an operation runs (`@reading`, `@writing`).

An operation is written once, as a method that takes the open transaction after `self`:

    @reading
    async def get_event(self, tx: Tx, event_id: str, scope: Scope) -> Event: ...

and callers call `store.get_event(event_id, scope)`: the decorator runs the body in one
transaction of the engine.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, Required, TypedDict, TypeVar

from orderhooks.domain import ids
from orderhooks.domain.ids import IdFactory
from orderhooks.secretbox import SecretBox
from orderhooks.store.shared.catalog import WebhookCatalog
from orderhooks.store.shared.tx import Engine, Job, Tx

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="StoreCore")

Operation = Callable[Concatenate[S, Tx, P], Coroutine[Any, Any, T]]
Bound = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]


class StoreOptions(TypedDict, total=False):
    """What a store is opened with, whatever its engine."""

    require_agreement: Required[bool]  # webhooks wait for their accounts' agreements
    disable_after_seconds: Required[int]  # a webhook failing this long is disabled
    new_id: IdFactory  # the ids of new deliveries (tests pass a predictable one)
    box: SecretBox  # seals secrets at rest (ORDERHOOKS_ENCRYPTION_KEYS); none: plaintext


class StoreCore:
    """The engine, the catalog and the options every operation may use."""

    def __init__(
        self,
        engine: Engine,
        *,
        require_agreement: bool,
        disable_after_seconds: int,
        new_id: IdFactory = ids.new_id,
        box: SecretBox | None = None,
    ) -> None:
        self.engine = engine
        self._require_agreement = require_agreement
        self._disable_after_seconds = disable_after_seconds
        self._new_id = new_id
        self.box = box if box is not None else SecretBox()
        self._catalog = WebhookCatalog(self.box)
        self._work = asyncio.Event()
        self._rotation = itertools.count()
        self._operational_listener: Callable[[Sequence[str]], None] | None = None

    # -- lifecycle

    async def open(self) -> None:
        """Connect (and, for SQLite, create the file). Does not migrate."""
        self._work = asyncio.Event()
        await self.engine.open(self._wake_workers)

    async def close(self) -> None:
        """Release connections; pending writes are committed first."""
        await self.engine.close()

    def abort(self) -> None:
        """Make a `close` in progress stop waiting on the database server."""
        self.engine.abort()

    async def migrate(self) -> list[str]:
        """Apply the migrations not applied yet; idempotent; returns the names applied."""
        return await self.engine.migrate()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        await self.engine.ping()

    @property
    def writes_in_turn(self) -> bool:
        """Whether the engine runs this process's write transactions one after another
        (SQLite's writer): the delivery worker then writes outcomes with its claims."""
        return self.engine.writes_in_turn

    # -- transactions

    async def _write(self, job: Job[T], *, wake: bool = False, durable: bool = True) -> T:
        """Run `job` in one write transaction, durable when this returns; with `wake`,
        wake the delivery workers (of every process) after the commit.

        `durable=False` is for the delivery bookkeeping (claims, outcomes): committed and
        visible at once, on disk no later than the next durable commit or a short bound
        (at-least-once delivery lets what finished in that interval be sent again)."""
        result = await self.engine.write(job, durable=durable)
        if wake:
            self._wake_workers()
            self.engine.work_created()
        return result

    async def _read(self, job: Job[T]) -> T:
        """Run `job` in one read-only transaction that sees one snapshot."""
        return await self.engine.read(job)

    # -- operational events

    def on_operational_events(self, listener: Callable[[Sequence[str]], None]) -> None:
        """Tell `listener` the types of the operational events each committed transaction
        of this process emitted (docs/events.md): the metrics count them."""
        self._operational_listener = listener

    def _emitted(self, event_types: Sequence[str]) -> None:
        """After the commit of operational events: tell the listener, wake the workers."""
        if not event_types:
            return
        if self._operational_listener is not None:
            self._operational_listener(event_types)
        self._wake_workers()
        self.engine.work_created()

    # -- waking the delivery workers

    def _wake_workers(self) -> None:
        """Wake `wait_for_work` in this process."""
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - engines wake it on their own channel (an event, LISTEN) within this bound
        """Return when new work may be claimable (an ingest, an enable, a retry), or after
        `timeout` seconds."""
        try:
            if timeout > 0:
                await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._work.clear()


def reading(op: Operation[S, P, T]) -> Bound[S, P, T]:
    """The operation, run in one read transaction."""

    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._read(lambda tx: op(self, tx, *args, **kwargs))

    return _described_as(run, op)


def writing(
    *, wake: bool = False, durable: bool = True
) -> Callable[[Operation[S, P, T]], Bound[S, P, T]]:
    """The operation, run in one write transaction (see `StoreCore._write`)."""

    def decorate(op: Operation[S, P, T]) -> Bound[S, P, T]:
        async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return await self._write(
                lambda tx: op(self, tx, *args, **kwargs), wake=wake, durable=durable
            )

        return _described_as(run, op)

    return decorate


def _described_as(run: Bound[S, P, T], op: Operation[S, P, T]) -> Bound[S, P, T]:
    """`run` with the name and docstring of `op`, and its signature without the
    transaction (what `help()` and `inspect.signature` show callers)."""
    functools.update_wrapper(run, op)
    signature = inspect.signature(op)
    self_param, _tx, *params = signature.parameters.values()
    run.__signature__ = signature.replace(parameters=[self_param, *params])  # type: ignore[attr-defined]
    return run
