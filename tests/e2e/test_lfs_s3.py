"""git push / clone / incremental push through the agent, with the repository in an S3 bucket.

Ceph RGW is the server that matters (skipped unless `eval "$(tools/rgw start)"`
configured it); moto's server runs the same scenario everywhere else. The
committed .lfsconfig names the bucket, prefix and endpoint; each machine's
credentials reach the agent only through its environment, as AWS_* variables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gitworld import (
    Machine,
    agent_log,
    assert_checkout_complete,
    edit_big_file,
    have_git_lfs,
    lfs_tree,
    tree,
)
from tests.s3_servers import S3Server, aws_env, moto_server, rgw_server  # noqa: F401
from xetstore.lfs.locator import SENTINEL

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.s3,
    pytest.mark.skipif(not have_git_lfs(), reason="git and git-lfs are needed (tools/setup installs them)"),
]

_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@pytest.fixture(params=["moto", "rgw"])
def server(request: pytest.FixtureRequest, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> S3Server:  # noqa: F811
    found: S3Server = request.getfixturevalue(f"{request.param}_server")
    if found.name == "moto":  # moto takes any keys: unmistakable ones make the secret check bite
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"AKIALFSE2E{uuid.uuid4().hex[:10].upper()}")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"lfs-e2e-secret-{uuid.uuid4().hex}")
    return found


@pytest.fixture
def bucket(server: S3Server) -> Iterator[str]:
    name = server.new_bucket()
    yield name
    server.remove_bucket(name)


def machine(root: Path, name: str) -> Machine:
    """A machine with the agent installed globally and S3 keys in its environment only."""
    found = Machine(root, name)
    found.env.update({key: os.environ[key] for key in _CREDENTIALS})
    return found


def commit_and_push(who: Machine, work: Path, message: str) -> None:
    who.git("add", "-A", cwd=work)
    who.git("commit", "-q", "-m", message, cwd=work)
    who.git("push", "-q", "origin", "main", cwd=work)


def secrets_on_disk(root: Path) -> list[str]:
    """Every file under `root` (homes, caches, clones, the git remote) holding a key."""
    keys = [os.environ[key].encode() for key in _CREDENTIALS]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and any(k in p.read_bytes() for k in keys))  # fmt: skip


def test_push_clone_and_incremental_push_through_a_bucket(server: S3Server, bucket: str, tmp_path: Path) -> None:
    prefix = "team/models"
    url = server.url(bucket, prefix)
    alice = machine(tmp_path, "alice")
    alice.xetstore("init", url)
    remote, source = tmp_path / "remote.git", tmp_path / "alice-work"
    alice.git("init", "--bare", str(remote))
    alice.git("init", str(source))
    lfs_tree(source, big_size=24 * 1024 * 1024, small_files=5)
    alice.xetstore("lfs", "init", url, cwd=source)
    alice.git("remote", "add", "origin", str(remote), cwd=source)
    commit_and_push(alice, source, "v1")
    v1, stored_v1 = tree(source), sum(server.keys(bucket, f"{prefix}/").values())
    uploads = [line for line in agent_log(source) if " INFO upload " in line]
    lfs_files = [name for name, data in v1.items() if name.endswith(".bin") and data]
    assert len(uploads) == len(lfs_files) - 1  # the two twins are one object
    assert any(f"repository={url} " in line for line in agent_log(source) if " INFO init upload " in line)
    assert server.keys(bucket, f"{prefix}/xorbs/") and server.keys(bucket, f"{prefix}/shards/")

    bob = machine(tmp_path, "bob")  # another computer: its own HOME, cache and keys
    clone = tmp_path / "bob-clone"
    bob.git("clone", "-q", str(remote), str(clone))  # nothing per clone: the committed .lfsconfig
    assert_checkout_complete(clone, v1, bob)

    edit_big_file(source / "big.bin")
    commit_and_push(alice, source, "v2: edit big.bin")
    v2, stored_v2 = tree(source), sum(server.keys(bucket, f"{prefix}/").values())
    assert 0 < stored_v2 - stored_v1 < 0.05 * len(v2["big.bin"])
    bob.git("pull", "-q", cwd=clone)
    assert_checkout_complete(clone, v2, bob)

    lfsconfig = (clone / ".lfsconfig").read_text()
    assert f"url = {SENTINEL}s3/{bucket}/team/models" in lfsconfig
    for config in (source / ".lfsconfig", source / ".git" / "config", clone / ".git" / "config",
                   alice.home / ".gitconfig", bob.home / ".gitconfig"):  # fmt: skip
        text = config.read_text()
        assert not [key for key in _CREDENTIALS if os.environ[key] in text], f"a key is in {config}"
    assert secrets_on_disk(tmp_path) == []
