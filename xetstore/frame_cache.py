"""Decoded zstd frames that reads share, and the frames being decoded right now.

Small files share frames, and two terms of one file often read the same frame:
the cache keeps a frame that a read wanted only part of, and a reader thread
that wants a frame another thread is decoding waits for it instead of decoding
it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["FrameCache"]


class FrameCache:
    """Decoded frames by (xorb hash, first chunk), least recently used out; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._size = 0
        self._items: OrderedDict[tuple[bytes, int], list[memoryview]] = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[tuple[bytes, int], threading.Event] = {}  # frames being decoded now

    def get(self, key: tuple[bytes, int]) -> list[memoryview] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def claim(self, key: tuple[bytes, int]) -> threading.Event | None:
        """None: the caller decodes this frame (and then releases it). Else the
        event of the thread decoding it now: wait on it, then look again."""
        with self._lock:
            busy = self._busy.get(key)
            if busy is None:
                self._busy[key] = threading.Event()
            return busy

    def release(self, key: tuple[bytes, int]) -> None:
        with self._lock:
            self._busy.pop(key).set()

    def put(self, key: tuple[bytes, int], chunks: list[memoryview]) -> None:
        size = sum(len(c) for c in chunks)
        with self._lock:
            old = self._items.get(key)
            if (old is not None and len(old) >= len(chunks)) or size > self._capacity:
                return
            if old is not None:  # the same frame, decoded further this time
                self._size -= sum(len(c) for c in old)
            self._items[key] = chunks
            self._size += size
            while self._size > self._capacity:
                _, old = self._items.popitem(last=False)
                self._size -= sum(len(c) for c in old)
