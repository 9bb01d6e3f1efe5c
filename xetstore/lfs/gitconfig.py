"""What the agent learns from git: where the LFS directories are and which repository to use.

git-lfs gives a standalone agent no URL: only the remote's name, the working
directory (the worktree's top level) and the environment (`GIT_DIR` during a
clone's checkout, `-c` options in `GIT_CONFIG_PARAMETERS`). So the agent asks
git itself, with the same precedence git-lfs uses to pick the endpoint that
routed the transfer here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from ..errors import ConfigError
from .locator import SENTINEL, decode_locator, is_sentinel

__all__ = [
    "Workspace",
    "RepositoryLocation",
    "find_workspace",
    "read_config",
    "read_lfsconfig",
    "locate_repository",
    "run_git",
]

_GIT_TIMEOUT = 60  # seconds; git config and rev-parse answer in milliseconds

# Keys git-lfs accepts from a committed .lfsconfig that matter for the endpoint.
_LFSCONFIG_KEYS = ("lfs.url", "lfs.pushurl")


class Workspace(NamedTuple):
    """A git repository as git-lfs lays it out."""

    git_dir: Path  # the common git dir (shared by all worktrees)
    lfs_dir: Path  # lfs.storage, default <git_dir>/lfs
    top_level: Path | None  # None in a bare repository

    @property
    def tmp_dir(self) -> Path:
        return self.lfs_dir / "tmp"

    @property
    def logs_dir(self) -> Path:
        return self.lfs_dir / "logs"

    def contains(self, path: str) -> bool:
        """Whether `path` (symlinks resolved) lies inside this git repository."""
        real = os.path.realpath(path)
        roots = [self.git_dir, self.lfs_dir] + ([self.top_level] if self.top_level else [])
        return any(_inside(real, os.path.realpath(r)) for r in roots)


class RepositoryLocation(NamedTuple):
    url: str  # what Repository.open takes: a path or s3:// URL
    source: str  # where it came from, for messages and `xetstore lfs env`


def run_git(args: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=_GIT_TIMEOUT
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"`git {' '.join(args)}` did not answer in {_GIT_TIMEOUT} s") from None
    if check and done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise ConfigError(f"`git {' '.join(args)}` failed: {reason}")
    return done


def find_workspace(cwd: Path | None = None, config: Mapping[str, str] | None = None) -> Workspace:
    """The git repository around `cwd` (default: the current directory)."""
    done = run_git(["rev-parse", "--path-format=absolute", "--git-common-dir", "--show-toplevel"], cwd, check=False)
    lines = done.stdout.decode("utf-8", "surrogateescape").splitlines()
    if not lines:
        where = cwd or Path.cwd()
        raise ConfigError(f"{where} is not in a git repository; git-lfs runs the agent from one")
    git_dir = Path(lines[0])
    top = Path(lines[1]) if done.returncode == 0 and len(lines) > 1 else None
    storage = (config if config is not None else read_config(cwd)).get("lfs.storage", "")
    lfs_dir = git_dir / "lfs"
    if storage:
        # git-lfs reads a relative lfs.storage relative to the git dir.
        lfs_dir = Path(os.path.expanduser(storage))
        lfs_dir = lfs_dir if lfs_dir.is_absolute() else git_dir / lfs_dir
    return Workspace(git_dir, lfs_dir, top)


def read_config(cwd: Path | None = None, file: str | None = None, blob: str | None = None) -> dict[str, str]:
    """git config as {key: last value}: all scopes and -c options, or one file or blob."""
    args = ["config", "-l", "-z"]
    if file is not None:
        args += ["-f", file]
    if blob is not None:
        args += ["--blob", blob]
    done = run_git(args, cwd, check=file is None and blob is None)
    if done.returncode != 0:
        return {}
    values: dict[str, str] = {}
    for entry in done.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            values[key] = value
    return values


def read_lfsconfig(workspace: Workspace) -> tuple[dict[str, str], str]:
    """The committed .lfsconfig as git-lfs reads it, and where it was found.

    The worktree file first (what git-lfs reads); during a clone's checkout it
    may not be written yet, so then the index and HEAD.
    """
    if workspace.top_level is not None:
        path = workspace.top_level / ".lfsconfig"
        if path.is_file():
            return read_config(workspace.top_level, file=str(path)), ".lfsconfig"
    cwd = workspace.top_level or workspace.git_dir
    for blob in (":.lfsconfig", "HEAD:.lfsconfig"):
        values = read_config(cwd, blob=blob)
        if values:
            return values, f"{blob} (committed .lfsconfig)"
    return {}, ".lfsconfig"


def locate_repository(
    option: str | None,
    environ: Mapping[str, str],
    config: Mapping[str, str],
    lfsconfig: Callable[[], tuple[dict[str, str], str]],
    remote: str,
    operation: str,
) -> RepositoryLocation:
    """Which repository to use: --repo, $XETSTORE_REPO, then the LFS endpoint git-lfs chose.

    The endpoint keys are tried in git-lfs's order (lfs.pushurl when uploading,
    lfs.url, remote.<remote>.lfspushurl, remote.<remote>.lfsurl); for each,
    git config wins over .lfsconfig, as in git-lfs.
    """
    if option:
        return _location(option, "--repo")
    if environ.get("XETSTORE_REPO"):
        return _location(environ["XETSTORE_REPO"], "XETSTORE_REPO")
    keys = (["lfs.pushurl"] if operation == "upload" else []) + ["lfs.url"]
    if remote:
        keys += ([f"remote.{remote}.lfspushurl"] if operation == "upload" else []) + [f"remote.{remote}.lfsurl"]
    committed: tuple[dict[str, str], str] | None = None
    for key in keys:
        if config.get(key):
            return _location(config[key], f"{key} in git config")
        if key in _LFSCONFIG_KEYS or key == f"remote.{remote}.lfsurl":
            committed = committed or lfsconfig()
            if committed[0].get(key):
                return _location(committed[0][key], f"{key} in {committed[1]}")
    raise ConfigError(
        "no xetstore repository is configured for this git repository: run `xetstore lfs init URL` "
        f"here (it writes lfs.url = {SENTINEL}... to .lfsconfig), or set XETSTORE_REPO"
    )


def _location(value: str, source: str) -> RepositoryLocation:
    value = value.strip()
    if is_sentinel(value):
        return RepositoryLocation(decode_locator(value), source)
    if value.startswith(("http://", "https://", "ssh://", "git@")):
        raise ConfigError(
            f"{source} is {value!r}, a normal LFS server, not a xetstore repository; "
            f"a xetstore lfs.url starts with {SENTINEL} (write it with `xetstore lfs init URL`)"
        )
    if not value:
        raise ConfigError(f"{source} is empty")
    return RepositoryLocation(value, source)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
