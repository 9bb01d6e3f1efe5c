"""The call filter: x86 CALL targets made frame-absolute, so machine code compresses better.

An x86 `call rel32` (opcode E8) stores its target relative to itself, so the calls
of a library to one function all differ. Rewritten as the target's position in the
frame they are all the same, and zstd finds them as repeats: on torch's and
numpy's shared libraries, frames of code compress 10-35 % smaller at the same
zstd level (docs/format.md §6.9). The standard x86 filter of xz and 7-zip (on
PyPI as pybcj) converts only calls within 16 MiB, and JMPs too: on torch's
libtorch_cpu.so it stored 0.4 % more than no filter, where this one stores 9 %
less (most calls in a large C++ library go to its PLT, far away).

Pure functions over bytes; numpy is imported on first use (only `compact` filters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["filter_calls", "unfilter_calls", "filtered_code"]

_CALL = 0xE8
_OPERAND = 4  # a call's rel32 follows its opcode
_LOW = -(1 << 28)  # rel32 values in [_LOW, _LOW + _SPAN) are converted: calls up to 256 MiB away
_SPAN = 1 << 29
# A frame is worth a trial when calls are this dense and mostly in range: code has
# 1-3 % E8 bytes, nine in ten with an in-range operand; floats, text and compressed
# data 0-0.4 %, about one in eight in range (measured on the bench's workloads).
_MIN_DENSITY = 0.003
_MIN_IN_RANGE = 0.5
_SLICE = 256 * 1024


def filter_calls(data: bytes | bytearray | memoryview) -> bytearray:
    """data with each selected call's rel32 rotated by its position (see _rotate)."""
    import numpy as np

    out = bytearray(data)
    a = np.frombuffer(out, dtype=np.uint8)
    _rotate(a, _calls(a), +1)
    return out


def unfilter_calls(data: bytes | bytearray | memoryview) -> bytearray:
    """Inverse of filter_calls: unfilter_calls(filter_calls(d)) == d for every d."""
    import numpy as np

    out = bytearray(data)
    a = np.frombuffer(out, dtype=np.uint8)
    _rotate(a, _calls(a), -1)
    return out


def filtered_code(data: bytes | bytearray | memoryview) -> bytearray | None:
    """filter_calls(data) if its E8 bytes look like calls often enough to try the
    filter, else None (judged on the whole frame, not a sample: code may follow a
    stretch of data)."""
    import numpy as np

    plain = np.frombuffer(data, dtype=np.uint8)
    at = _calls(plain)
    if len(at) < _MIN_DENSITY * len(plain):
        return None
    values = _operands(plain, at)
    if float(((values >= _LOW) & (values < _LOW + _SPAN)).mean()) < _MIN_IN_RANGE:
        return None
    out = bytearray(data)
    _rotate(np.frombuffer(out, dtype=np.uint8), at, +1)  # the same calls: the scan reads no operand
    return out


def _rotate(a: np.ndarray, at: np.ndarray, sign: int) -> None:
    """In place: the operand v after each offset p in `at`, if v is in
    [_LOW, _LOW + _SPAN), becomes ((v + sign * p - _LOW) mod _SPAN) + _LOW.

    The rotation maps the range onto itself, one-to-one, and operands outside it
    stay as they are, so the filter is a bijection. A call at p to target t holds
    t - p - 5: filtered, all calls to t hold the same value.
    """
    if len(at) == 0:
        return
    words = _words(a)
    values = words[at + 1]
    inside = (values >= _LOW) & (values < _LOW + _SPAN)
    # in int32 without overflow: |values| < 2**28 and p < 2**24 (a frame is at most 16 MiB)
    moved = (values[inside] + sign * at[inside].astype(values.dtype) - _LOW) % _SPAN + _LOW
    words[at[inside] + 1] = moved  # operands of selected calls never overlap


def _calls(a: np.ndarray) -> np.ndarray:
    """Offsets of the calls the filter converts: scanning forward, each E8 byte with
    a whole operand after it, skipping the operand of the one before.

    The scan never looks at an operand, which is all the filter changes, so it
    selects the same calls in filtered and plain bytes. It is done without a Python
    loop per call: an E8 at least 5 bytes after the previous one always starts
    a new run; inside runs of closer E8s (rare in code, long only in E8-filled
    data) every run follows its skips one step per pass.
    """
    import numpy as np

    end = max(len(a) - _OPERAND, 0)
    # by slices: a frame-sized mask is one more multi-MiB block for the allocator to keep
    found = np.concatenate(
        [np.flatnonzero(a[i : min(i + _SLICE, end)] == _CALL) + i for i in range(0, end, _SLICE)] or [np.zeros(0, np.int64)]
    )
    if len(found) == 0:
        return found
    starts = np.diff(found, prepend=-1 - _OPERAND) > _OPERAND
    if starts.all():
        return found
    following = np.searchsorted(found, found + 1 + _OPERAND)  # the next E8 a selected call lets be
    chosen = starts.copy()
    step = np.flatnonzero(starts)
    while len(step):
        step = following[step]
        step = step[step < len(found)]
        step = step[~starts[step]]  # a run's next start is chosen already
        chosen[step] = True
    selected: np.ndarray = found[chosen]
    return selected


def _operands(a: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The signed rel32 after each offset in `at`."""
    values: np.ndarray = _words(a)[at + 1]
    return values


def _words(a: np.ndarray) -> np.ndarray:
    """An int32 at every byte offset of `a` (overlapping, unaligned): a gather of
    operands without an index array four times as long."""
    import numpy as np

    count = max(len(a) - _OPERAND + 1, 0)
    words: np.ndarray = np.ndarray((count,), dtype="<i4", buffer=a, strides=(1,))
    return words
