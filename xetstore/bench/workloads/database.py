"""Database series: one SQLite file (stdlib sqlite3) as an application changes it.

Two tables (customers, orders) with secondary indexes, filled from seeded
random values. SQLite rewrites pages in place, splits B-tree pages on inserts,
leaves free pages after deletes and repacks everything on VACUUM: each step
moves bytes differently, which is what a chunker has to cope with.

Versions: v01 created → v02 2 % of orders updated (among the newest tenth) → v03 10 % more orders
inserted → v04 a range of orders and some customers deleted → v05 VACUUM.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np

from . import Workload, rng, version_dir

__all__ = ["WORKLOAD"]

_ROW_BYTES = 85  # on-disk bytes per order row, indexes included (measured)
_STATUSES = ("new", "paid", "shipped", "delivered", "returned", "cancelled")

_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT, balance REAL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, ts INTEGER, amount REAL,
                     status TEXT, note TEXT);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX orders_ts ON orders(ts);
"""


def _orders(seed: int, tag: str, first_id: int, count: int, customers: int) -> list[tuple[object, ...]]:
    g = rng(seed, "database", tag)
    ts = 1_700_000_000 + first_id * 40 + np.cumsum(g.integers(1, 80, count))
    cust = g.integers(1, customers + 1, count)
    amount = np.round(g.lognormal(3.0, 1.0, count), 2)
    status = g.integers(0, len(_STATUSES), count)
    note_len = g.integers(0, 40, count)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
    text = letters[g.integers(0, len(letters), int(note_len.sum()))].tobytes().decode()
    rows: list[tuple[object, ...]] = []
    pos = 0
    for k in range(count):
        note = text[pos : pos + note_len[k]]
        pos += note_len[k]
        rows.append((first_id + k, int(cust[k]), int(ts[k]), float(amount[k]), _STATUSES[status[k]], note))
    return rows


def _customers(seed: int, count: int) -> list[tuple[object, ...]]:
    g = rng(seed, "database", "customers")
    countries = ("DE", "FR", "US", "GB", "JP", "BR", "IN", "NL")
    balance = np.round(g.normal(100, 40, count), 2)
    pick = g.integers(0, len(countries), count)
    return [(i + 1, f"Customer {i + 1}", f"c{i + 1}@example.com", countries[pick[i]], float(balance[i])) for i in range(count)]


def _snapshot(db: Path, dest: Path, n: int) -> None:
    shutil.copyfile(db, version_dir(dest, n) / "app.sqlite")


def generate(dest: Path, target_bytes: int, seed: int) -> None:
    count = max(200, int(target_bytes / 5 / _ROW_BYTES))
    customers = max(10, count // 20)
    db = dest / "work.sqlite"
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(_SCHEMA)
        con.executemany("INSERT INTO customers VALUES (?,?,?,?,?)", _customers(seed, customers))
        con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?)", _orders(seed, "base", 1, count, customers))
        con.commit()
        _snapshot(db, dest, 1)
        g = rng(seed, "database", "updates")
        recent = count // 10  # updates hit recent orders (shipped, returned), as in a live app
        ids = sorted(int(i) for i in g.choice(recent, max(1, count // 50), replace=False) + count - recent + 1)
        con.executemany("UPDATE orders SET status='returned', amount=amount*0.9 WHERE id=?", [(i,) for i in ids])
        con.commit()
        _snapshot(db, dest, 2)
        con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?)", _orders(seed, "more", count + 1, count // 10, customers))
        con.commit()
        _snapshot(db, dest, 3)
        lo = count // 3
        con.execute("DELETE FROM orders WHERE id BETWEEN ? AND ?", (lo, lo + count // 12))
        con.execute("DELETE FROM customers WHERE id % 17 = 0")
        con.commit()
        _snapshot(db, dest, 4)
        con.execute("VACUUM")
        _snapshot(db, dest, 5)
    finally:
        con.close()
    db.unlink()


WORKLOAD = Workload("database", "SQLite file: created, rows updated, inserted, deleted, VACUUM", generate)
