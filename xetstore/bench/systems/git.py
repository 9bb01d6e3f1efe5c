"""git push and git clone as a user runs them: through xetstore's agent, and through plain git-lfs.

Both systems keep a real git repository whose every file is an LFS object (`git lfs track
'*'`; .gitattributes and .lfsconfig stay plain git files), commit each version and push it
to a file:// bare remote, then restore the last version with `git clone` of that remote.
git runs with a HOME and global config of the run's own (GIT_CONFIG_GLOBAL, no system
config, none of the caller's GIT_* or XETSTORE_* variables), so a user's configuration is
neither read nor written.

- `xetstore-git`: set up the zero-setup way the README describes (`git lfs install`,
  `xetstore lfs install`, `xetstore init REPO`, `xetstore lfs init REPO` writing the
  committed .lfsconfig); git-lfs runs `xetstore-lfs agent` for every transfer, one agent
  process per push or clone for a folder repository. Repository and remote sit in the
  run's folder, on the same disk as xetstore-cli's and hf_xet's.
- `git-lfs`: plain git-lfs; its built-in standalone file transfer stores whole objects in
  the bare remote's lfs/objects. On the working copy's filesystem that transfer hard-links
  objects and costs nothing, so this remote lives on another one (/dev/shm first: tmpfs,
  where git-lfs's copies, which it never fsyncs, land in memory as on any page cache);
  without a second filesystem the run fails rather than time hard links.

Timed: each version's `git push` (git-lfs's pre-push hook and the agent processes it starts
included). Before it, untimed (`prepare_version`): syncing the version into the working
copy, `git add -A` (git-lfs's clean filter hashes each changed file and copies it into
.git/lfs/objects, the same work for both systems) and `git commit`. Restore, timed: `git
clone --separate-git-dir` into the empty destination (checkout, smudge and agent downloads
included), then deleting the three files git leaves there (.git, .gitattributes, .lfsconfig).
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import tempfile
from pathlib import Path

from .base import System, SystemError_, disk_bytes, run_tool, tree_bytes, tree_files, which
from .processes import compile_package, xetstore_command

__all__ = ["GitLfs", "XetstoreGit"]

_KEEP = (".gitattributes", ".lfsconfig")  # git's files in the top level, never LFS objects
_EXCLUDE_KEPT = "".join(f"{name} !filter !diff !merge text\n" for name in _KEEP)
_IDENTITY = (("user.name", "bench"), ("user.email", "bench@example.com"), ("init.defaultBranch", "main"))


class GitLfs(System):
    name = "git-lfs"
    description = (
        "plain git-lfs: whole objects through its built-in file:// transfer to a bare remote on another "
        "filesystem (/dev/shm), so they are copied, not hard-linked; timed: `git push` per version, `git clone`"
    )
    in_process = False

    def __init__(self) -> None:
        self.remote_root: Path | None = None
        self.staged: str | None = None  # the label of the last version committed

    def missing(self) -> str | None:
        if which("git") is None:
            return "git is not installed (not on PATH)"
        try:
            run_tool(["git", "lfs", "version"])
        except SystemError_:
            return "git-lfs is not installed (`git lfs version` fails)"
        return None

    def version(self) -> str:
        git, lfs = run_tool(["git", "--version"]), run_tool(["git", "lfs", "version"])
        return f"{git.strip()}; {lfs.split()[0] if lfs.strip() else 'git-lfs'}"

    def setup(self, workdir: Path) -> None:
        self.workdir, self.work = workdir, workdir / "work"
        self.remote_root = self._remote_root(workdir)
        self.remote = self.remote_root / "remote.git"
        self.env = _isolated_env(workdir)
        for key, value in _IDENTITY:
            self.git("config", "--global", key, value)
        self.git("lfs", "install", "--skip-repo")  # never hooks into a repository around --workdir
        self._install_store()
        templates = workdir / "no-templates"  # no sample hooks counted in the remote's bytes
        templates.mkdir()
        self.git("init", "-q", "--bare", f"--template={templates}", str(self.remote))
        self.git("init", "-q", str(self.work))
        self.git("lfs", "track", "*", cwd=self.work)
        with open(self.work / ".gitattributes", "a") as f:
            f.write(_EXCLUDE_KEPT)  # `*` matched them too; git must read them as text
        self._point_at_store()
        self.git("remote", "add", "origin", self.remote.as_uri(), cwd=self.work)
        self.git("add", "-A", cwd=self.work)
        self.git("commit", "-q", "-m", "LFS setup", cwd=self.work)
        self.git("push", "-q", "origin", "main", cwd=self.work)  # so each timed push holds one version

    def _remote_root(self, workdir: Path) -> Path:
        elsewhere = _other_filesystem(workdir)
        if elsewhere is None:
            raise SystemError_(
                "git-lfs needs its remote on another filesystem (tried /dev/shm and the temp folder): "
                "on the same one it hard-links objects and a push copies nothing"
            )
        return elsewhere

    def _install_store(self) -> None:
        """Where xetstore-git installs its agent and creates its repository."""

    def _point_at_store(self) -> None:
        """Where xetstore-git writes the working copy's .lfsconfig."""

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return run_tool(["git", *args], cwd=cwd or self.workdir, env=self.env, inherit=False)

    def prepare_version(self, source: Path, label: str) -> None:
        _sync(source, self.work)
        self.git("add", "-A", cwd=self.work)
        self.git("commit", "-q", "--allow-empty", "-m", f"version {label}", cwd=self.work)
        self.staged = label

    def add_version(self, source: Path, label: str) -> None:
        if self.staged != label:  # called without the runner's untimed step: stage here
            self.prepare_version(source, label)
        self.git("push", "-q", "origin", "main", cwd=self.work)

    def restore(self, label: str, dest: Path) -> None:
        if label != self.staged:
            raise SystemError_(f"{self.name} restores the last version pushed ({self.staged}), not {label}")
        git_dir = self.workdir / "clone.git"  # outside dest, on its filesystem
        self.git("clone", "-q", f"--separate-git-dir={git_dir}", self.remote.as_uri(), str(dest))
        for name in (".git", *_KEEP):
            (dest / name).unlink(missing_ok=True)  # plain git-lfs has no .lfsconfig

    def stored_bytes(self) -> int:
        return tree_bytes(self.remote)

    def cache_bytes(self) -> int:
        return disk_bytes(self.work / ".git" / "lfs")  # git-lfs's local copy of every object pushed

    def unique_bytes(self) -> int | None:
        return tree_bytes(self.remote / "lfs" / "objects")

    def close(self) -> None:
        if self.remote_root is not None and self.remote_root != getattr(self, "workdir", None):
            shutil.rmtree(self.remote_root, ignore_errors=True)  # the run's folder is removed by the runner


class XetstoreGit(GitLfs):
    name = "xetstore-git"
    description = (
        "git + git-lfs with xetstore's agent, zero setup (`xetstore lfs install`, committed .lfsconfig), "
        "folder repository, one agent process per push or clone; timed: `git push` per version, `git clone`"
    )

    def version(self) -> str:
        from ... import __version__

        return f"xetstore {__version__}; {super().version()}"

    def _remote_root(self, workdir: Path) -> Path:
        return workdir

    def _install_store(self) -> None:
        compile_package()  # as installed: no agent process compiles the package
        self.repo = self.workdir / "xetstore-repo"
        self.xetstore("lfs", "install", "-q")
        self.xetstore("init", "-q", str(self.repo))

    def _point_at_store(self) -> None:
        self.xetstore("lfs", "init", "-q", str(self.repo), cwd=self.work)

    def xetstore(self, *args: str, cwd: Path | None = None) -> str:
        return run_tool([*xetstore_command(), *args], cwd=cwd or self.workdir, env=self.env, inherit=False)

    def stored_bytes(self) -> int:
        return super().stored_bytes() + tree_bytes(self.repo)

    def cache_bytes(self) -> int:
        return super().cache_bytes() + disk_bytes(Path(self.env["XETSTORE_CACHE"]))

    def unique_bytes(self) -> int:
        out = self.xetstore("stats", "--json", "-r", str(self.repo))
        return int(json.loads(out.splitlines()[-1])["unique_bytes"])


def _isolated_env(workdir: Path) -> dict[str, str]:
    """This process's environment with git's global config, HOME and xetstore's cache in `workdir`."""
    home = workdir / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XETSTORE_"))}
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", XETSTORE_CACHE=str(workdir / "cache"),
    )  # fmt: skip
    return env


def _other_filesystem(workdir: Path) -> Path | None:
    """A new folder on a filesystem other than `workdir`'s, or None when there is none."""
    here = os.stat(workdir).st_dev
    for candidate in ("/dev/shm", tempfile.gettempdir(), "/var/tmp"):
        try:
            if os.stat(candidate).st_dev != here and os.access(candidate, os.W_OK):
                return Path(tempfile.mkdtemp(prefix="xetstore-bench-remote-", dir=candidate))
        except OSError:
            continue
    return None


def _sync(source: Path, work: Path) -> None:
    """Make the working copy hold exactly the version's files, beside git's own."""
    wanted = [rel.as_posix() for rel in tree_files(source)]
    for rel in wanted:
        if rel in _KEEP or ".git" in rel.split("/"):
            raise SystemError_(f"the version holds {rel}, a name git keeps for itself")
    stale = set(_work_files(work)) - set(wanted)
    for rel in stale:
        (work / rel).unlink()
    _prune_empty_folders(work)  # a folder left empty may be a file's name in this version
    for rel in wanted:
        src, dst = source / rel, work / rel
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            continue  # unchanged: rewriting it would only make git clean it again
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _work_files(work: Path) -> list[str]:
    """The working copy's files as posix relative paths, without .git and git's top-level files."""
    found = []
    for dirpath, dirnames, names in os.walk(work):
        if Path(dirpath) == work:
            dirnames[:] = [d for d in dirnames if d != ".git"]
            names = [n for n in names if n not in _KEEP]
        found += [Path(dirpath, n).relative_to(work).as_posix() for n in names]
    return found


def _prune_empty_folders(work: Path) -> None:
    folders = []
    for dirpath, dirnames, _ in os.walk(work):
        if Path(dirpath) == work:
            dirnames[:] = [d for d in dirnames if d != ".git"]
        folders.append(Path(dirpath))
    for path in reversed(folders[1:]):  # a walk lists parents first: children are emptied before them
        if not any(path.iterdir()):
            path.rmdir()
