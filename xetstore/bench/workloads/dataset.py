"""Dataset series: the same table as CSV and as JSONL, edited the way datasets are.

Rows look like an orders log (id, timestamp, user, country, category, amount,
quantity, free-text comment drawn from a Zipf-distributed vocabulary), so the
text compresses like real exports do.

Versions: v01 base → v02 rows appended → v03 scattered in-place edits (0.5 % of
rows rewritten) → v04 a block deleted from the middle → v05 a block inserted
further on. Every version holds `orders.csv` and `orders.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOAD"]

_COUNTRIES = ("DE", "FR", "US", "GB", "JP", "BR", "IN", "NL", "SE", "ES", "IT", "CA", "KR", "PL")
_CATEGORIES = ("books", "garden", "toys", "electronics", "grocery", "clothing", "sports", "tools")
_ROW_BYTES = 150  # CSV + JSONL bytes per row, each, on average (measured)

Line = tuple[str, str]  # (csv line, jsonl line)


def _vocabulary(seed: int, size: int = 4000) -> list[str]:
    g = rng(seed, "dataset", "vocabulary")
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    lengths = g.integers(2, 11, size)
    return [letters[g.integers(0, 26, n)].tobytes().decode() for n in lengths]


def _rows(seed: int, tag: str, first_id: int, count: int, words: list[str]) -> list[Line]:
    g = rng(seed, "dataset", tag)
    seconds = np.cumsum(g.integers(1, 90, count)) + 1_700_000_000 + first_id * 45
    stamps = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    users = g.integers(0, 50_000, count)
    countries = g.integers(0, len(_COUNTRIES), count)
    categories = g.integers(0, len(_CATEGORIES), count)
    amounts = np.round(g.lognormal(3.0, 1.0, count), 2)
    quantities = g.integers(1, 10, count)
    n_words = g.integers(3, 14, count)
    picks = np.minimum(g.zipf(1.3, int(n_words.sum())), len(words)) - 1
    out: list[Line] = []
    pos = 0
    for k in range(count):
        comment = " ".join(words[w] for w in picks[pos : pos + n_words[k]])
        pos += n_words[k]
        out.append(_render(first_id + k, str(stamps[k]), int(users[k]), _COUNTRIES[countries[k]],
                           _CATEGORIES[categories[k]], float(amounts[k]), int(quantities[k]), comment))  # fmt: skip
    return out


def _render(i: int, stamp: str, user: int, country: str, category: str, amount: float, qty: int, comment: str) -> Line:
    csv = f'{i},{stamp},user_{user:05d},{country},{category},{amount:.2f},{qty},"{comment}"\n'
    jsonl = (
        f'{{"id":{i},"ts":"{stamp}","user":"user_{user:05d}","country":"{country}",'
        f'"category":"{category}","amount":{amount:.2f},"quantity":{qty},"comment":"{comment}"}}\n'
    )
    return csv, jsonl


def _edit(line: Line, g: np.random.Generator) -> Line:
    """Rewrite one row in place: a new amount and a word of its comment changed."""
    fields = line[0].rstrip("\n").split(",", 7)
    comment = fields[7].strip('"').split(" ")
    comment[int(g.integers(0, len(comment)))] = "corrected"
    amount = float(fields[5]) * float(g.uniform(0.5, 1.5))
    return _render(int(fields[0]), fields[1], int(fields[2][5:]), fields[3], fields[4], amount, int(fields[6]), " ".join(comment))


def _save(dest: Path, n: int, rows: list[Line]) -> None:
    folder = version_dir(dest, n)
    header = "id,ts,user,country,category,amount,quantity,comment\n"
    (folder / "orders.csv").write_text(header + "".join(r[0] for r in rows))
    (folder / "orders.jsonl").write_text("".join(r[1] for r in rows))


def generate(dest: Path, target_bytes: int, seed: int) -> None:
    words = _vocabulary(seed)
    count = max(50, int(target_bytes / (2 * _ROW_BYTES * 5.3)))
    rows = _rows(seed, "base", 0, count, words)
    _save(dest, 1, rows)
    rows += _rows(seed, "append", count, count // 10, words)
    _save(dest, 2, rows)
    g = rng(seed, "dataset", "edits")
    for k in sorted(g.choice(len(rows), max(1, len(rows) // 200), replace=False)):
        rows[k] = _edit(rows[k], g)
    _save(dest, 3, rows)
    start = int(len(rows) * 0.4)
    del rows[start : start + max(1, len(rows) // 20)]
    _save(dest, 4, rows)
    at = int(len(rows) * 0.6)
    next_id = count + count // 10
    rows[at:at] = _rows(seed, "insert", next_id, max(1, count * 8 // 100), words)
    _save(dest, 5, rows)


WORKLOAD = Workload("dataset", "orders table as CSV + JSONL: append, scattered edits, block deleted, block inserted", generate)
