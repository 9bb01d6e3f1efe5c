"""Random sequences of what users do to a repository (add, rm, gc, check, reopen,
read ranges), against a model of which files it holds: after every step each
live file reads back byte-exactly, whole and in ranges, and nothing else is listed."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from xetstore import Repository
from xetstore.errors import EXIT_OK

# A few base contents and small edits of them, so versions share chunks and gc
# has shared xorbs to keep, repack or drop.
_BASES = [random.Random(seed).randbytes(160_000) for seed in range(3)]


@st.composite
def contents(draw: st.DrawFn) -> bytes:
    base = _BASES[draw(st.integers(0, len(_BASES) - 1))]
    cut = draw(st.integers(0, len(base)))
    insert = draw(st.binary(max_size=64))
    keep = draw(st.integers(0, len(base) - cut))
    return base[:cut] + insert + base[cut + (len(base) - cut - keep) :]


class RepositoryStates(RuleBasedStateMachine):
    files = Bundle("files")

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="xetstore-states-"))
        self.url = str(self.root / "repo")
        self.repo = Repository.init(self.url)
        self.model: dict[str, bytes] = {}  # live file hash -> its bytes

    def teardown(self) -> None:
        self.repo.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(target=files, data=contents())
    def add(self, data: bytes) -> str:
        added = self.repo.add_bytes(data)
        assert added.size == len(data)
        self.model[added.file_hash] = data
        return added.file_hash

    @rule(file_hash=consumes(files))
    def rm(self, file_hash: str) -> None:
        if file_hash not in self.model:
            return  # an earlier rm of the same content took it
        removed = self.repo.remove([file_hash])
        assert [f.file_hash for f in removed] == [file_hash]
        del self.model[file_hash]

    @rule()
    def gc(self) -> None:
        self.repo.gc(grace=0.0, dry_run=False)

    @rule()
    def check(self) -> None:
        report = self.repo.check(read_data=True)
        assert report.exit_code == EXIT_OK, report.problems

    @rule()
    def reopen(self) -> None:
        self.repo.close()
        self.repo = Repository.open(self.url)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_range(self, data: st.DataObject) -> None:
        file_hash = data.draw(st.sampled_from(sorted(self.model)))
        body = self.model[file_hash]
        start = data.draw(st.integers(0, len(body)))
        end = data.draw(st.integers(start, len(body)))
        assert self.repo.read_bytes(file_hash, start, end) == body[start:end]
        with self.repo.open_file(file_hash) as f:
            f.seek(end)
            assert f.read(4096) == body[end : end + 4096]

    @invariant()
    def holds_exactly_the_live_files(self) -> None:
        listed = {f.file_hash: f.size for f in self.repo.files()}
        assert listed == {h: len(b) for h, b in self.model.items()}

    @invariant()
    def live_files_read_back(self) -> None:
        for file_hash, body in self.model.items():
            assert b"".join(self.repo.iter_file(file_hash)) == body


TestRepositoryStates = pytest.mark.slow(RepositoryStates.TestCase)
RepositoryStates.TestCase.settings = settings(
    max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
