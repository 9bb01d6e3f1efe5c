"""Named tree versions: `add --tag`, `ls TAG`, `tags`, `restore`, `diff`, and gc keeping them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xetstore.tags as tags_module
from xetstore import FormatError, Refused, Repository, SnapshotNotFound
from xetstore.hashing import from_xet_hex
from xetstore.maintenance.gc import remove_files
from xetstore.snapshot import FILE, Snapshot, SnapshotEntry, decode_snapshot, encode_snapshot, snapshot_key
from xetstore.trees import put_snapshot

from .s3_servers import S3Server, aws_env, bucket, moto_server, rgw_server, s3_server  # noqa: F401
from .samples import random_bytes, write_file


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xetstore", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def make_tree(root: Path) -> None:
    write_file(root / "data" / "big.bin", random_bytes(2_000_000, 1))
    write_file(root / "data" / "sub" / "note.txt", b"first\n")
    (root / "data" / "empty").mkdir()
    os.chmod(root / "data" / "sub" / "note.txt", 0o640)
    write_file(root / "data" / "run.sh", b"#!/bin/sh\necho hi\n")
    os.chmod(root / "data" / "run.sh", 0o755)
    os.symlink("sub", root / "data" / "link")  # a link to a directory: not recorded


def test_tag_ls_diff_restore_through_the_command_line(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert run("init", "repo", cwd=tmp_path).returncode == 0
    first = run("add", "-r", "repo", "--tag", "v1", "--skip-unreadable", "data", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = json_lines(first.stdout)
    assert {"type": "skipped", "path": "data/link", "reason": "symlink to a directory or to nothing (not recorded)"} in lines
    (snap,) = [d for d in lines if d["type"] == "snapshot"]
    assert snap["tag"] == "v1" and snap["paths"] == 6  # data, big.bin, empty, run.sh, sub, sub/note.txt
    big = bytearray((tmp_path / "data" / "big.bin").read_bytes())
    big[1_000_000:1_000_010] = b"0123456789"
    (tmp_path / "data" / "big.bin").write_bytes(bytes(big))
    write_file(tmp_path / "data" / "added.txt", b"new\n")
    (tmp_path / "data" / "sub" / "note.txt").unlink()
    assert run("add", "-r", "repo", "--tag", "v2", "--skip-unreadable", "data", cwd=tmp_path).returncode == 0

    listed = run("ls", "-r", "repo", "v2", cwd=tmp_path).stdout.splitlines()
    assert listed[0].split() == ["SIZE", "FILE", "HASH", "PATH"]
    assert "1.91 MiB" in next(line for line in listed if line.endswith("data/big.bin"))
    paths = [line.split()[-1] for line in listed[1:-1]]
    assert paths == ["data/", "data/added.txt", "data/big.bin", "data/empty/", "data/run.sh", "data/sub/"]

    tags = json_lines(run("tags", "-r", "repo", "--json", cwd=tmp_path).stdout)
    assert [t["tag"] for t in tags] == ["v1", "v2"] and all(t["type"] == "tag" for t in tags)

    diff = json_lines(run("diff", "-r", "repo", "v1", "v2", "--json", cwd=tmp_path).stdout)
    kinds = {(d["type"], d.get("path")) for d in diff}
    assert {("added", "data/added.txt"), ("removed", "data/sub/note.txt"), ("changed", "data/big.bin")} <= kinds
    summary = diff[-1]
    assert summary["type"] == "summary" and summary["unchanged"] == 4
    assert 0 < summary["new_bytes"] < 400_000  # one edited chunk region and a new file, not the whole 2 MB
    assert summary["new_stored_bytes"] > 0

    restored = run("restore", "-r", "repo", "v1", "out", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    out = tmp_path / "out" / "data"
    assert (out / "big.bin").read_bytes() == random_bytes(2_000_000, 1)
    assert (out / "sub" / "note.txt").read_bytes() == b"first\n"
    assert (out / "sub" / "note.txt").stat().st_mode & 0o777 == 0o640
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (out / "empty").is_dir() and not (out / "link").exists()


def test_a_tag_names_one_snapshot_for_good(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "a.txt", b"a\n")
    run("init", "repo", cwd=tmp_path)
    assert run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path).returncode == 0
    again = run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path)
    assert again.returncode == 1 and "tag v1 already names snapshots/" in again.stderr
    assert len(list((tmp_path / "repo" / "snapshots").iterdir())) == 1
    bad = run("add", "-r", "repo", "--tag", "a:b", "d", cwd=tmp_path)
    assert bad.returncode == 1 and "tag 'a:b'" in bad.stderr


def test_restore_refuses_a_non_empty_destination_and_unknown_tags(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "a.txt", b"a\n")
    write_file(tmp_path / "busy" / "keep.txt", b"mine\n")
    run("init", "repo", cwd=tmp_path)
    run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path)
    busy = run("restore", "-r", "repo", "v1", "busy", cwd=tmp_path)
    assert busy.returncode == 1 and "not an empty directory" in busy.stderr
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["keep.txt"]
    unknown = run("restore", "-r", "repo", "v9", "new", cwd=tmp_path)
    assert unknown.returncode == 10 and "no snapshot is tagged v9; tags: v1" in unknown.stderr


def test_library_snapshot_round_trip_and_paths_outside_the_working_directory(tmp_path: Path) -> None:
    write_file(tmp_path / "outside" / "x.bin", random_bytes(50_000, 3))
    with Repository.init(str(tmp_path / "repo")) as repo:
        made = repo.add_snapshot([tmp_path / "outside"], "base")
        assert [e.path for e in made.snapshot.entries] == ["outside", "outside/x.bin"]
        assert repo.tags()["base"].key == made.snapshot.key
        repo.restore("base", tmp_path / "back")
        assert (tmp_path / "back" / "outside" / "x.bin").read_bytes() == random_bytes(50_000, 3)
        with pytest.raises(SnapshotNotFound):
            repo.snapshot("nope")


def test_the_newest_snapshot_of_a_raced_tag_wins(repo: Repository, tmp_path: Path) -> None:
    added = repo.add_bytes(b"one")
    entry = SnapshotEntry("f", FILE, 0o644, bytes.fromhex(added.file_hash), added.size)
    older = put_snapshot(repo._backend, "race", [entry])
    time.sleep(0.01)
    newer = put_snapshot(repo._backend, "race", [entry, SnapshotEntry("g", FILE, 0o600, entry.file_hash, 3)])
    assert older.key != newer.key
    assert repo.snapshot("race").key == newer.key
    assert len(repo.snapshots()) == 2


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", ""])
def test_decoder_rejects_paths_that_leave_the_destination(path: str) -> None:
    snap = Snapshot("v1", 1, (SnapshotEntry("ok", FILE, 0o644, bytes(32), 0),))
    doc = json.loads(encode_snapshot(snap))
    doc["entries"][0]["path"] = path
    data = json.dumps(doc).encode()
    with pytest.raises(FormatError):
        decode_snapshot(data, "snapshots/x")


def test_snapshot_codec_round_trip() -> None:
    snap = Snapshot("v1", 123, (SnapshotEntry("d", "dir", 0o755), SnapshotEntry("d/f", FILE, 0o600, bytes(range(32)), 9, 5)))
    assert decode_snapshot(encode_snapshot(snap), "x") == snap


def _deleted_then_collected(tmp_path: Path, tagged: bool) -> tuple[Repository, str]:
    write_file(tmp_path / "d" / "f.bin", random_bytes(300_000, 4))
    repo = Repository.init(str(tmp_path / "repo"))
    if tagged:
        fh = repo.add_snapshot([tmp_path / "d"], "keep").added[0].file_hash
    else:
        fh = repo.add_file(tmp_path / "d" / "f.bin").file_hash
    with Repository.open(str(tmp_path / "repo"), cache_dir=tmp_path / "rm-cache") as other:
        remove_files(other._backend, other._index, [fh])  # what an rm racing `add --tag` would write
    repo.gc(grace=0, dry_run=False)
    return repo, fh


def test_gc_keeps_every_file_a_tag_names(tmp_path: Path) -> None:
    repo, _ = _deleted_then_collected(tmp_path / "tagged", tagged=True)
    with repo:
        assert list((tmp_path / "tagged" / "repo" / "xorbs").iterdir())
        repo.restore("keep", tmp_path / "back")
        assert (tmp_path / "back" / "d" / "f.bin").read_bytes() == random_bytes(300_000, 4)
    with Repository.open(str(tmp_path / "tagged" / "repo"), cache_dir=tmp_path / "fresh") as fresh:
        assert fresh.read_bytes(fresh.resolve("keep:d/f.bin")) == random_bytes(300_000, 4)
    control, _ = _deleted_then_collected(tmp_path / "untagged", tagged=False)
    with control:  # the same steps without a tag free the data
        assert not list((tmp_path / "untagged" / "repo" / "xorbs").iterdir())


def test_rm_refuses_a_file_a_tag_names(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "f.txt", b"kept\n")
    with Repository.init(str(tmp_path / "repo")) as repo:
        fh = repo.add_snapshot([tmp_path / "d"], "v1").added[0].file_hash
        with pytest.raises(Refused, match="is d/f.txt in snapshot v1"):
            repo.remove([fh])
        assert not list((tmp_path / "repo").glob("deletes/*"))


@pytest.mark.s3
def test_snapshots_on_s3_are_written_once_and_restore(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    write_file(tmp_path / "d" / "a.bin", random_bytes(200_000, 5))
    url = s3_server.url(bucket)
    with Repository.init(url) as repo:
        repo.add_snapshot([tmp_path / "d"], "v1")
        write_file(tmp_path / "d" / "b.txt", b"b\n")
        repo.add_snapshot([tmp_path / "d"], "v2")
    keys = [k for k in s3_server.keys(bucket) if "/snapshots/" in k]
    assert len(keys) == 2
    with Repository.open(url, cache_dir=tmp_path / "other-cache") as other:
        assert list(other.tags()) == ["v1", "v2"]
        other.restore("v2", tmp_path / "back")
        assert (tmp_path / "back" / "d" / "b.txt").read_bytes() == b"b\n"
        assert other.diff("v1", "v2").added[0].path == "d/b.txt"


def test_check_reports_a_tag_whose_files_no_shard_holds(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "f.txt", b"tagged\n")
    run("init", "repo", cwd=tmp_path)
    assert run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path).returncode == 0
    assert run("check", "-r", "repo", cwd=tmp_path).returncode == 0
    for shard in (tmp_path / "repo" / "shards").iterdir():
        shard.unlink()
    done = run("check", "-r", "repo", "--json", cwd=tmp_path)
    assert done.returncode == 3
    problems = [d for d in json_lines(done.stdout) if d["type"] == "problem" and d["key"].startswith("snapshots/")]
    assert problems and "tag v1 names 1 files no shard holds (d/f.txt)" in problems[0]["reason"]


def test_restore_of_a_tag_with_lost_files_writes_nothing(tmp_path: Path) -> None:
    write_file(tmp_path / "d" / "a.txt", b"a\n")
    write_file(tmp_path / "d" / "b.txt", b"b\n")
    run("init", "repo", cwd=tmp_path)
    run("add", "-r", "repo", "--tag", "v1", "d", cwd=tmp_path)
    for shard in (tmp_path / "repo" / "shards").iterdir():
        shard.unlink()
    done = run("restore", "-r", "repo", "v1", "out", cwd=tmp_path)
    assert done.returncode == 10 and "is not in the repository" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_link_to_a_file_is_recorded_as_that_file(tmp_path: Path) -> None:
    write_file(tmp_path / "data" / "weights.bin", random_bytes(300_000, 7))
    os.symlink("weights.bin", tmp_path / "data" / "model.bin")  # as in a Hugging Face snapshot folder
    assert run("init", "repo", cwd=tmp_path).returncode == 0
    added = run("add", "-r", "repo", "--tag", "v1", "data", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    restored = run("restore", "-r", "repo", "v1", "out", cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    copy = tmp_path / "out" / "data" / "model.bin"
    assert not copy.is_symlink() and copy.read_bytes() == (tmp_path / "data" / "weights.bin").read_bytes()


def _entry(repo: Repository, data: bytes, path: str) -> SnapshotEntry:
    added = repo.add_bytes(data)
    return SnapshotEntry(path, FILE, 0o644, from_xet_hex(added.file_hash), added.size)


def test_a_tag_reads_only_the_snapshot_it_names(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(4):
        put_snapshot(repo._backend, f"v{n}", [_entry(repo, b"file %d" % n, f"f{n}.txt")])
    decoded: list[str] = []
    real = tags_module.decode_snapshot
    monkeypatch.setattr(tags_module, "decode_snapshot", lambda data, what: decoded.append(what) or real(data, what))
    gets: list[str] = []
    real_get = repo._backend.get
    monkeypatch.setattr(repo._backend, "get", lambda key, *a: gets.append(key) or real_get(key, *a))
    snap = repo.snapshot("v2")
    assert decoded == [snap.key] and len(gets) == 5  # every head, then the chosen snapshot whole
    repo.restore(snap, tmp_path / "out")  # a snapshot in hand is not looked up again
    assert (tmp_path / "out" / "f2.txt").read_bytes() == b"file 2" and decoded == [snap.key]
    gets.clear()
    v3 = repo.snapshot("v3")
    assert gets == [v3.key], "heads already read are kept: only the chosen snapshot is read again"


def test_a_tag_whose_newest_snapshot_is_damaged_names_the_one_before(
    repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    older = put_snapshot(repo._backend, "v1", [_entry(repo, b"one", "ok.txt")])
    time.sleep(0.01)
    bad = Snapshot("v1", time.time_ns(), (SnapshotEntry("ok", FILE, 0o644, bytes(32), 0),))
    doc = json.loads(encode_snapshot(bad))
    doc["entries"][0]["path"] = "../escape"
    data = json.dumps(doc).encode()  # named by its bytes below: only its entries are bad
    repo._backend.put(snapshot_key(data), data)
    with caplog.at_level("WARNING", logger="xetstore"):
        assert repo.snapshot("v1").key == older.key
        assert repo.tags()["v1"].key == older.key
    assert snapshot_key(data) in caplog.text
    with pytest.raises(Refused, match=snapshot_key(data)):  # the damaged snapshot still holds its tag
        repo.add_snapshot([], "v1")


def test_the_next_process_reads_only_the_snapshot_a_tag_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    with Repository.init(str(tmp_path / "repo"), cache_dir=cache) as repo:
        for n in range(3):
            put_snapshot(repo._backend, f"v{n}", [_entry(repo, b"file %d" % n, f"f{n}.txt")])
        assert repo.snapshot("v1").tag == "v1"  # reads every head once, and saves them
    with Repository.open(str(tmp_path / "repo"), cache_dir=cache) as again:
        gets: list[str] = []
        real_get = again._backend.get
        monkeypatch.setattr(again._backend, "get", lambda key, *a: gets.append(key) or real_get(key, *a))
        snap = again.snapshot("v2")
        assert snap.tag == "v2" and gets == [snap.key], "the saved heads spare reading the other snapshots"
        again.restore(snap, tmp_path / "out")
    assert (tmp_path / "out" / "f2.txt").read_bytes() == b"file 2"


def test_saved_heads_that_lie_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    with Repository.init(str(tmp_path / "repo"), cache_dir=cache) as repo:
        keys = {n: put_snapshot(repo._backend, f"v{n}", [_entry(repo, b"file %d" % n, f"f{n}.txt")]).key for n in range(2)}
        assert set(repo.tags()) == {"v0", "v1"}
    saved = cache / "snapshot-heads.json"
    doc = json.loads(saved.read_bytes())
    doc["heads"][keys[0]][0], doc["heads"][keys[1]][0] = "v1", "v0"  # the tags swapped, as a damaged cache might
    saved.write_text(json.dumps(doc))
    with Repository.open(str(tmp_path / "repo"), cache_dir=cache) as again, caplog.at_level("WARNING", logger="xetstore"):
        assert again.snapshot("v0").key == keys[0]
        assert "disagrees" in caplog.text
    saved.write_bytes(b"\x00not json")
    with Repository.open(str(tmp_path / "repo"), cache_dir=cache) as third:
        assert third.snapshot("v1").key == keys[1] and set(third.tags()) == {"v0", "v1"}
