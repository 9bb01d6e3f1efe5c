"""Never acknowledge what is not stored, never return bytes that are not the file's.

Folder repositories shared by two clients (two caches), damage done the way it
happens: a xorb file deleted, an index value overwritten, a shard that lies.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

from xetstore import Repository
from xetstore.hashing import from_xet_hex, xet_hex
from xetstore.intake import hash_stream
from xetstore.shard import Manifest, Shard, encode_shard, shard_key

from .rel_support import run_cli
from .samples import random_bytes, write_file
from .test_lfs_protocol import World, completes, init, upload


def xorb_files(repo_dir: Path) -> list[Path]:
    return sorted((repo_dir / "xorbs").iterdir())


def test_re_adding_a_file_whose_xorb_was_lost_stores_it_again(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    path = write_file(tmp_path / "f.bin", random_bytes(1_500_000, 1))
    with Repository.init(str(repo_dir)) as r:
        fh = r.add_file(path).file_hash
    (lost,) = xorb_files(repo_dir)
    lost.unlink()
    proc = run_cli("add", "-r", str(repo_dir), str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"{lost.parent.name}/{lost.name} is missing" in proc.stderr
    with Repository.open(str(repo_dir)) as r:
        assert r.read_bytes(fh) == path.read_bytes()  # before: MissingData, after an add that exited 0


def test_a_file_removed_by_another_client_during_an_add_is_recorded_again(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    path = write_file(tmp_path / "f.bin", random_bytes(3_000_000, 2))
    with Repository.init(str(repo_dir), cache_dir=tmp_path / "cache-a") as a:
        fh = a.add_file(path).file_hash
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "cache-a") as a, \
            Repository.open(str(repo_dir), cache_dir=tmp_path / "cache-b") as b:  # fmt: skip
        removed: list[object] = []

        def other_client_removes(_: int) -> None:  # runs while a's add session holds its lease
            if not removed:
                removed.extend(b.remove([fh]))

        assert a.add_files([path], progress=other_client_removes)[0].file_hash == fh
        assert removed
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "cache-b") as b:
        b.gc(grace=0.0)  # before: the add's acknowledged file lost its chunks here
        assert b.read_bytes(fh) == path.read_bytes()
        assert b.check(read_data=True).exit_code == 0


def test_a_wrong_chunk_location_in_the_index_is_not_used(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    other = random_bytes(1_000_000, 3)
    data = random_bytes(1_000_000, 4)
    with Repository.init("memory://scratch16") as scratch:  # learn data's chunk hashes
        (term,) = scratch.manifest(scratch.add_bytes(data).file_hash).terms
        hashes = scratch._index.xorb(term.xorb_hash)[0].chunk_hashes
    with Repository.init(str(repo_dir)) as r:
        (y,) = r.manifest(r.add_bytes(other).file_hash).terms
        wrong = y.xorb_hash + struct.pack("<I", 0)  # one bad LMDB value per chunk: "it is in y, chunk 0"
        r._index._write(lambda txn, dbs: [txn.put(h, wrong, db=dbs[b"chunks"]) for h in hashes])
        fh = r.add_bytes(data).file_hash
        assert r.read_bytes(fh) == data  # before: acknowledged, then unreadable (hash mismatch)
        assert r.check(read_data=True).exit_code == 0


def test_an_index_chunk_table_that_differs_from_the_xorb_is_not_used(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    data = random_bytes(1_000_000, 6)
    with Repository.init("memory://scratch16b") as scratch:
        (term,) = scratch.manifest(scratch.add_bytes(data).file_hash).terms
        table = scratch._index.xorb(term.xorb_hash)[0]
    with Repository.init(str(repo_dir)) as r:
        (y,) = r.manifest(r.add_bytes(random_bytes(1_000_000, 7)).file_hash).terms
        size = r._index.xorb(y.xorb_hash)[1]

        def lie(txn, dbs) -> None:  # the index claims xorb y holds data's chunks, in order
            txn.put(y.xorb_hash, struct.pack("<Q", size) + table.encode(), db=dbs[b"xorbs"])
            for i, h in enumerate(table.chunk_hashes):
                txn.put(h, y.xorb_hash + struct.pack("<I", i), db=dbs[b"chunks"])

        r._index._write(lie)
        fh = r.add_bytes(data).file_hash
        assert r.read_bytes(fh) == data


def lying_shard(repo_dir: Path, name_of: bytes, terms_of: str) -> tuple[str, str]:
    """Write a shard mapping the file with content `name_of` to the terms of stored
    file `terms_of`; return (the named file's hash, the shard key)."""
    fh, sha, _ = hash_stream(io.BytesIO(name_of))
    with Repository.open(str(repo_dir), cache_dir=repo_dir.parent / "writer-cache") as r:
        terms = r.manifest(terms_of).terms
        data = encode_shard(Shard((Manifest(from_xet_hex(fh), bytes.fromhex(sha), terms),), ()))
        r._backend.put(shard_key(data), data)
    return fh, shard_key(data)


def test_a_shard_mapping_a_file_to_another_files_terms_is_refused(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    a, b = random_bytes(700_000, 8), random_bytes(700_000, 9)
    with Repository.init(str(repo_dir)) as r:
        b_hash = r.add_bytes(b).file_hash
    a_hash, key = lying_shard(repo_dir, a, b_hash)
    got = run_cli("get", "-r", str(repo_dir), a_hash)  # a fresh cache of this test merges it now
    assert got.returncode == 10, got.stdout[:100]  # before: exit 0 with b's bytes
    assert f"{key}: its manifest of file {a_hash} was refused: its terms rebuild file {b_hash}" in got.stderr
    check = run_cli("check", "-r", str(repo_dir), "--read-data")
    assert check.returncode == 3  # before: 0
    assert key in check.stdout and a_hash in check.stdout and "is false" in check.stdout
    with Repository.open(str(repo_dir), cache_dir=tmp_path / "rebuilt") as r:  # a rebuild refuses it too
        r.repair_index()
        assert r.find(xet_hex(from_xet_hex(a_hash))) is None and r._index.manifest(from_xet_hex(a_hash)) is None
        assert r.read_bytes(b_hash) == b


def test_lfs_upload_of_an_object_whose_xorb_was_lost_stores_it_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    data = random_bytes(800_000, 10)
    oid, path = world.object(data)
    assert completes(world.run(init("upload"), upload(oid, len(data), path)))[0] == {"event": "complete", "oid": oid}
    for xorb in xorb_files(world.repo_path):
        xorb.unlink()
    replies = world.run(init("upload"), upload(oid, len(data), path))
    assert completes(replies) == [{"event": "complete", "oid": oid}]
    with Repository.open(str(world.repo_path)) as r:
        assert r.read_bytes(r.find(oid)) == data  # before: "complete", and nothing stored


def test_lfs_upload_is_not_skipped_for_a_sha256_whose_manifest_is_another_size(tmp_path: Path) -> None:
    world = World(tmp_path)
    stored, pushed = random_bytes(500_000, 11), random_bytes(600_000, 12)
    oid, path = world.object(pushed)
    with Repository.open(str(world.repo_path)) as r:
        stored_hash = r.add_bytes(stored).file_hash
        terms = r.manifest(stored_hash).terms
        # A shard that claims the stored file has the pushed object's sha256.
        data = encode_shard(Shard((Manifest(from_xet_hex(stored_hash), bytes.fromhex(oid), terms),), ()))
        r._backend.put(shard_key(data), data)
    replies = world.run(init("upload"), upload(oid, len(pushed), path))
    assert completes(replies) == [{"event": "complete", "oid": oid}]
    with Repository.open(str(world.repo_path)) as r:
        assert r.read_bytes(r.find(oid)) == pushed  # before: skipped; the oid named the other file


def test_lfs_upload_is_not_skipped_when_the_index_maps_the_sha256_to_another_file(tmp_path: Path) -> None:
    world = World(tmp_path)
    pushed = random_bytes(300_000, 13)
    oid, path = world.object(pushed)
    with Repository.open(str(world.repo_path)) as r:
        other = from_xet_hex(r.add_bytes(random_bytes(300_000, 14)).file_hash)
        r._index._write(lambda txn, dbs: txn.put(bytes.fromhex(oid), other, db=dbs[b"sha256"]))
    replies = world.run(init("upload"), upload(oid, len(pushed), path))
    assert completes(replies) == [{"event": "complete", "oid": oid}]
    with Repository.open(str(world.repo_path)) as r:
        assert r.read_bytes(r.find(oid)) == pushed
