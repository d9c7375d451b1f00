"""What every helper that runs in the background shares: `with helper:` starts it and
stops it again, whatever the block raises."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Background(ABC):
    """A helper that runs between `start()` and `stop()`."""

    @abstractmethod
    def start(self) -> Self:
        """Begin running; returns the helper, so `with Helper() as helper:` reads well."""

    @abstractmethod
    def stop(self) -> None:
        """Stop running; what the helper recorded is kept."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_at_exit()

    def stop_at_exit(self) -> None:
        """What the end of a `with` block does: `stop()`, unless the helper says otherwise."""
        self.stop()
