"""S3 throughput of xetstore next to plain boto3, and the bytes a small edit moves.

    python -m benchmarks.s3_throughput --endpoint http://127.0.0.1:7480 [--size-mib 512] [--runs 3]

Credentials come from the usual AWS environment (AWS_ACCESS_KEY_ID, ...); `eval
"$(tools/rgw start)"` provides a local Ceph RGW. For a file of random bytes it
reports, as medians of --runs, in the same run and against the same server:

- upload: `xetstore add` of the new file into an empty repository versus boto3's
  `upload_file` (multipart, 10 threads) of the same file;
- download: a read by a second client with an empty cache versus `download_file`
  (also without the local cache of fetched ranges, XETSTORE_CACHE_BYTES=0);
- a second version with --edit-percent of the file overwritten in 8 places: the bytes
  the uploader sends and the bytes a client that has read the first version fetches,
  as a share of the file (plain boto3 moves the whole file both ways).

Targets: xetstore at least 0.7x boto3 on new data; a 1 % edit moves at most 5 % of the file.
Every run writes to a fresh key prefix and removes it afterwards. Not a test: it only measures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config

from xetstore import Repository
from xetstore.backends import Backend, Payload, open_backend
from xetstore.backends.base import payload_size
from xetstore.backends.wrapper import BackendWrapper
from xetstore.bench.inputs import make_random

MB = 1_000_000
MiB = 1 << 20


class _Meter(BackendWrapper):
    """Counts the bytes that cross the wire through a backend."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.sent = 0
        self.received = 0

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        data = self.inner.get(key, start, end)
        self.received += len(data)
        return data

    def put(self, key: str, data: Payload) -> bool:
        wrote = self.inner.put(key, data)
        if wrote:
            self.sent += payload_size(data)
        return wrote


def make_edited(src: Path, dest: Path, percent: float, places: int = 8) -> None:
    """`src` with `percent` of its bytes overwritten, spread over `places` regions."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(99)
    region = int(len(data) * percent / 100 / places)
    starts = np.linspace(0, len(data) - region, places + 2)[1:-1].astype(int)
    for start in starts:
        data[start : start + region] = rng.bytes(region)
    dest.write_bytes(data)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    return h.hexdigest()


class Bench:
    def __init__(self, endpoint: str, bucket: str, work: Path) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.work = work
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}"

    def remove(self, prefix: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", ())]
        for i in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[i : i + 1000]})

    def plain(self, v1: Path, run: int) -> tuple[float, float]:
        key = f"plain-{run}/file"
        up = timed(lambda: self.client.upload_file(str(v1), self.bucket, key))
        dest = self.work / "plain.out"
        down = timed(lambda: self.client.download_file(self.bucket, key, str(dest)))
        dest.unlink()
        self.remove(f"plain-{run}/")
        return up, down

    def xetstore(self, v1: Path, v2: Path, run: int, check: bool) -> dict[str, float]:
        prefix = f"xetstore-{run}"
        uploader = _Meter(open_backend(self.url(prefix)))
        downloader = _Meter(open_backend(self.url(prefix)))
        out: dict[str, float] = {}
        with Repository.init(uploader, cache_dir=self.work / f"cache-up-{run}") as repo:
            result: list[Any] = []
            out["up"] = timed(lambda: result.append(repo.add_file(v1)))
            fh1 = result[0].file_hash
            uploader.sent = 0
            fh2 = repo.add_file(v2).file_hash
            out["v2_sent"] = uploader.sent
        dest = self.work / "xetstore.out"
        with Repository.open(downloader, cache_dir=self.work / f"cache-down-{run}") as repo:
            out["down"] = timed(lambda: repo.read_file(fh1, dest))
            if check and sha256_of(dest) != sha256_of(v1):
                raise SystemExit("xetstore read back different bytes: the benchmark is void")
        saved = os.environ.get("XETSTORE_CACHE_BYTES")
        os.environ["XETSTORE_CACHE_BYTES"] = "0"  # the same read without keeping fetched ranges
        try:
            with Repository.open(open_backend(self.url(prefix)), cache_dir=self.work / f"cache-bare-{run}") as repo:
                out["down_uncached"] = timed(lambda: repo.read_file(fh1, dest))
        finally:
            os.environ.pop("XETSTORE_CACHE_BYTES")
            if saved is not None:
                os.environ["XETSTORE_CACHE_BYTES"] = saved
        downloader.received = 0
        with Repository.open(downloader, cache_dir=self.work / f"cache-down-{run}") as repo:
            repo.read_file(fh2, dest)  # this client has read v1: only changed ranges move
            out["v2_received"] = downloader.received
        dest.unlink()
        self.remove(f"{prefix}/")
        return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default=os.environ.get("XETSTORE_TEST_RGW_ENDPOINT"), required=False)
    ap.add_argument("--bucket", help="an existing bucket to use (default: a new one, removed afterwards)")
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--edit-percent", type=float, default=1.0)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    if not args.endpoint:
        ap.error("give --endpoint (or set XETSTORE_TEST_RGW_ENDPOINT)")

    with tempfile.TemporaryDirectory(prefix="xetstore-s3-bench-") as tmp:
        work = Path(tmp)
        os.environ["XETSTORE_CACHE"] = str(work / "cache")
        bucket = args.bucket or f"xetstore-bench-{uuid.uuid4().hex[:10]}"
        bench = Bench(args.endpoint, bucket, work)
        if not args.bucket:
            bench.client.create_bucket(Bucket=bucket)
        try:
            report = run(bench, work, args)
        finally:
            if not args.bucket:
                bench.remove("")
                bench.client.delete_bucket(Bucket=bucket)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)


def run(bench: Bench, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mib * MiB
    v1, v2 = work / "v1.bin", work / "v2.bin"
    make_random(v1, size)
    make_edited(v1, v2, args.edit_percent)
    rows: dict[str, list[float]] = {}
    for n in range(args.runs):
        plain_up, plain_down = bench.plain(v1, n)
        x = bench.xetstore(v1, v2, n, check=n == 0)
        for name, value in [("plain_up", plain_up), ("plain_down", plain_down), *x.items()]:
            rows.setdefault(name, []).append(value)
        print(f"run {n + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rows.items()}

    def ratio(baseline: str, ours: str) -> float:
        # Each run's pair ran back to back: the median of their ratios rides out load drift.
        return statistics.median(b / o for b, o in zip(rows[baseline], rows[ours]))

    return {
        "endpoint": bench.endpoint, "size_bytes": size, "runs": args.runs, "edit_percent": args.edit_percent,
        "upload_mb_s": {"boto3": size / med["plain_up"] / MB, "xetstore": size / med["up"] / MB},
        "upload_ratio": ratio("plain_up", "up"),
        "download_mb_s": {"boto3": size / med["plain_down"] / MB, "xetstore": size / med["down"] / MB},
        "download_ratio": ratio("plain_down", "down"),
        "download_uncached_mb_s": size / med["down_uncached"] / MB,
        "download_uncached_ratio": ratio("plain_down", "down_uncached"),
        "second_version_sent_percent": 100 * med["v2_sent"] / size,
        "second_version_received_percent": 100 * med["v2_received"] / size,
    }  # fmt: skip


def print_table(r: dict[str, Any]) -> None:
    size = r["size_bytes"] / MiB
    print(f"S3 throughput, {size:.0f} MiB of random bytes, median of {r['runs']} runs, {r['endpoint']}")
    print(f"{'':24}{'boto3':>10}{'xetstore':>10}{'ratio':>8}   (ratio: median of per-run ratios; target >= 0.70)")
    for what in ("upload", "download"):
        speeds = r[f"{what}_mb_s"]
        print(f"{what + ' new data (MB/s)':24}{speeds['boto3']:>10.1f}{speeds['xetstore']:>10.1f}", end="")
        print(f"{r[what + '_ratio']:>8.2f}")
    uncached, ratio = r["download_uncached_mb_s"], r["download_uncached_ratio"]
    print(f"{'  without range cache':24}{'':>10}{uncached:>10.1f}{ratio:>8.2f}")
    print(f"second version, {r['edit_percent']:g} % of the file edited (target <= 5 % moved):")
    print(f"  uploaded   {r['second_version_sent_percent']:6.2f} % of the file (boto3: 100 %)")
    print(f"  downloaded {r['second_version_received_percent']:6.2f} % of the file (boto3: 100 %)")


if __name__ == "__main__":
    main()
