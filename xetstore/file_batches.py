"""Reading many files: which run side by side, and which failure is reported.

One file is read a window (4 MiB) at a time, READ_THREADS windows at once, the
threads handing each window back in order. For the files of a release or a
dataset version, a few MiB each and made of short terms from older versions,
those hand-offs cost more than they overlap: the windows are small, and two
threads often wait on one shared frame. Two such files read side by side, each
on one thread, keep both cores busy instead (measured in one process, after
compact: the bench's release 56 -> 44 ms, dataset 40 -> 34 ms, real-libs 79
-> 69 ms, real-releases 550 -> 518 ms). Small files stay on the calling thread,
in order, as `read_file` reads them: a thread per small file loses more to the
GIL than it gains (1476 files of ~15 KiB: twice as slow), and neighbours share
decoded frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

__all__ = ["read_batch", "BIG_FILE", "FILES_AT_ONCE"]

BIG_FILE = 1024 * 1024  # files at least this big are read side by side
FILES_AT_ONCE = 2  # big files read at once (this machine class has two cores)

ReadOne = Callable[[int, bool], None]  # (item, read ahead on threads?) -> None


def read_batch(sizes: Sequence[int | None], read_one: ReadOne) -> None:
    """Read every item (`sizes[i]` None: unknown, read as a small one); raise the
    first failure in item order once every item has been tried."""
    failures: dict[int, Exception] = {}

    def attempt(i: int, ahead: bool) -> None:
        try:
            read_one(i, ahead)
        except Exception as exc:  # noqa: BLE001 (raised below, once the other files are written)
            failures[i] = exc

    big = [i for i, size in enumerate(sizes) if size is not None and size >= BIG_FILE]
    if len(big) < 2:  # one big file reads fastest with its own read-ahead threads
        big = []
    with ThreadPoolExecutor(FILES_AT_ONCE, thread_name_prefix="xetstore-files") as pool:
        for i in big:
            pool.submit(attempt, i, False)
        chosen = set(big)
        for i in range(len(sizes)):
            if i not in chosen:
                attempt(i, True)
    if failures:
        raise failures[min(failures)]
