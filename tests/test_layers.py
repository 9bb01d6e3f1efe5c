"""DESIGN §5: imports point down the layers, and each third-party library has one home."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import click
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xetstore"

# Module (path relative to xetstore/, without .py) -> layer. Lower layers never import higher.
LAYERS = {
    "errors": 0, "params": 0, "faults": 0,
    "chunking": 1, "gear": 1, "hashing": 1, "compression": 1, "call_filter": 1,
    "xorb": 2, "near_copies": 2, "packing": 2, "shard": 2, "config": 2, "snapshot": 2, "records": 2, "keys": 2, "lfs/protocol": 2, "lfs/locator": 2,
    "index": 3, "backends": 3,
    "repository": 4, "repository_state": 4, "reading": 4, "adding": 4, "tagging": 4, "grouped_bases": 4, "clean": 4, "xorb_writer": 4, "intake": 4, "cutting": 4, "smudge": 4, "frame_cache": 4, "file_reader": 4, "maintenance": 4, "trees": 4, "tags": 4, "names": 4,
    "destination": 4, "file_batches": 4, "inputs": 4, "dedup_targets": 4, "delta_bases": 4, "interrupts": 5, "display": 5,
    "cli": 5, "output": 5, "progress": 5, "lfs": 5, "__init__": 5, "__main__": 5, "bench": 5,
}  # fmt: skip

# Inside the maintenance package (all of layer 4) a module imports only those
# listed before it, so the order a reader walks them in is the order they build on.
MAINTENANCE_ORDER = [
    "binding", "leases", "objects", "deletes", "inventory", "reindex", "repack", "sweep", "check", "gc", "repair", "reframe", "compact",
]  # fmt: skip

# Third-party library -> the only module allowed to import it.
OWNERS = {
    "fastcdc": "chunking", "blake3": "hashing", "zstandard": "compression", "bitarray": "compression",
    "lmdb": "index", "boto3": "backends/s3", "botocore": "backends/s3", "tqdm": "progress",
}  # fmt: skip


def layer_of(module: str) -> int:
    if module in LAYERS:
        return LAYERS[module]
    top = module.split("/")[0]
    if top in LAYERS:
        return LAYERS[top]
    raise AssertionError(f"xetstore/{module}.py has no layer in tests/test_layers.py: add it to DESIGN §5")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def name_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("").as_posix()
    return rel[: -len("/__init__")] if rel.endswith("/__init__") else rel


def imported(path: Path) -> list[tuple[str, int]]:
    """(absolute dotted name, level) of every import in a module."""
    tree = ast.parse(path.read_text())
    package = name_of(path).split("/")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module or "", 0))
            else:
                base = package[: len(package) - node.level + 1]
                target = "/".join([*base, *(node.module or "").split(".")]).strip("/")
                if node.module:
                    found.append((target, node.level))
                else:
                    found += [(resolve(f"{target}/{a.name}".strip("/")), node.level) for a in node.names]
    return found


def resolve(target: str) -> str:
    """`from . import y` names module y if there is one, else the package itself."""
    if (PACKAGE / f"{target}.py").exists() or (PACKAGE / target).is_dir():
        return target
    return target.rsplit("/", 1)[0] if "/" in target else "__init__"


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_imports_point_down(path: Path) -> None:
    me = name_of(path)
    for target, level in imported(path):
        if level == 0:
            continue
        if target.split("/")[0] == me.split("/")[0] and layer_of(target) == layer_of(me):
            continue
        assert layer_of(target) <= layer_of(me), f"{me} (L{layer_of(me)}) imports {target} (L{layer_of(target)})"


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_third_party_libraries_have_one_home(path: Path) -> None:
    me = name_of(path)
    for target, level in imported(path):
        lib = target.split(".")[0]
        if level == 0 and lib in OWNERS:
            owner = OWNERS[lib]
            assert me == owner or me.startswith(owner + "/"), f"{me} imports {lib}; only {owner} may"


def test_no_grab_bag_modules() -> None:
    banned = {"utils", "helpers", "common", "misc", "manager"}
    assert not [p for p in modules() if p.stem in banned]


def sibling_violations(me: str, targets: list[str], order: list[str]) -> list[str]:
    """Imports of `me` (a maintenance module) that reach a sibling not declared before it."""
    before = order[: order.index(me)] if me in order else []
    return [t for t in targets if t in order and t != me and t not in before]


@pytest.mark.parametrize("path", sorted((PACKAGE / "maintenance").glob("*.py")), ids=name_of)
def test_maintenance_imports_follow_the_declared_order(path: Path) -> None:
    me = name_of(path).removeprefix("maintenance").strip("/")
    if not me:
        return  # the package's __init__ exports from all of them
    assert me in MAINTENANCE_ORDER, f"maintenance/{me}.py is not in MAINTENANCE_ORDER"
    siblings = [t.removeprefix("maintenance/") for t, _ in imported(path) if t.startswith("maintenance/")]
    assert not sibling_violations(me, siblings, MAINTENANCE_ORDER), f"maintenance/{me} imports a later sibling"


def test_an_undeclared_sibling_import_is_rejected() -> None:
    """The order check can fail: an import of a later sibling is caught, an earlier one is not."""
    assert sibling_violations("inventory", ["gc"], MAINTENANCE_ORDER) == ["gc"]
    assert sibling_violations("repair", ["gc", "check"], MAINTENANCE_ORDER) == []
    assert sibling_violations("leases", ["inventory"], ["leases", "inventory"]) == ["inventory"]


def test_nothing_outside_maintenance_imports_its_modules() -> None:
    """Outside the package, maintenance is reached through its __init__ exports only."""
    outside = [p for p in modules() if not name_of(p).startswith("maintenance")]
    reached = [(name_of(p), t) for p in outside for t, _ in imported(p) if t.startswith("maintenance/")]
    assert not reached


_KEY_PREFIXES = ("xorbs/", "shards/", "deletes/", "snapshots/", "locks/", "quarantine/")


def key_literals(tree: ast.AST) -> list[int]:
    """Lines of string literals (plain or f-string parts) that spell an object key prefix."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
    }  # fmt: skip
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        and node.value.startswith(_KEY_PREFIXES)
    ]  # fmt: skip


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_object_keys_are_built_only_in_keys(path: Path) -> None:
    if name_of(path) == "keys":
        return
    assert not key_literals(ast.parse(path.read_text())), f"{name_of(path)} spells an object key; use xetstore/keys.py"


def test_a_key_spelled_by_hand_is_found() -> None:
    assert key_literals(ast.parse('"""xorbs/ in a docstring"""\nk = f"xorbs/{h}"\nj = "locks/" + s\n')) == [2, 3]


def test_cli_commands_load_from_one_place_without_a_cycle() -> None:
    """The group names every other command module (loading it when a command is
    used); those modules import only cli/commands (the group), and it none of them
    (only cli/startup, which imports nothing of the package)."""
    from xetstore.cli.commands import cli

    inside = sorted(p for p in (PACKAGE / "cli").glob("*.py") if p.name != "__init__.py")
    reached = {name_of(p): {t for t, _ in imported(p) if t == "cli" or t.startswith("cli/")} for p in inside}
    assert reached == {
        "cli/commands": {"cli/startup"}, "cli/startup": set(),
        "cli/maintenance": {"cli/commands"}, "cli/snapshots": {"cli/commands"},
    }  # fmt: skip
    named = {m.removeprefix("xetstore.").replace(".", "/") for m in type(cli).ELSEWHERE.values()}
    assert named == {"cli/maintenance", "cli/snapshots", "bench/cli", "lfs/commands"}
    for name, module in type(cli).ELSEWHERE.items():  # each name is a command of its module
        assert cli.get_command(click.Context(cli), name) is getattr(importlib.import_module(module), name)
