"""Backend wrappers for tests: count what crosses the wire, fail chosen calls on purpose."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from xetstore.backends.base import Backend, ObjectInfo, Payload, payload_size
from xetstore.backends.wrapper import BackendWrapper
from xetstore.errors import BackendError, TransientBackendError

__all__ = ["CountingBackend", "FaultyBackend"]


class CountingBackend(BackendWrapper):
    """Records every get and put that reaches the backend below it."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.gets: list[tuple[str, int]] = []  # (key, bytes returned)
        self.puts: list[tuple[str, int, bool]] = []  # (key, bytes, whether it wrote)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        data = self.inner.get(key, start, end)
        with self._lock:
            self.gets.append((key, len(data)))
        return data

    def put(self, key: str, data: Payload) -> bool:
        wrote = self.inner.put(key, data)
        size = payload_size(data)
        with self._lock:
            self.puts.append((key, size, wrote))
        return wrote

    def reset(self) -> None:
        with self._lock:
            self.gets.clear()
            self.puts.clear()

    def bytes_read(self, prefix: str = "") -> int:
        return sum(n for k, n in self.gets if k.startswith(prefix))

    def written(self, prefix: str = "") -> list[tuple[str, int]]:
        """Objects this client actually created (puts that wrote), under `prefix`."""
        return [(k, n) for k, n, wrote in self.puts if wrote and k.startswith(prefix)]


@dataclass
class _Fault:
    method: str
    prefix: str
    times: int
    error: Callable[[str], BackendError]
    after_call: bool  # run the real call first, then fail (a lost response)
    fired: int = field(default=0)


class FaultyBackend(BackendWrapper):
    """Fails chosen calls (kopia's FaultyStorage): `fail("put", "xorbs/", times=2)`."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.calls: dict[str, int] = {}

    def fail(
        self,
        method: str,
        prefix: str = "",
        times: int = 1,
        error: Callable[[str], BackendError] = lambda key: TransientBackendError(key, "injected 503"),
        after_call: bool = False,
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(method, prefix, times, error, after_call))

    def _fault(self, method: str, key: str) -> _Fault | None:
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            for f in self._faults:
                if f.method == method and key.startswith(f.prefix) and f.fired < f.times:
                    f.fired += 1
                    return f
        return None

    def _run(self, method: str, key: str, call: Callable[[], object]) -> object:
        fault = self._fault(method, key)
        if fault is None:
            return call()
        if fault.after_call:
            call()
        raise fault.error(key)

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        return self._run("get", key, lambda: self.inner.get(key, start, end))  # type: ignore[return-value]

    def put(self, key: str, data: Payload) -> bool:
        return self._run("put", key, lambda: self.inner.put(key, data))  # type: ignore[return-value]

    def stat(self, key: str) -> ObjectInfo:
        return self._run("stat", key, lambda: self.inner.stat(key))  # type: ignore[return-value]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._run("list", prefix, lambda: None)
        return self.inner.list(prefix)
