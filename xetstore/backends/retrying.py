"""Retries of transient backend failures: the one place xetstore retries anything.

Only `TransientBackendError` is retried (timeouts, dropped connections, 5xx,
throttling); missing objects, denied access and integrity errors fail at once.
A put retried after a lost response is harmless: keys are content-named and puts
never overwrite, so the retry finds the object and reports it as existing.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..errors import TransientBackendError
from .base import Backend, ObjectInfo, Payload
from .wrapper import BackendWrapper

__all__ = ["RetryingBackend", "DEFAULT_ATTEMPTS", "DEFAULT_BASE_DELAY"]

log = logging.getLogger("xetstore")

_T = TypeVar("_T")

DEFAULT_ATTEMPTS = 6
DEFAULT_BASE_DELAY = 0.25  # seconds; doubles per attempt, with full jitter
_MAX_DELAY = 8.0


class RetryingBackend(BackendWrapper):
    """Retries each call up to `attempts` times in all, with jittered exponential backoff."""

    def __init__(
        self,
        inner: Backend,
        attempts: int = DEFAULT_ATTEMPTS,
        base_delay: float = DEFAULT_BASE_DELAY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.attempts = attempts
        self.base_delay = base_delay
        self._sleep = sleep

    def _retry(self, what: str, fn: Callable[[], _T]) -> _T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except TransientBackendError as exc:
                if attempt == self.attempts:
                    raise TransientBackendError(
                        exc.key,
                        f"{exc.reason}; gave up after {attempt} attempts to {what} it "
                        f"on {self.url}; check the network and the server, then run the command again",
                    ) from exc
                delay = random.uniform(0, min(_MAX_DELAY, self.base_delay * 2 ** (attempt - 1)))
                log.info("%s %s failed (%s); retry %d in %.2fs", what, exc.key, exc.reason, attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._retry("read", lambda: self.inner.get(key, start, end))

    def put(self, key: str, data: Payload) -> bool:
        return self._retry("write", lambda: self.inner.put(key, data))

    def stat(self, key: str) -> ObjectInfo:
        return self._retry("stat", lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._retry("delete", lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # A listing cut midway is restarted whole, so each attempt is materialised.
        yield from self._retry("list", lambda: list(self.inner.list(prefix)))
