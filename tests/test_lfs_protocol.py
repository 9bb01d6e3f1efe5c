"""The agent loop driven with in-memory streams and a real folder repository (no git).

Every illegal message gets a clear init or per-object error, and the agent keeps serving.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.samples import random_bytes
from xetstore import ConfigError, Repository
from xetstore.lfs.agent import run_agent
from xetstore.lfs.commands import install_settings
from xetstore.lfs.gitconfig import RepositoryLocation, Workspace
from xetstore.lfs.protocol import MAX_LINE, InitRequest


class World:
    """A folder repository, a git-like LFS layout and a way to run agent sessions."""

    def __init__(self, tmp: Path) -> None:
        self.repo_path = tmp / "repo"
        Repository.init(str(self.repo_path)).close()
        self.workspace = Workspace(tmp / "work" / ".git", tmp / "work" / ".git" / "lfs", tmp / "work")
        self.workspace.tmp_dir.mkdir(parents=True)
        self.outside = tmp / "elsewhere"
        self.outside.mkdir()
        self.fail_init: Exception | None = None

    def locate(self, request: InitRequest) -> tuple[Workspace, RepositoryLocation]:
        if self.fail_init is not None:
            raise self.fail_init
        return self.workspace, RepositoryLocation(str(self.repo_path), "test")

    def object(self, data: bytes) -> tuple[str, Path]:
        """Put `data` where git-lfs keeps its objects; return (oid, path)."""
        oid = hashlib.sha256(data).hexdigest()
        path = self.workspace.lfs_dir / "objects" / oid[:2] / oid[2:4] / oid
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return oid, path

    def run(self, *messages: Any) -> list[dict[str, Any]]:
        """Send messages (dicts, or raw bytes lines) and return every reply."""
        lines = [m if isinstance(m, bytes) else json.dumps(m).encode() + b"\n" for m in messages]
        out = io.BytesIO()
        assert run_agent(io.BytesIO(b"".join(lines)), out, self.locate) == 0
        return [json.loads(line) for line in out.getvalue().splitlines()]


def init(operation: str) -> dict[str, Any]:
    return {"event": "init", "operation": operation, "remote": "origin", "concurrent": True, "concurrenttransfers": 8}


def upload(oid: str, size: int, path: Path | str) -> dict[str, Any]:
    return {"event": "upload", "oid": oid, "size": size, "path": str(path), "action": None}


def download(oid: str, size: int) -> dict[str, Any]:
    return {"event": "download", "oid": oid, "size": size, "action": None}


TERMINATE = {"event": "terminate"}


def completes(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in replies if r.get("event") == "complete"]


def error_of(reply: dict[str, Any]) -> tuple[int, str]:
    return reply["error"]["code"], reply["error"]["message"]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_upload_then_download_round_trips(world: World) -> None:
    data = random_bytes(3 * 1024 * 1024, seed=1)
    oid, path = world.object(data)
    replies = world.run(init("upload"), upload(oid, len(data), path), TERMINATE)
    assert replies[0] == {}
    progress = [r for r in replies if r.get("event") == "progress"]
    assert progress[0]["bytesSoFar"] > 0  # at once: git-lfs holds its other workers until then
    assert progress[-1]["bytesSoFar"] == len(data)
    assert sum(p["bytesSinceLast"] for p in progress) == len(data)
    assert completes(replies) == [{"event": "complete", "oid": oid}]

    replies = world.run(init("download"), download(oid, len(data)), TERMINATE)
    (done,) = completes(replies)
    assert "error" not in done
    got = Path(done["path"])
    assert got.parent == world.workspace.tmp_dir
    assert got.read_bytes() == data


def test_already_stored_object_completes_without_reading_the_file(world: World) -> None:
    data = random_bytes(100_000, seed=2)
    oid, path = world.object(data)
    world.run(init("upload"), upload(oid, len(data), path))
    path.unlink()  # a second upload must not need it
    replies = world.run(init("upload"), upload(oid, len(data), path))
    assert completes(replies) == [{"event": "complete", "oid": oid}]


def test_request_before_init_is_an_init_error_and_the_agent_keeps_serving(world: World) -> None:
    data = b"early bird"
    oid, path = world.object(data)
    replies = world.run(upload(oid, len(data), path), init("upload"), upload(oid, len(data), path))
    code, message = error_of(replies[0])
    assert code == 32 and "upload before init" in message
    assert replies[1] == {}
    assert completes(replies)[-1] == {"event": "complete", "oid": oid}


def test_request_for_the_other_direction_is_refused(world: World) -> None:
    oid = "a" * 64
    replies = world.run(init("upload"), download(oid, 5))
    (done,) = completes(replies)
    assert done["oid"] == oid
    code, message = error_of(done)
    assert code == 400 and "download in a upload session" in message and oid in message


def test_second_init_is_refused_as_an_init_error(world: World) -> None:
    replies = world.run(init("download"), init("upload"))
    assert replies[0] == {}
    code, message = error_of(replies[1])
    assert code == 32 and "second init" in message


@pytest.mark.parametrize(
    ("line", "before_init_fragment"),
    [
        (b"{not json\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"event": "bogus"}\n', "unknown event 'bogus'"),
        (b'{"oid": "x"}\n', "unknown event None"),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
def test_garbage_gets_an_error_before_and_after_init(world: World, line: bytes, before_init_fragment: str) -> None:
    data = b"still serving"
    oid, path = world.object(data)
    replies = world.run(line, init("upload"), line, upload(oid, len(data), path))
    code, message = error_of(replies[0])
    assert code == 32 and before_init_fragment in message
    assert replies[1] == {}
    code, message = error_of(replies[2])
    assert replies[2]["event"] == "complete" and code == 400 and before_init_fragment in message
    assert replies[-1] == {"event": "complete", "oid": oid}


def test_oversized_line_is_refused(world: World) -> None:
    huge = b'{"event": "upload", "pad": "' + b"x" * (MAX_LINE + 10) + b'"}\n'
    replies = world.run(init("download"), huge, download("b" * 64, 1))
    code, message = error_of(replies[1])
    assert code == 400 and "too long" in message
    code, message = error_of(completes(replies)[-1])
    assert code == 404  # the next request was read and answered normally


@pytest.mark.parametrize(
    ("oid", "fragment"),
    [("A" * 64, "not a sha256"), ("a" * 63, "not a sha256"), ("g" * 64, "not a sha256"), (123, "not a sha256")],
)
def test_invalid_oid_is_a_per_object_error(world: World, oid: Any, fragment: str) -> None:
    replies = world.run(init("download"), {"event": "download", "oid": oid, "size": 3}, download("c" * 64, 3))
    first, second = completes(replies)
    assert first["oid"] == (oid if isinstance(oid, str) else "")
    code, message = error_of(first)
    assert code == 400 and fragment in message
    assert error_of(second)[0] == 404  # still serving


@pytest.mark.parametrize(("size", "fragment"), [(-1, "out of range"), (1 << 50, "out of range"), ("10", "not an integer"), (True, "not an integer"), (1.5, "not an integer")])
def test_invalid_size_is_a_per_object_error(world: World, size: Any, fragment: str) -> None:
    oid = "d" * 64
    replies = world.run(init("download"), download(oid, size))
    (done,) = completes(replies)
    code, message = error_of(done)
    assert done["oid"] == oid and code == 400 and fragment in message and oid in message


def test_upload_path_outside_the_repository_is_refused(world: World) -> None:
    data = b"secret"
    oid = hashlib.sha256(data).hexdigest()
    outside = world.outside / "passwd"
    outside.write_bytes(data)
    sneaky = world.workspace.lfs_dir / "objects" / ".." / ".." / ".." / ".." / "elsewhere" / "passwd"
    for path in (outside, sneaky):
        replies = world.run(init("upload"), upload(oid, len(data), path))
        code, message = error_of(completes(replies)[0])
        assert code == 400 and "outside this git repository" in message and oid in message
    with Repository.open(str(world.repo_path)) as repo:
        assert repo.find(oid) is None


def test_upload_whose_content_does_not_match_its_oid_is_refused_and_stores_nothing(world: World) -> None:
    data = random_bytes(200_000, seed=3)
    claimed = hashlib.sha256(b"something else").hexdigest()
    path = world.workspace.lfs_dir / "objects" / claimed[:2] / claimed[2:4] / claimed
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    replies = world.run(init("upload"), upload(claimed, len(data), path), TERMINATE)
    code, message = error_of(completes(replies)[0])
    assert code == 422 and claimed in message and hashlib.sha256(data).hexdigest() in message
    assert "did not record it" in message
    with Repository.open(str(world.repo_path)) as repo:
        assert repo.find(claimed) is None and repo.stats().files == 0


def test_upload_whose_file_size_differs_from_the_request_is_refused(world: World) -> None:
    oid, path = world.object(b"12345")
    replies = world.run(init("upload"), upload(oid, 6, path))
    code, message = error_of(completes(replies)[0])
    assert code == 422 and "has 5 bytes" in message


def test_missing_upload_file_is_a_per_object_error(world: World) -> None:
    oid = "e" * 64
    path = world.workspace.lfs_dir / "objects" / "ee" / "ee" / oid
    replies = world.run(init("upload"), upload(oid, 10, path))
    code, message = error_of(completes(replies)[0])
    assert code == 422 and "No such file" in message and oid in message


def test_download_of_a_missing_object_names_it_and_leaves_no_file(world: World) -> None:
    oid = "f" * 64
    replies = world.run(init("download"), download(oid, 10), TERMINATE)
    code, message = error_of(completes(replies)[0])
    assert code == 404 and oid in message and "not in this repository" in message
    assert list(world.workspace.tmp_dir.iterdir()) == []


def test_download_whose_pointer_size_disagrees_is_refused(world: World) -> None:
    data = b"seven!!"
    oid, path = world.object(data)
    world.run(init("upload"), upload(oid, len(data), path))
    replies = world.run(init("download"), download(oid, len(data) + 1))
    code, message = error_of(completes(replies)[0])
    assert code == 400 and "pointer says 8 bytes" in message
    assert list(world.workspace.tmp_dir.iterdir()) == []


def test_download_creates_the_lfs_tmp_dir(world: World) -> None:
    data = random_bytes(50_000, seed=4)
    oid, path = world.object(data)
    world.run(init("upload"), upload(oid, len(data), path))
    world.workspace.tmp_dir.rmdir()  # a first clone's checkout has none yet
    (done,) = completes(world.run(init("download"), download(oid, len(data))))
    assert Path(done["path"]).read_bytes() == data


def test_downloaded_object_has_the_mode_the_umask_gives_a_new_file(world: World) -> None:
    data = random_bytes(20_000, seed=5)
    oid, path = world.object(data)
    world.run(init("upload"), upload(oid, len(data), path))
    old = os.umask(0o027)
    try:
        (done,) = completes(world.run(init("download"), download(oid, len(data))))
    finally:
        os.umask(old)
    assert os.stat(done["path"]).st_mode & 0o777 == 0o640


def test_rebuilt_object_whose_sha256_is_not_its_oid_is_refused_and_leaves_no_file(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted, other = random_bytes(30_000, seed=6), random_bytes(30_000, seed=7)
    (oid, path), (other_oid, other_path) = world.object(wanted), world.object(other)
    world.run(init("upload"), upload(oid, len(wanted), path), upload(other_oid, len(other), other_path))
    real_find = Repository.find
    # An index or shard that maps the oid to another file of the same size (corrupt metadata).
    monkeypatch.setattr(Repository, "find", lambda repo, sha: real_find(repo, other_oid if sha == oid else sha))
    (done,) = completes(world.run(init("download"), download(oid, len(wanted))))
    code, message = error_of(done)
    assert code == 422 and oid in message and hashlib.sha256(other).hexdigest() in message
    assert list(world.workspace.tmp_dir.iterdir()) == []


def test_empty_object(world: World) -> None:
    oid, path = world.object(b"")
    replies = world.run(init("upload"), upload(oid, 0, path))
    assert replies[1:] == [{"event": "complete", "oid": oid}]  # no progress for 0 bytes
    (done,) = completes(world.run(init("download"), download(oid, 0)))
    assert Path(done["path"]).read_bytes() == b""


def test_unusable_repository_at_init_is_an_init_error_then_requests_are_refused(world: World) -> None:
    world.fail_init = ConfigError("xetstore locator 'https://xetstore.invalid/x' names no repository")
    replies = world.run(init("download"), download("a" * 64, 1), TERMINATE)
    code, message = error_of(replies[0])
    assert code == 32 and "names no repository" in message
    code, message = error_of(replies[1])
    assert code == 32 and "before init" in message


def test_missing_repository_is_a_per_object_error_naming_it(world: World, tmp_path: Path) -> None:
    world.repo_path = tmp_path / "gone"
    replies = world.run(init("download"), download("a" * 64, 1), download("b" * 64, 1))
    for done, oid in zip(completes(replies), ("a" * 64, "b" * 64), strict=True):
        code, message = error_of(done)
        assert code == 404 and oid in message and str(world.repo_path) in message


def test_terminate_ends_the_session(world: World) -> None:
    replies = world.run(init("download"), TERMINATE, download("a" * 64, 1))
    assert replies == [{}]


def test_agent_start_does_not_import_the_engine_nor_the_working_directory(tmp_path: Path) -> None:
    """git-lfs starts eight agents serially per transfer, in the repository's top level:
    their start must stay cheap, and a `xetstore/` folder there must not be imported."""
    (tmp_path / "xetstore").mkdir()
    (tmp_path / "xetstore" / "__init__.py").write_text("raise SystemExit('imported the working directory')\n")
    settings = dict(install_settings())
    command = f"{settings['lfs.customtransfer.xetstore.path']} {settings['lfs.customtransfer.xetstore.args']}"
    env = {**os.environ, "XETSTORE_LOG": str(tmp_path / "agent.log"), "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(
        ["sh", "-c", command], input=json.dumps(init("download")).encode() + b"\n",
        capture_output=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    reply = json.loads(done.stdout)  # stdout holds protocol lines only
    assert reply["error"]["code"] == 32 and "not in a git repository" in reply["error"]["message"]
    imported = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "xetstore.lfs.agent" in imported
    assert not imported & {"numpy", "lmdb", "zstandard", "xetstore.repository", "click"}
