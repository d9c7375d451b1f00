"""asyncio helpers shared by the layers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable


async def until_done_or_set(work: Awaitable[object], event: asyncio.Event | None) -> None:
    """Await `work` until it is done, or until `event` is set (a second signal at
    shutdown): `work` is then cancelled. Its exceptions other than the cancellation
    reach the caller."""
    task = asyncio.ensure_future(work)
    waits: set[asyncio.Future[object]] = {task}
    if event is not None:
        waits.add(asyncio.ensure_future(event.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()  # nothing for the one that is done
    with contextlib.suppress(asyncio.CancelledError):
        await task
