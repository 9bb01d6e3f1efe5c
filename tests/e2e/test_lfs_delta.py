"""A git-lfs push into a delta repository: uploads carry no path, so the base is a stored file of the same size."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.gitworld import Machine, assert_checkout_complete, have_git_lfs, repository_stats, tree
from tests.samples import write_file
from tests.test_delta import weights

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_git_lfs(), reason="git and git-lfs are needed (tools/setup installs them)"),
]

N = 1_000_000  # float32 weights: 4 MB


def push_two_versions(root: Path, delta: bool) -> tuple[int, int]:
    """Push a model, then its full fine-tune (same size); the bytes each push stored."""
    alice = Machine(root, "alice")
    repo = root / "xet repo"
    alice.xetstore("init", *(["--delta"] if delta else []), str(repo))
    remote, source = root / "remote.git", root / "work"
    alice.git("init", "--bare", str(remote))
    alice.git("init", str(source))
    (source / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write_file(source / "model.bin", weights(N, 7))
    alice.xetstore("lfs", "init", str(repo), cwd=source)
    alice.git("add", "-A", cwd=source)
    alice.git("commit", "-m", "v1", cwd=source)
    alice.git("remote", "add", "origin", str(remote), cwd=source)
    alice.git("push", "-u", "origin", "main", cwd=source)
    first = repository_stats(repo, root / "stats-cache").stored_bytes
    write_file(source / "model.bin", weights(N, 7, nudge=1e-3))
    alice.git("commit", "-am", "v2: fine-tuned", cwd=source)
    alice.git("push", "origin", "main", cwd=source)
    second = repository_stats(repo, root / "stats-cache").stored_bytes - first

    bob = Machine(root, "bob", install=False)
    clone = root / "clone"
    bob.git("clone", *bob.agent_config(), str(remote), str(clone))
    assert_checkout_complete(clone, tree(source), bob)
    return first, second


def test_pushed_fine_tune_is_stored_as_deltas_and_cloned_byte_identical(tmp_path: Path) -> None:
    plain = push_two_versions(tmp_path / "plain", delta=False)
    delta = push_two_versions(tmp_path / "delta", delta=True)
    assert delta[1] < 0.75 * plain[1]
