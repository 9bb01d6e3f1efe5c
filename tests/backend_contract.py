"""The Backend contract: one set of tests every backend must pass.

Subclass `BackendContract` (its name does not start with `Test`, so pytest
collects only the subclasses) and implement `make_backend`; implement
`interrupt_put` to show that a put cut short leaves no partial object.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from xetstore.backends.base import Backend
from xetstore.errors import ConfigError, ObjectNotFound

__all__ = ["BackendContract", "BAD_KEYS"]

BAD_KEYS = [
    "", "/abs", "../up", "a/../b", "a/./b", "Upper", "a//b", "a/", ".hidden", "a/.hidden",
    "nul\0byte", "space key", "back\\slash", "x" * 600, "xorbs/" + "é",
]  # fmt: skip


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


class BackendContract:
    """Every Backend keeps these promises (xetstore/backends/base.py)."""

    #: keys the listing test writes; S3 subclasses page through them in small pages
    many_keys = 25
    #: whether an interrupted put leaves a temp behind for sweep_temp (a folder does)
    leaves_temps = False

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest) -> Backend:
        return self.make_backend(request)

    def make_backend(self, request: pytest.FixtureRequest) -> Backend:
        """A new, empty backend; `request.getfixturevalue` reaches any fixture."""
        raise NotImplementedError

    def interrupt_put(self, request: pytest.FixtureRequest, backend: Backend, key: str, data: bytes) -> None:
        """Start putting `data` under `key` and cut it short midway."""
        pytest.skip(f"{type(self).__name__} cannot interrupt a put")

    # -- missing keys ---------------------------------------------------------

    def test_missing_key(self, backend: Backend) -> None:
        calls = [
            lambda: backend.get("xorbs/missing"), lambda: backend.stat("xorbs/missing"),
            lambda: backend.get("xorbs/missing", 0, 10), lambda: backend.get("xorbs/missing", 5, 5),
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(ObjectNotFound) as info:
                call()
            assert info.value.key == "xorbs/missing"
        assert not backend.exists("xorbs/missing")
        backend.delete("xorbs/missing")  # not an error

    # -- put and get ----------------------------------------------------------

    def test_put_then_get(self, backend: Backend) -> None:
        data = _data(5000)
        assert backend.put("xorbs/a", data) is True
        assert backend.get("xorbs/a") == data
        assert backend.exists("xorbs/a")
        info = backend.stat("xorbs/a")
        assert (info.key, info.size) == ("xorbs/a", len(data))
        assert abs(info.mtime - time.time()) < 3600  # a plausible clock, not a timing

    def test_put_accepts_parts(self, backend: Backend) -> None:
        parts = [_data(1_500_000, seed=1), memoryview(_data(10, seed=2)), bytearray(_data(700_000, seed=3)), b""]
        assert backend.put("xorbs/parts", parts) is True
        joined = b"".join(parts)
        assert backend.get("xorbs/parts") == joined
        assert backend.get("xorbs/parts", 1_499_990, 1_500_020) == joined[1_499_990:1_500_020]

    def test_put_never_overwrites(self, backend: Backend) -> None:
        assert backend.put("shards/s", b"first") is True
        assert backend.put("shards/s", b"second, longer") is False
        assert backend.get("shards/s") == b"first"

    def test_staged_put_appears_only_at_publish(self, backend: Backend) -> None:
        data = _data(70_000, seed=4)
        staged = backend.stage("shards/st", data)
        assert not backend.exists("shards/st") and list(backend.list()) == []
        assert staged.publish() is True
        assert backend.get("shards/st") == data
        assert [i.key for i in backend.list()] == ["shards/st"]
        assert backend.stage("shards/st", b"other").publish() is False  # never overwrites
        assert backend.get("shards/st") == data
        assert list(backend.sweep_temp(older_than=0)) == []  # a publish leaves nothing behind

    def test_staged_put_discarded_leaves_nothing(self, backend: Backend) -> None:
        backend.stage("shards/gone", _data(70_000, seed=5)).discard()
        assert not backend.exists("shards/gone") and list(backend.list()) == []
        assert list(backend.sweep_temp(older_than=0)) == []
        assert backend.put("shards/gone", b"later") is True  # nothing stands in the way

    def test_ranges_like_slicing(self, backend: Backend) -> None:
        data = _data(1000)
        backend.put("xorbs/r", data)
        n = len(data)
        for start, end in [(0, None), (0, n), (10, 20), (999, 1000), (500, None), (0, 1),
                           (n, None), (n, n + 10), (990, 2000), (n + 5, n + 10), (5, 5), (20, 10)]:  # fmt: skip
            assert backend.get("xorbs/r", start, end) == data[start:end], (start, end)

    def test_empty_object(self, backend: Backend) -> None:
        assert backend.put("xorbs/empty", b"") is True
        assert backend.stat("xorbs/empty").size == 0
        for start, end in [(0, None), (0, 10), (3, None), (0, 0)]:
            assert backend.get("xorbs/empty", start, end) == b""
        assert backend.put("xorbs/empty", b"late") is False

    def test_delete(self, backend: Backend) -> None:
        backend.put("xorbs/d", b"bytes")
        backend.delete("xorbs/d")
        with pytest.raises(ObjectNotFound):
            backend.get("xorbs/d")
        assert [i.key for i in backend.list("xorbs/")] == []
        assert backend.put("xorbs/d", b"again") is True
        assert backend.get("xorbs/d") == b"again"

    # -- listing --------------------------------------------------------------

    def test_list_by_prefix(self, backend: Backend) -> None:
        objects = {"config": b"c", "xorbs/a1": b"aa", "xorbs/a2": b"a", "xorbs/b1": b"", "shards/s1": b"sss"}
        for key, data in objects.items():
            backend.put(key, data)
        assert {(i.key, i.size) for i in backend.list()} == {(k, len(v)) for k, v in objects.items()}
        assert {i.key for i in backend.list("xorbs/")} == {"xorbs/a1", "xorbs/a2", "xorbs/b1"}
        assert {i.key for i in backend.list("xorbs/a")} == {"xorbs/a1", "xorbs/a2"}
        assert {i.key for i in backend.list("shards/")} == {"shards/s1"}
        assert list(backend.list("nothing/")) == []
        for prefix in ("", "xorbs/", "xorbs/a", "shards/", "nothing/", "conf"):  # keys() names what list() does
            assert sorted(backend.keys(prefix)) == sorted(i.key for i in backend.list(prefix))

    def test_list_many(self, backend: Backend) -> None:
        keys = {f"shards/{i:04d}" for i in range(self.many_keys)}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: backend.put(k, k.encode()), keys))
        listed = [i.key for i in backend.list("shards/")]
        assert sorted(listed) == sorted(keys)  # each key once: pages neither skip nor repeat

    # -- bad keys -------------------------------------------------------------

    def test_invalid_keys_refused(self, backend: Backend) -> None:
        for key in BAD_KEYS:
            calls = [lambda k=key: backend.put(k, b"x"), lambda k=key: backend.get(k),
                     lambda k=key: backend.stat(k), lambda k=key: backend.delete(k)]  # fmt: skip
            for call in calls:
                with pytest.raises(ConfigError):
                    call()
        assert list(backend.list()) == []

    # -- atomicity and threads ------------------------------------------------

    def test_interrupted_put_leaves_nothing(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        data = bytes(range(256)) * (12 * 1024)  # 3 MiB
        self.interrupt_put(request, backend, "xorbs/big", data)
        with pytest.raises(ObjectNotFound):
            backend.get("xorbs/big")
        assert [i.key for i in backend.list()] == []
        assert backend.put("xorbs/big", data) is True  # nothing stands in the way
        assert backend.get("xorbs/big") == data

    def test_sweep_temp_removes_only_old_leftovers(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        backend.put("xorbs/kept", b"kept")
        self.interrupt_put(request, backend, "xorbs/big", bytes(range(256)) * (12 * 1024))
        assert list(backend.sweep_temp(older_than=3600)) == []  # young: its put may still be running
        assert len(backend.sweep_temp(older_than=0)) == (1 if self.leaves_temps else 0)
        assert list(backend.sweep_temp(older_than=0)) == []  # nothing is left to sweep
        assert [i.key for i in backend.list()] == ["xorbs/kept"]
        assert backend.get("xorbs/kept") == b"kept"

    def test_concurrent_puts_of_one_key(self, backend: Backend) -> None:
        data = _data(200_000, seed=3)
        with ThreadPoolExecutor(6) as pool:
            wrote = list(pool.map(lambda _: backend.put("xorbs/same", data), range(6)))
        assert sum(wrote) == 1, f"{sum(wrote)} of 6 concurrent puts of one key say they wrote it"
        assert backend.get("xorbs/same") == data

    def test_threads_share_a_backend(self, backend: Backend) -> None:
        blobs = {f"xorbs/t{i}": _data(10_000 + i, seed=i) for i in range(16)}

        def round_trip(key: str) -> bytes:
            backend.put(key, blobs[key])
            return backend.get(key, 100, 5000)

        with ThreadPoolExecutor(8) as pool:
            got = dict(zip(blobs, pool.map(round_trip, blobs)))
        assert got == {k: v[100:5000] for k, v in blobs.items()}
