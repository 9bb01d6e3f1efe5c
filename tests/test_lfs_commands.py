"""`xetstore lfs install|uninstall|init|env` against real git config files, in a temporary HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from xetstore import Repository
from xetstore.lfs.commands import AGENT_SCRIPT
from xetstore.lfs.locator import encode_locator


class Home:
    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.home.mkdir()
        self.env = {"PATH": os.environ["PATH"], "HOME": str(self.home), "GIT_CONFIG_NOSYSTEM": "1",
                    "XETSTORE_CACHE": str(tmp / "cache"), "LANG": "C.UTF-8"}  # fmt: skip
        self.git("config", "--global", "user.name", "Test User")
        self.git("config", "--global", "init.defaultBranch", "main")

    def run(self, args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=cwd or self.home, env=self.env, capture_output=True, text=True, timeout=120)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = self.run(["git", *args], cwd)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def xetstore(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "xetstore", *args], cwd)

    @property
    def gitconfig(self) -> Path:
        return self.home / ".gitconfig"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def test_install_writes_the_agent_and_a_url_scoped_mapping_and_uninstall_removes_exactly_that(home: Home) -> None:
    before = home.gitconfig.read_text()
    done = home.xetstore("lfs", "install")
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in home.git("config", "--global", "--list").splitlines())
    script = Path(sysconfig.get_path("scripts")) / AGENT_SCRIPT  # the console script, not the interpreter
    assert script.is_file()
    assert f"git-lfs will run `{script} agent`" in done.stderr and "if this environment moves" in done.stderr
    for name, concurrent in (("xetstore", "true"), ("xetstore-folder", "false")):
        assert values[f"lfs.customtransfer.{name}.path"] == str(script)
        assert values[f"lfs.customtransfer.{name}.args"] == "agent"
        assert values[f"lfs.customtransfer.{name}.concurrent"] == concurrent
    assert "lfs.standalonetransferagent" not in values  # unscoped would hijack every remote

    def agent_for(endpoint: str) -> str:
        done = home.run(["git", "config", "--get-urlmatch", "lfs.standalonetransferagent", endpoint])
        return done.stdout.strip()

    # git (and git-lfs) pick the most specific URL: folders get the one-process agent
    assert agent_for("https://xetstore.invalid/file/srv/repo") == "xetstore-folder"
    assert agent_for("https://xetstore.invalid/s3/bucket/prefix") == "xetstore"
    assert agent_for("https://github.com/o/r.git/info/lfs") == ""
    done = home.xetstore("lfs", "uninstall")
    assert done.returncode == 0, done.stderr
    assert home.gitconfig.read_text() == before


def test_uninstall_keeps_what_the_user_added_to_the_same_sections(home: Home) -> None:
    home.xetstore("lfs", "install")
    home.git("config", "--global", "lfs.customtransfer.xetstore.direction", "both")
    home.xetstore("lfs", "uninstall")
    assert home.git("config", "--global", "lfs.customtransfer.xetstore.direction").strip() == "both"
    assert "path" not in home.gitconfig.read_text() and "xetstore-folder" not in home.gitconfig.read_text()


def test_install_local_configures_one_repository(home: Home, tmp_path: Path) -> None:
    work = tmp_path / "work"
    home.git("init", str(work))
    before = home.gitconfig.read_text()
    assert home.xetstore("lfs", "install", "--local", cwd=work).returncode == 0
    assert home.gitconfig.read_text() == before
    assert home.git("config", "--local", "lfs.customtransfer.xetstore.args", cwd=work).strip() == "agent"
    assert home.xetstore("lfs", "uninstall", "--local", cwd=work).returncode == 0
    assert "xetstore" not in (work / ".git" / "config").read_text()


def test_init_writes_the_sentinel_to_lfsconfig(home: Home, tmp_path: Path) -> None:
    repo_path = tmp_path / "shared repos" / "models"
    Repository.init(str(repo_path)).close()
    work = tmp_path / "work"
    home.git("init", str(work))
    (work / "sub").mkdir()
    done = home.xetstore("lfs", "init", str(repo_path), cwd=work / "sub")
    assert done.returncode == 0, done.stderr
    assert "xetstore lfs install" in done.stderr  # not installed on this machine yet
    value = home.git("config", "-f", str(work / ".lfsconfig"), "lfs.url").strip()
    assert value == encode_locator(str(repo_path))
    assert "xetstore lfs install" in (work / ".lfsconfig").read_text()  # for whoever clones without it

    assert home.xetstore("lfs", "init", str(repo_path), "--remote", "origin", cwd=work).returncode == 0
    assert home.git("config", "-f", str(work / ".lfsconfig"), "remote.origin.lfsurl").strip() == value


def test_init_refuses_a_url_without_a_repository(home: Home, tmp_path: Path) -> None:
    work = tmp_path / "work"
    home.git("init", str(work))
    done = home.xetstore("lfs", "init", str(tmp_path / "nothing"), cwd=work)
    assert done.returncode == 10 and "no xetstore repository" in done.stderr and "xetstore init" in done.stderr
    assert not (work / ".lfsconfig").exists()


def test_init_outside_a_git_repository_fails_clearly(home: Home, tmp_path: Path) -> None:
    Repository.init(str(tmp_path / "r")).close()
    done = home.xetstore("lfs", "init", str(tmp_path / "r"), cwd=tmp_path)
    assert done.returncode == 1 and "not in a git repository" in done.stderr


def test_env_reports_what_the_agent_would_use(home: Home, tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    with Repository.init(str(repo_path)) as repo:
        repo_id = repo.config.id
    work = tmp_path / "work"
    home.git("init", str(work))
    home.xetstore("lfs", "install")
    home.xetstore("lfs", "init", str(repo_path), cwd=work)
    done = home.xetstore("lfs", "env", "--json", cwd=work)
    assert done.returncode == 0, done.stderr
    fields = json.loads(done.stdout)
    assert fields["download_repository"] == str(repo_path)
    assert fields["download_source"] == "lfs.url in .lfsconfig"
    assert fields["cache_dir"].endswith(repo_id)
    assert fields["lfs.customtransfer.xetstore.path"] == str(Path(sysconfig.get_path("scripts")) / AGENT_SCRIPT)
    assert fields["log"] == str(work / ".git" / "lfs" / "logs" / "xetstore.log")
    assert "error" not in fields


def test_env_explains_a_missing_configuration(home: Home, tmp_path: Path) -> None:
    work = tmp_path / "work"
    home.git("init", str(work))
    done = home.xetstore("lfs", "env", cwd=work)
    assert done.returncode == 0
    assert "xetstore lfs init URL" in done.stdout


def test_the_installed_agent_script_serves_git_lfs(home: Home, tmp_path: Path) -> None:
    script = Path(sysconfig.get_path("scripts")) / AGENT_SCRIPT
    done = subprocess.run([str(script), "agent"], input=b'{"event":"init","operation":"download","remote":"origin",'
                          b'"concurrent":false,"concurrenttransfers":1}\n', capture_output=True, cwd=tmp_path,
                          env={**home.env, "XETSTORE_LOG": str(tmp_path / "log")}, timeout=60)  # fmt: skip
    assert "not in a git repository" in json.loads(done.stdout)["error"]["message"]


def test_lfs_commands_take_json(home: Home, tmp_path: Path) -> None:
    installed = home.xetstore("lfs", "install", "--json")
    lines = [json.loads(line) for line in installed.stdout.splitlines()]
    assert {d["type"] for d in lines} == {"config", "note"} and installed.stderr == ""
    assert {"scope": "global", "key": "lfs.customtransfer.xetstore.args", "value": "agent", "type": "config"} in lines
    Repository.init(str(tmp_path / "repo")).close()
    work = tmp_path / "work"
    home.git("init", str(work))
    (made,) = [json.loads(line) for line in home.xetstore("lfs", "init", str(tmp_path / "repo"), "--json",
                                                          cwd=work).stdout.splitlines()]  # fmt: skip
    assert made["type"] == "lfsconfig" and made["key"] == "lfs.url"
    header = (work / ".lfsconfig").read_text()
    assert "pip install PATH-TO-ITS-CHECKOUT" in header and "pip install xetstore" not in header  # not on PyPI
    (env,) = [json.loads(line) for line in home.xetstore("lfs", "env", "--json", cwd=work).stdout.splitlines()]
    assert env["type"] == "env" and env["download_repository"] == str(tmp_path / "repo")
    removed = [json.loads(line) for line in home.xetstore("lfs", "uninstall", "--json").stdout.splitlines()]
    assert removed and all(d["type"] == "removed" for d in removed)
    failed = home.xetstore("lfs", "init", str(tmp_path / "none"), "--json", cwd=work)
    assert json.loads(failed.stderr)["type"] == "error" and failed.returncode == 10
