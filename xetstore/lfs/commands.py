"""`xetstore lfs ...`: run the agent, install it for git-lfs, point a git repository at a repository.

Heavy modules (the repository and everything under it), the agent and the git
helpers are imported inside the commands that need them, so `python -m
xetstore.lfs agent` starts fast and registering `lfs` costs other commands nothing.
"""

from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, XetStoreError
from ..output import Output, common_options
from .locator import SENTINEL, encode_locator

__all__ = ["lfs", "AGENTS", "AGENT_ARGS", "AGENT_SCRIPT", "install_settings", "agent_command"]

# Two names for one agent, so git-lfs runs it differently per kind of repository
# (it picks the most specific lfs.<url>.standalonetransferagent). Folder
# repositories get one agent process: eight would each import the engine and
# open the index for work a local disk does faster serially (measured 2-3x
# slower on two cores). Others (S3) get git-lfs's eight, to overlap round trips.
AGENTS = (("xetstore", "true", SENTINEL), ("xetstore-folder", "false", f"{SENTINEL}file/"))
_LFSCONFIG_HEADER = """\
# The LFS objects of this project live in a xetstore repository (lfs.url below).
# Once per machine: install xetstore (`pip install PATH-TO-ITS-CHECKOUT`),
# `git lfs install`, `xetstore lfs install`.
# Without that, git-lfs tries to reach the host xetstore.invalid and fails.
"""


# git-lfs runs agents in the repository's top level, and `python -m` would import a
# `xetstore/` folder found there instead of the installed package: running code from
# whatever repository is being cloned. So drop the working directory from sys.path.
AGENT_ARGS = (
    shlex.quote("import sys; sys.path = [p for p in sys.path if p]; from xetstore.lfs.__main__ import main; main()")
    + " agent"
)


# The console script of the agent's fast entry (pyproject.toml). Its directory,
# not the working directory, heads sys.path, so it is safe in any repository.
AGENT_SCRIPT = "xetstore-lfs"


def agent_command(python: str = sys.executable) -> tuple[str, str]:
    """(path, args) git-lfs runs: the installed `xetstore-lfs agent` script, or, when
    this environment has none (run from a source tree), this interpreter itself."""
    for scheme_dir in (sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")):
        script = Path(scheme_dir) / AGENT_SCRIPT
        if script.is_file() and os.access(script, os.X_OK):
            return str(script), "agent"
    return python, f"-c {AGENT_ARGS}"


def install_settings(python: str = sys.executable) -> list[tuple[str, str]]:
    """The git config `lfs install` writes: the agents, and the URL-scoped mappings
    that send only sentinel endpoints to them (other remotes keep theirs)."""
    path, args = agent_command(python)
    settings = []
    for name, concurrent, url in AGENTS:
        settings += [
            (f"lfs.customtransfer.{name}.path", shlex.quote(path)),  # git-lfs runs `sh -c '<path> <args>'`
            (f"lfs.customtransfer.{name}.args", args),
            (f"lfs.customtransfer.{name}.concurrent", concurrent),
            (f"lfs.{url}.standalonetransferagent", name),
        ]
    return settings


@click.group(name="lfs", context_settings={"help_option_names": ["-h", "--help"]})
def lfs() -> None:
    """git-lfs integration: push, clone and pull LFS objects through a repository.

    \b
    Once per machine:      xetstore lfs install      (and `git lfs install`)
    Once per git project:  xetstore lfs init URL     (then commit .lfsconfig)
    Then plain git push / git clone / git lfs pull work everywhere.
    """


@lfs.command()
@click.option("--repo", help="Repository URL; default: $XETSTORE_REPO, then the git repository's lfs.url.")
def agent(repo: str | None) -> None:
    """Serve git-lfs on stdin/stdout (git-lfs runs this; see `lfs install`)."""
    from .agent import main as agent_main  # here, not at the top: every `xetstore` command would load it

    sys.exit(agent_main(repo))


def _scope_option(fn: Any) -> Any:
    fn = click.option("--local", "scope", flag_value="local", help="This git repository only.")(fn)
    return click.option("--global", "scope", flag_value="global", default=True, help="This user (default).")(fn)


@lfs.command()
@_scope_option
@common_options
def install(out: Output, scope: str) -> None:
    """Configure git-lfs to use the agent for xetstore endpoints (other remotes untouched).

    git-lfs will run the absolute path of the `xetstore-lfs` command of this
    environment (or of its Python, when it has no such command): run `lfs install`
    again after moving or recreating the environment. Folder repositories get one
    agent process per transfer, others (S3) eight; change it with
    `git config --global lfs.customtransfer.xetstore-folder.concurrent true`.
    """
    from .gitconfig import read_config, run_git

    for key, value in install_settings():
        run_git(["config", f"--{scope}", key, value])
        out.emit("config", f"git config --{scope} {key} {value}", scope=scope, key=key, value=value)
    path, args = agent_command()
    out.note(f"git-lfs will run `{path} {args}`; run `xetstore lfs install` again if this environment moves")
    if not read_config().get("filter.lfs.process"):
        out.note("git-lfs's own filters are not configured; run `git lfs install` once too")


@lfs.command()
@_scope_option
@common_options
def uninstall(out: Output, scope: str) -> None:
    """Remove exactly what `lfs install` wrote."""
    from .gitconfig import run_git

    for key, _ in install_settings():
        done = run_git(["config", f"--{scope}", "--unset-all", key], check=False)
        if done.returncode == 0:
            out.emit("removed", f"removed {key} ({scope})", scope=scope, key=key)
    for section in [f"lfs.customtransfer.{name}" for name, _, _ in AGENTS] + [f"lfs.{url}" for _, _, url in AGENTS]:
        pattern = "^" + section.replace(".", r"\.") + r"\."
        if run_git(["config", f"--{scope}", "--get-regexp", pattern], check=False).returncode == 1:
            run_git(["config", f"--{scope}", "--remove-section", section], check=False)  # now empty


@lfs.command(name="init")
@click.argument("repo_url")
@click.option("--remote", help="Use the repository only for this git remote (remote.NAME.lfsurl) instead of all (lfs.url).")
@common_options
def init_(out: Output, repo_url: str, remote: str | None) -> None:
    """Point this git repository at REPO_URL: writes .lfsconfig (commit it)."""
    from ..repository import Repository
    from .gitconfig import find_workspace, read_config, run_git

    workspace = find_workspace()
    if workspace.top_level is None:
        raise ConfigError(f"{workspace.git_dir} is a bare git repository; run `xetstore lfs init` in a clone")
    url = _absolute(repo_url)
    with Repository.open(url):
        pass  # refuse a URL that holds no repository before anyone commits it
    key = f"remote.{remote}.lfsurl" if remote else "lfs.url"
    value = encode_locator(url)
    lfsconfig = workspace.top_level / ".lfsconfig"
    if not lfsconfig.exists():
        lfsconfig.write_text(_LFSCONFIG_HEADER)  # what a machine without the agent shows its user
    run_git(["config", "-f", str(lfsconfig), key, value])
    out.emit("lfsconfig", f"wrote {key} = {value} to .lfsconfig\nnext: git add .lfsconfig && git commit -m "
             "'Store LFS objects in xetstore'", path=str(lfsconfig), key=key, value=value)  # fmt: skip
    if not read_config().get(f"lfs.{SENTINEL}.standalonetransferagent"):
        out.note("the agent is not installed here; run `xetstore lfs install` (once per machine)")


@lfs.command()
@click.option("--repo", help="As for `lfs agent`.")
@click.option("--remote", default="origin", show_default=True, help="Git remote whose endpoint to resolve.")
@common_options
def env(out: Output, repo: str | None, remote: str) -> None:
    """What the agent would use here: repository, its source, cache, log (for bug reports)."""
    from .. import __version__
    from ..params import default_cache_root
    from .agent import LOG_NAME
    from .gitconfig import find_workspace, locate_repository, read_config, read_lfsconfig, run_git

    config = read_config()
    fields: dict[str, Any] = {"version": __version__, "python": sys.executable}
    fields.update({k: config.get(k, "") for k, _ in install_settings()})
    done = run_git(["lfs", "version"], check=False)
    fields["git_lfs"] = done.stdout.decode(errors="replace").strip() or "not installed"
    try:
        workspace = find_workspace(config=config)
        fields.update(git_dir=str(workspace.git_dir), lfs_dir=str(workspace.lfs_dir),
                      log=os.environ.get("XETSTORE_LOG") or str(workspace.logs_dir / LOG_NAME))  # fmt: skip
        for operation in ("download", "upload"):
            location = locate_repository(
                repo, os.environ, config, lambda: read_lfsconfig(workspace), remote, operation
            )  # fmt: skip
            fields[f"{operation}_repository"] = location.url
            fields[f"{operation}_source"] = location.source
        fields["cache_dir"] = _cache_dir(fields["download_repository"], default_cache_root())
    except XetStoreError as exc:
        fields["error"] = str(exc)
    width = max(map(len, fields))
    out.emit("env", "\n".join(f"{k:<{width}}  {v}" for k, v in fields.items()), **fields)


def _cache_dir(url: str, root: Path) -> str:
    from ..repository import Repository

    try:
        with Repository.open(url) as r:
            return str(r.cache_dir)
    except XetStoreError as exc:
        return f"{root}/<repository id> (cannot open the repository: {exc})"


def _absolute(url: str) -> str:
    """A URL every clone can use: relative folder paths become absolute."""
    if "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))
