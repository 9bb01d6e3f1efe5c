"""Binary release series: a tree of build artifacts across releases, generated like code.

Real binaries from the machine would make the bytes depend on the machine, so
they are synthesised: functions are runs of instruction-like byte patterns
(a Zipf-weighted table, some random immediates; compresses about like x86 code),
linked into executables and shared libraries with `call rel32` sites between
functions, a symbol table of addresses and a build id. When a release changes a
few functions or inserts new ones, every later function moves, so call targets
and symbol addresses change all over the file, as they do in real rebuilds. A
wheel (deflate zip of Python-like sources) rides along.

Versions: five releases; between two, 2 % of functions change (in runs of 20,
as when a few source files are edited), 0.5 % are removed, 1 % are added (a
tenth between existing functions, the rest at the end) and 10 % of the wheel's
modules are edited. Most calls go to nearby functions, so only calls that span
an insertion change.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOAD"]

_RELEASES = 5
_ARTIFACTS = (("bin/app", 0.40), ("lib/libcore.so", 0.35), ("lib/libplugin_a.so", 0.12), ("lib/libplugin_b.so", 0.08))
_WHEEL_SHARE = 0.05
_AVG_FUNCTION = 900  # bytes


@dataclass(slots=True)
class _Function:
    ident: int
    artifact: int
    position: float  # order inside its artifact
    revision: int = 0
    callees: list[int] = field(default_factory=list)


def _instruction_table(seed: int) -> list[bytes]:
    g = rng(seed, "release", "isa")
    return [g.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in g.integers(1, 8, 512)]


class _Linker:
    """Builds function bodies (cached per revision) and links artifacts."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.table = _instruction_table(seed)
        self._bodies: dict[tuple[int, int], list[bytes]] = {}

    def segments(self, fn: _Function) -> list[bytes]:
        key = (fn.ident, fn.revision)
        if key not in self._bodies:
            self._bodies[key] = self._body(fn)
        return self._bodies[key]

    def _body(self, fn: _Function) -> list[bytes]:
        g = rng(self.seed, "release", "fn", fn.ident, fn.revision)
        size = int(min(20_000, g.lognormal(np.log(_AVG_FUNCTION) - 0.5, 1.0)))
        picks = np.minimum(g.zipf(1.4, max(4, size // 3)), len(self.table)) - 1
        body = bytearray(b"".join(self.table[p] for p in picks))
        holes = g.integers(0, len(body), len(body) // 12)  # immediates and displacements
        body_arr = np.frombuffer(body, dtype=np.uint8).copy()
        body_arr[holes] = g.integers(0, 256, len(holes), dtype=np.uint8)
        raw = body_arr.tobytes()
        cuts = sorted(int(c) for c in g.integers(0, len(raw), len(fn.callees)))
        return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]

    def link(self, fns: list[_Function], addresses: dict[int, int], version: int) -> bytes:
        text = bytearray()
        for fn in fns:
            text += b"\xcc" * (-len(text) % 16)
            base = len(text)
            addresses[fn.ident] = base
            for k, seg in enumerate(self.segments(fn)):
                text += seg
                if k < len(fn.callees):
                    text += b"\xe8\0\0\0\0"
        self._patch(text, fns, addresses)
        symbols = b"".join(struct.pack("<24sQ", f"fn_{fn.ident:07d}".encode(), addresses[fn.ident]) for fn in fns)
        build_id = rng(self.seed, "release", "build-id", version).bytes(20)
        header = struct.pack("<4s12s20sQQ", b"\x7fELF", f"1.{version}.0".encode(), build_id, len(text), len(symbols))
        return header + bytes(text) + symbols

    def _patch(self, text: bytearray, fns: list[_Function], addresses: dict[int, int]) -> None:
        for fn in fns:
            pos = addresses[fn.ident]
            for k, seg in enumerate(self.segments(fn)[:-1]):
                pos += len(seg)
                target = addresses.get(fn.callees[k])
                # a call into another library goes through a stub named by the callee, not an address
                rel = target - (pos + 5) if target is not None else -(fn.callees[k] & 0x7FFFFFF)
                struct.pack_into("<i", text, pos + 1, rel)
                pos += 5


def _wheel(seed: int, modules: dict[int, int], version: int) -> bytes:
    """A deterministic wheel: fixed timestamps, sources that depend on each module's revision."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for ident, rev in sorted(modules.items()):
            g = rng(seed, "release", "module", ident, rev)
            names = [f"value_{int(n)}" for n in g.integers(0, 400, 60)]
            lines = [f"def func_{ident}_{k}({names[k]}, {names[k + 1]}):\n    return {names[k]} * {int(g.integers(1, 99))} + {names[k + 1]}\n"
                     for k in range(0, 58, 2)]  # fmt: skip
            z.writestr(zipfile.ZipInfo(f"app/mod_{ident:04d}.py", (1980, 1, 1, 0, 0, 0)), "".join(lines))
        z.writestr(zipfile.ZipInfo("app-1.0.dist-info/METADATA", (1980, 1, 1, 0, 0, 0)), f"Name: app\nVersion: 1.{version}.0\n")
    return buf.getvalue()


def _evolve(fns: list[_Function], g: np.random.Generator, next_id: int, modules: dict[int, int]) -> int:
    by_layout = sorted(range(len(fns)), key=lambda k: (fns[k].artifact, fns[k].position))
    for start in g.choice(len(fns), max(1, len(fns) // 1000), replace=False):  # edited source files
        for k in by_layout[int(start) : int(start) + 20]:
            fns[k].revision += 1
    for start in sorted(g.choice(len(fns) - 5, max(1, len(fns) // 1000), replace=False), reverse=True):
        del fns[int(start) : int(start) + 5]  # removed code, a few functions at a time
    top = max(f.position for f in fns)
    for n in range(max(1, len(fns) // 100)):
        if n % 10 == 0:  # a tenth lands between existing functions, the rest is new code at the end
            at = fns[int(g.integers(0, len(fns)))]
            fns.append(_new_function(g, next_id, fns, at.position + 1e-9, at.artifact))
        else:
            top += 1.0
            fns.append(_new_function(g, next_id, fns, top))
        next_id += 1
    for m in g.choice(len(modules), max(1, len(modules) // 10), replace=False):
        modules[int(m)] += 1
    return next_id


def _new_function(g: np.random.Generator, ident: int, fns: list[_Function], position: float, artifact: int | None = None) -> _Function:
    """Calls go mostly to functions defined nearby (same source file), some far away."""
    if artifact is None:
        weights = np.array([w for _, w in _ARTIFACTS])
        artifact = int(g.choice(len(_ARTIFACTS), p=weights / weights.sum()))
    callees = []
    for _ in range(int(g.integers(0, 6)) if fns else 0):
        near = g.random() < 0.98
        k = len(fns) - 1 - int(g.integers(0, min(len(fns), 40))) if near else int(g.integers(0, len(fns)))
        callees.append(fns[k].ident)
    return _Function(ident, artifact, position, 0, callees)


def generate(dest: Path, target_bytes: int, seed: int) -> None:
    per_release = target_bytes / _RELEASES
    g = rng(seed, "release", "layout")
    fns: list[_Function] = []
    count = max(40, int(per_release * (1 - _WHEEL_SHARE) / (1.7 * _AVG_FUNCTION)))  # linked size per function, measured
    bounds = np.cumsum([w for _, w in _ARTIFACTS]) / sum(w for _, w in _ARTIFACTS) * count
    for ident in range(count):  # each library is a contiguous range of the code base
        fns.append(_new_function(g, ident, fns, float(ident), int(np.searchsorted(bounds, ident, side="right"))))
    modules = {m: 0 for m in range(max(2, int(per_release * _WHEEL_SHARE / 1500)))}
    linker, next_id = _Linker(seed), count
    for version in range(1, _RELEASES + 1):
        if version > 1:
            next_id = _evolve(fns, rng(seed, "release", "evolve", version), next_id, modules)
        folder = version_dir(dest, version)
        for a, (name, _) in enumerate(_ARTIFACTS):
            members = sorted((f for f in fns if f.artifact == a), key=lambda f: f.position)
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(linker.link(members, {}, version))
        (folder / "dist").mkdir(exist_ok=True)
        (folder / "dist" / "app-py3-none-any.whl").write_bytes(_wheel(seed, modules, version))


WORKLOAD = Workload("release", "build artifacts (executable, shared libraries, wheel) across 5 releases", generate)
