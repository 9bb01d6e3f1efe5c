"""Leases: how writers and gc share a repository without a server.

A lease is a small object `locks/<kind>-<session>-<seq>` that its holder
re-publishes (seq + 1) every few minutes. Two kinds exist:

    add  a writer session (add, rm): it may dedup against any indexed xorb.
    check  a check: what it lists must not vanish while it looks.
    gc   a garbage collection; in phase "mark" it excludes other gcs only,
         in phase "sweep" (deleting) it excludes writers too.

The protocol (each side writes its lease, then lists the others', so of two
racing parties at least one sees the other):

    writer: publish lease; list; a live gc lease in phase sweep -> withdraw
            the lease, wait until that gc ends, start again. Else sync the
            index, clean, and before publishing its shard check its lease is
            still valid and that every xorb it deduplicated against exists.
    gc:     publish lease (mark); a live other gc -> refuse. Mark, repack.
            Re-publish in phase sweep; list; wait until every writer lease
            listed has ended or gone stale. Re-check references, then delete,
            checking before each delete that its own lease is still valid.

A lease is stale when its newest record is older than the TTL by the
backend's clock (the mtime of the lister's own fresh record: no client clock
is compared with another), or when it names a process of this host that no
longer exists. A holder whose refreshes lapsed for half the TTL (suspended
laptop, failing backend) gives up before publishing or deleting anything.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from ..backends import Backend
from ..errors import LockedError, MissingData, NotFound, XetStoreError
from ..hashing import xet_hex
from ..keys import LOCKS, lease_key, lease_session, xorb_key
from ..shard import Shard

__all__ = [
    "Lease", "LeaseInfo", "SessionLease", "live_leases", "stale_lease_records", "check_before_publish", "process_alive", "LEASE_TTL",
]  # fmt: skip

SESSION_KINDS = ("add", "check")  # leases a sweeping gc waits for


def _ttl_from_environment(default: float = 30 * 60.0) -> float:
    """XETSTORE_LEASE_TTL overrides the TTL (tests of suspended processes use seconds)."""
    try:
        ttl = float(os.environ.get("XETSTORE_LEASE_TTL", default))
    except ValueError:
        return default
    return ttl if ttl > 0 else default


LEASE_TTL = _ttl_from_environment()  # seconds without a refresh after which a lease is stale
_POLL = (0.05, 2.0)  # first and longest pause while waiting for another lease
_MAX_LEASE_BYTES = 4096


class LeaseInfo(NamedTuple):
    """The newest record of one lease, as a lister sees it."""

    key: str
    kind: str
    session: str
    phase: str
    host: str
    pid: int
    mtime: float

    def describe(self) -> str:
        return f"{self.kind} lease {self.key} (pid {self.pid} on {self.host}, phase {self.phase})"


class Lease:
    """One held lease, refreshed by a daemon thread until released."""

    def __init__(self, backend: Backend, kind: str, phase: str = "", ttl: float = LEASE_TTL) -> None:
        self.backend = backend
        self.kind = kind
        self.phase = phase
        self.ttl = ttl
        self.session = os.urandom(8).hex()
        self.reference_time = 0.0  # backend mtime of our newest record: "now" by its clock
        self._seq = -1
        self._key = ""
        self._last_ok = 0.0
        self._expired = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquiring -------------------------------------------------------------

    @classmethod
    def writer(cls, backend: Backend, wait: float = 600.0, ttl: float = LEASE_TTL, kind: str = "add") -> Lease:
        """A session lease gc waits for (kind add, or check for a consistent check);
        waits (up to `wait` seconds) while a gc is deleting."""
        deadline = time.monotonic() + wait
        pause = _POLL[0]
        while True:
            lease = cls(backend, kind, "write" if kind == "add" else "read", ttl)
            lease._publish()
            sweeping = [i for i in live_leases(backend, lease) if i.kind == "gc" and i.phase == "sweep"]
            if not sweeping:
                lease._start()
                return lease
            lease.release()
            if time.monotonic() > deadline:
                raise LockedError(
                    f"a gc is deleting objects ({sweeping[0].describe()}); run the command again "
                    f"when it has finished (a dead gc's lease expires after {ttl / 60:.0f} minutes)"
                )
            time.sleep(pause)
            pause = min(pause * 2, _POLL[1])

    @classmethod
    def gc(cls, backend: Backend, ttl: float = LEASE_TTL) -> Lease:
        """A gc lease in phase mark; refuses if another gc holds one."""
        lease = cls(backend, "gc", "mark", ttl)
        lease._publish()
        others = [i for i in live_leases(backend, lease) if i.kind == "gc" and i.session != lease.session]
        if others:
            lease.release()
            raise LockedError(f"another gc is running ({others[0].describe()}); let it finish first")
        lease._start()
        return lease

    def enter_sweep(self, wait: float = 600.0) -> None:
        """Exclude writers: announce the sweep, then wait for the writers already active."""
        self.phase = "sweep"
        self.refresh()
        deadline = time.monotonic() + wait
        pause = _POLL[0]
        while True:
            writers = [i for i in live_leases(self.backend, self) if i.kind in SESSION_KINDS]
            if not writers:
                return
            if time.monotonic() > deadline:
                self.phase = "mark"
                self.refresh()
                raise LockedError(
                    f"{len(writers)} writer(s) still active ({writers[0].describe()}); run gc again later"
                )
            time.sleep(pause)
            pause = min(pause * 2, _POLL[1])

    # -- holding ---------------------------------------------------------------

    def check(self) -> None:
        """Raise LockedError if this lease may have lapsed: others may think it stale."""
        if self._expired or time.time() - self._last_ok > self.ttl / 2:
            self._expired = True
            raise LockedError(
                f"the {self.kind} lease {self._key} lapsed (process suspended or backend unreachable "
                "for too long); nothing more was published or deleted; run the command again"
            )

    def refresh(self) -> None:
        """Publish the next record of this lease and remove the previous one."""
        with self._lock:
            if self._expired or time.time() - self._last_ok > self.ttl / 2:
                self._expired = True  # never revive a lease others may have judged stale
                return
            self._publish()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._key:
                try:
                    self.backend.delete(self._key)
                except XetStoreError:
                    pass  # a leftover record only delays others until it is stale
                self._key = ""

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _publish(self) -> None:
        self._seq += 1
        old, self._key = self._key, lease_key(self.kind, self.session, self._seq)
        # Validity counts from before the put: a pause anywhere after it (the
        # record ages while we sleep) must count against the lease.
        started = time.time()
        record = {"kind": self.kind, "phase": self.phase, "host": _host(), "pid": os.getpid(), "time": started}
        self.backend.put(self._key, json.dumps(record).encode())
        self.reference_time = self.backend.stat(self._key).mtime
        self._last_ok = started
        if old:
            self.backend.delete(old)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._refresh_loop, name=f"xetstore-{self.kind}-lease", daemon=True)
        self._thread.start()

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.ttl / 6):
            try:
                self.refresh()
            except XetStoreError:
                continue  # check() notices when refreshes lapse for too long


class SessionLease:
    """One writer lease for a session of many adds (a git-lfs agent's push).

    Taken by the first add that asks, held until `release`. While it is held no
    gc sweeps (a sweep waits for every live writer lease), so whatever the index
    held when it was taken stays on the backend, and later adds need not merge
    the index again as taking a lease does. A lease that lapsed (suspended
    process, unreachable backend) may have been judged stale and swept past:
    the next add takes a new one, with a fresh merge, as a new session would.
    """

    def __init__(self, backend: Backend, on_taken: Callable[[], object]) -> None:
        self._backend = backend
        self._on_taken = on_taken  # brings the index up to date under a new lease
        self._lease: Lease | None = None

    def current(self) -> tuple[Lease, bool]:
        """The held lease, taken now if none is held or it lapsed; and whether it is new."""
        if self._lease is not None:
            try:
                self._lease.check()
                return self._lease, False
            except LockedError:
                self.release()
        lease = Lease.writer(self._backend)
        try:
            self._on_taken()
        except BaseException:
            lease.release()
            raise
        self._lease = lease
        return lease, True

    def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()


def live_leases(backend: Backend, mine: Lease) -> list[LeaseInfo]:
    """Every lease but `mine` that is not stale, judged by the backend's clock."""
    newest: dict[str, LeaseInfo] = {}
    for info in _read_leases(backend):
        if info.session == mine.session:
            continue
        if info.session not in newest or info.mtime > newest[info.session].mtime:
            newest[info.session] = info
    return [i for i in newest.values() if not _stale(i, mine.reference_time, mine.ttl)]


def _read_leases(backend: Backend) -> Iterator[LeaseInfo]:
    for obj in backend.list(LOCKS):
        parts = lease_session(obj.key)
        if obj.size > _MAX_LEASE_BYTES or parts is None:
            continue
        kind, session = parts
        try:
            doc = json.loads(backend.get(obj.key))
        except (NotFound, ValueError):
            continue  # released while we listed, or not a lease record
        if isinstance(doc, dict):
            yield LeaseInfo(
                obj.key, kind, session, str(doc.get("phase", "")), str(doc.get("host", "")),
                _int(doc.get("pid")), obj.mtime,
            )  # fmt: skip


def _stale(info: LeaseInfo, now: float, ttl: float) -> bool:
    if now - info.mtime > ttl:
        return True
    return info.host == _host() and info.pid > 0 and not process_alive(info.pid)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    # What socket.gethostname() returns, without importing socket (and selectors) into every add
    return os.uname().nodename


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def check_before_publish(
    backend: Backend, lease: Lease, shard: Shard, key_of: Callable[[bytes], str] = xorb_key
) -> None:
    """A writer's last step before its shard becomes visible.

    Its lease must still hold (else a gc may have swept meanwhile), and every
    xorb its new manifests use must exist: its own were just written, the
    others were found in the index and may be older than the index knows.
    `key_of` gives the key of a xorb in the layout the index reads.
    """
    lease.check()
    own = {x.footer.xorb_hash for x in shard.xorbs}
    for m in shard.manifests:
        for h in {t.xorb_hash for t in m.terms} - own:
            key = key_of(h)
            if not backend.exists(key):
                raise MissingData(key, f"{xet_hex(m.file_hash)} (nothing was published)")
            own.add(h)  # checked once per session


def stale_lease_records(backend: Backend, mine: Lease) -> list[str]:
    """Records of leases whose sessions are gone (their temp files are the backend's to sweep)."""
    live = {i.session for i in live_leases(backend, mine)} | {mine.session}
    return [info.key for info in backend.list(LOCKS) if (lease_session(info.key) or ("", ""))[1] not in live]
