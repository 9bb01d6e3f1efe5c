"""The sentinel lfs.url and the order in which the agent looks for its repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xetstore import ConfigError
from xetstore.lfs.gitconfig import find_workspace, locate_repository
from xetstore.lfs.locator import SENTINEL, decode_locator, encode_locator, is_sentinel

SEGMENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=12)


@given(st.lists(SEGMENT, min_size=1, max_size=5))
def test_folder_paths_survive_the_round_trip(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    url = encode_locator(path)
    assert decode_locator(url) == path
    rest = url[len(SENTINEL) :]
    # Nothing git-lfs would rewrite: no blanks, no doubled or trailing slash, no query.
    assert " " not in url and "//" not in rest and not url.endswith("/") and "?" not in url and "#" not in url


@pytest.mark.parametrize(
    "url",
    ["/srv/lfs repos/models", "//net/share", "/a//b/", "s3://bucket/prefix", "s3://bucket/deep/prefix/",
     "s3://bucket/p?endpoint=http://127.0.0.1:9000&region=x", "/tmp/ünïcødé/%41"],
)  # fmt: skip
def test_examples_round_trip(url: str) -> None:
    assert decode_locator(encode_locator(url)) == url


def test_file_url_becomes_a_path() -> None:
    assert decode_locator(encode_locator("file:///srv/my%20repo")) == "/srv/my repo"


def test_readable_form() -> None:
    assert encode_locator("/srv/lfs repos/models") == "https://xetstore.invalid/file/srv/lfs%20repos/models"
    assert encode_locator("s3://bucket/prefix") == "https://xetstore.invalid/s3/bucket/prefix"


@pytest.mark.parametrize("url", ["relative/path", "memory://x", "http://host/x", "file://host/x", "/", "s3://"])
def test_urls_other_clones_cannot_use_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        encode_locator(url)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("https://example.com/file/x", "not a xetstore locator"), (SENTINEL, "names no repository"),
     (SENTINEL + "ftp/x", "names no repository"), (SENTINEL + "file/", "empty")],
)  # fmt: skip
def test_unparseable_locators_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        decode_locator(value)


def test_sentinel_host_is_matched_exactly() -> None:
    assert is_sentinel("HTTPS://XETSTORE.INVALID/file/x")
    assert not is_sentinel("https://xetstore.invalid.example.com/file/x")
    assert not is_sentinel("http://xetstore.invalid/file/x")


A = encode_locator("/repos/a")
B = encode_locator("/repos/b")
C = encode_locator("/repos/c")


def locate(config: dict[str, str], committed: dict[str, str], operation: str = "download",
           remote: str = "origin", option: str | None = None, environ: dict[str, str] | None = None) -> tuple[str, str]:  # fmt: skip
    found = locate_repository(option, environ or {}, config, lambda: (committed, ".lfsconfig"), remote, operation)
    return found.url, found.source


def test_precedence_follows_git_lfs() -> None:
    assert locate({}, {"lfs.url": A}) == ("/repos/a", "lfs.url in .lfsconfig")
    assert locate({"lfs.url": B}, {"lfs.url": A}) == ("/repos/b", "lfs.url in git config")
    assert locate({"remote.origin.lfsurl": B}, {"lfs.url": A})[0] == "/repos/a"  # lfs.url wins, as in git-lfs
    assert locate({}, {"remote.origin.lfsurl": A}) == ("/repos/a", "remote.origin.lfsurl in .lfsconfig")
    assert locate({"lfs.pushurl": C}, {"lfs.url": A}, operation="upload")[0] == "/repos/c"
    assert locate({"lfs.pushurl": C}, {"lfs.url": A}, operation="download")[0] == "/repos/a"
    assert locate({}, {"lfs.url": A}, option="/x") == ("/x", "--repo")
    assert locate({}, {"lfs.url": A}, environ={"XETSTORE_REPO": "/y"}) == ("/y", "XETSTORE_REPO")


def test_other_remotes_do_not_see_origins_lfsurl() -> None:
    with pytest.raises(ConfigError, match="xetstore lfs init"):
        locate({}, {"remote.origin.lfsurl": A}, remote="mirror")


def test_a_normal_lfs_server_is_not_taken_for_a_repository() -> None:
    with pytest.raises(ConfigError, match="normal LFS server"):
        locate({"lfs.url": "https://github.com/org/repo.git/info/lfs"}, {})


def test_plain_paths_in_git_config_are_accepted() -> None:
    assert locate({"lfs.url": "/srv/repo"}, {})[0] == "/srv/repo"


def test_outside_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in a git repository"):
        find_workspace(tmp_path)


def test_workspace_honours_lfs_storage(tmp_path: Path) -> None:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    plain = find_workspace(work / ".")
    assert plain.git_dir == work / ".git" and plain.lfs_dir == work / ".git" / "lfs" and plain.top_level == work
    subprocess.run(["git", "-C", str(work), "config", "lfs.storage", "../lfs-objects"], check=True)
    assert find_workspace(work).lfs_dir == work / ".git" / ".." / "lfs-objects"  # relative to the git dir
    subprocess.run(["git", "-C", str(work), "config", "lfs.storage", str(tmp_path / "elsewhere")], check=True)
    moved = find_workspace(work)
    assert moved.tmp_dir == tmp_path / "elsewhere" / "tmp" and moved.logs_dir == tmp_path / "elsewhere" / "logs"
    assert moved.contains(str(tmp_path / "elsewhere" / "objects" / "ab" / "cd" / "x"))
    assert not moved.contains(str(tmp_path / "outside"))
