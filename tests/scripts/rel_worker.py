"""A child process for the crash and concurrency tests: one JSON line per acknowledged step.

    rel_worker.py add-loop REPO DIR SEED COUNT     add COUNT generated files one at a time
    rel_worker.py gc-loop REPO ROUNDS SEED         add victims, rm them, gc with no grace
    rel_worker.py reuse-loop REPO DIR SEED COUNT   add files made of victims' bytes plus a tail
    rel_worker.py read-many REPO SECONDS HASH:SHA256...

Every line is printed (and flushed) only after the step it reports has returned,
so a line is an acknowledgement: what it names must survive any later crash.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from xetstore import Repository


def content(seed: int, i: int) -> bytes:
    """File i of a run: shares a prefix with file i - 3 (dedup across files), tail unique."""
    rng = np.random.default_rng([seed, i])
    size = int(rng.integers(20_000, 400_000))
    base = np.random.default_rng([seed, i // 3]).bytes(300_000)
    return (base + rng.bytes(size))[: max(size, 1)]


def victim(seed: int, k: int) -> bytes:
    return np.random.default_rng([seed, 10_000 + k]).bytes(1_500_000)


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def add_loop(repo: str, folder: str, seed: int, count: int) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    say(event="ready")
    with Repository.open(repo) as r:
        for i in range(count):
            path = out / f"f-{seed}-{i}"
            path.write_bytes(content(seed, i))
            res = r.add_file(path)
            say(event="added", i=i, file_hash=res.file_hash, sha256=res.sha256)


def reuse_loop(repo: str, folder: str, seed: int, count: int) -> None:
    """Files that share all but their tail with gc-loop's victims: they dedup
    against xorbs that gc is about to delete."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    say(event="ready")
    with Repository.open(repo) as r:
        for i in range(count):
            path = out / f"r-{seed}-{i}"
            path.write_bytes(reused(seed, i))
            res = r.add_file(path)
            say(event="added", i=i, file_hash=res.file_hash, sha256=res.sha256)


def reused(seed: int, i: int) -> bytes:
    return victim(seed, i % 4) + f"tail {i}".encode()


def read_many(repo: str, seconds: float, pairs: list[str]) -> None:
    wanted = [p.split(":") for p in pairs]
    deadline = time.monotonic() + seconds
    reads = 0
    with Repository.open(repo) as r:
        say(event="ready")
        while time.monotonic() < deadline:
            for file_hash, sha256 in wanted:
                digest = hashlib.sha256(b"".join(r.iter_file(file_hash))).hexdigest()
                if digest != sha256:
                    say(event="torn", file_hash=file_hash, got=digest)
                    sys.exit(2)
                reads += 1
    say(event="done", reads=reads)


def gc_loop(repo: str, rounds: int, seed: int) -> None:
    with Repository.open(repo) as r:
        say(event="ready")
        for k in range(rounds):
            res = r.add_bytes(victim(seed, k % 4))
            r.remove([res.file_hash])
            report = r.gc(grace=0.0, dry_run=False)
            say(event="gc", round=k, deleted=len(report.deleted_xorbs), rescued=len(report.rescued))


def main(argv: list[str]) -> None:
    mode, repo, *rest = argv
    if mode == "add-loop":
        add_loop(repo, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "reuse-loop":
        reuse_loop(repo, rest[0], int(rest[1]), int(rest[2]))
    elif mode == "read-many":
        read_many(repo, float(rest[0]), rest[1:])
    elif mode == "gc-loop":
        gc_loop(repo, int(rest[0]), int(rest[1]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
