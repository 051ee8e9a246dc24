"""The monitor's file index on disk (issue 18): bounded memory, and never a stale answer.

The index answers from ``fim_files`` through a bounded cache. What must hold: a batch the
monitor has measured but not yet written is what every lookup sees (a deleted file is gone,
a rewritten one is its new version), also from another thread and also when the cache is
far smaller than the batch; a scan that rewrote the table is seen after ``reload``; the
memory held does not grow with the tree.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from secops.fim.baseline import Baseline, Record
from secops.fim.index import FileIndex


def rec(path: str, inode: int, sha: str = "a" * 64, size: int = 10) -> Record:
    return Record(path, size, 1, 1, inode, 0o100644, 0, 0, sha, "text", True, 4.0, b"")


def tree(db: Path, n: int) -> Baseline:
    b = Baseline(db)
    b.replace_all(rec(f"/d/{i:06d}.csv", 1000 + i) for i in range(n))
    return b


def test_lookups_answer_from_the_table_and_a_missing_file_is_none(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    tree(db, 100).close()
    index = FileIndex(db, cache_records=10)
    index.reload()
    assert index.get("/d/000042.csv") == rec("/d/000042.csv", 1042)
    assert index.get("/d/nope.csv") is None
    assert "/d/000007.csv" in index and "/d/nope.csv" not in index
    assert index.path_of_inode(1099) == "/d/000099.csv"
    assert index.by_inode(1099) == rec("/d/000099.csv", 1099)
    assert index.path_of_inode(5) is None
    assert len(index) == 100
    index.close()


def test_a_pending_batch_larger_than_the_cache_is_what_every_thread_sees(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    baseline = tree(db, 500)
    index = FileIndex(db, cache_records=8)
    index.reload()
    for i in range(0, 500, 2):  # rewritten (new content, same inode) ...
        index.remember(rec(f"/d/{i:06d}.csv", 1000 + i, sha="b" * 64))
    for i in range(1, 500, 2):  # ... or deleted; not written to the table yet
        index.forget(f"/d/{i:06d}.csv")
    index.remember(rec("/d/new.csv", 1001))  # a new file takes a freed inode
    seen: dict[str, object] = {}

    def look() -> None:  # the gate thread, with its own connection
        seen["rewritten"] = index.get("/d/000100.csv")
        seen["deleted"] = index.get("/d/000101.csv")
        seen["inode"] = index.path_of_inode(1001)
        seen["stale inode"] = index.path_of_inode(1003)

    t = threading.Thread(target=look)
    t.start()
    t.join()
    assert seen == {"rewritten": rec("/d/000100.csv", 1100, sha="b" * 64), "deleted": None,
                    "inode": "/d/new.csv", "stale inode": None}
    # the monitor writes the batch, then tells the index
    baseline.apply([rec(f"/d/{i:06d}.csv", 1000 + i, sha="b" * 64) for i in range(0, 500, 2)]
                   + [rec("/d/new.csv", 1001)],
                   [f"/d/{i:06d}.csv" for i in range(1, 500, 2)])
    index.committed()
    assert index.get("/d/000100.csv") == rec("/d/000100.csv", 1100, sha="b" * 64)
    assert index.get("/d/000101.csv") is None
    assert index.path_of_inode(1001) == "/d/new.csv"
    assert len(index) == 251
    baseline.close()
    index.close()


def test_a_rewritten_table_is_seen_after_reload_and_only_then(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    baseline = tree(db, 10)
    index = FileIndex(db)
    index.reload()
    before = index.get("/d/000003.csv")
    assert before is not None
    baseline.replace_all([replace(before, sha256="c" * 64)])  # a rescan's new baseline
    assert index.get("/d/000003.csv") == before  # the cache's answer until told
    index.reload()
    assert index.get("/d/000003.csv") == replace(before, sha256="c" * 64)
    assert index.get("/d/000004.csv") is None
    baseline.close()
    index.close()


def test_memory_stays_bounded_whatever_the_tree(tmp_path: Path) -> None:
    """Looking up every file of a 10,000-file tree holds no more than the cache's records
    (a dict of them all was ~900 bytes a file). Its twin: the same lookups into a cache as
    large as the tree hold them all."""
    db = tmp_path / "state.db"
    tree(db, 10_000).close()

    def held(cache: int) -> int:
        index = FileIndex(db, cache_records=cache)
        index.reload()
        gc.collect()
        tracemalloc.start()
        for i in range(10_000):
            assert index.get(f"/d/{i:06d}.csv") is not None
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        index.close()
        return size

    bounded, unbounded = held(300), held(20_000)
    assert bounded < 1_000_000, bounded
    assert unbounded > 5 * bounded, (bounded, unbounded)


def test_a_file_not_in_the_table_because_the_daemon_never_scanned_is_unknown(
        tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Baseline(db).close()
    index = FileIndex(db)
    index.reload()
    assert index.get(str(tmp_path / "x")) is None
    assert index.path_of_inode(os.stat(db).st_ino) is None
    index.close()


def test_a_broken_connection_is_reopened_and_never_raises_into_the_caller(
        tmp_path: Path) -> None:
    """The sentry thread dies of an exception: a query that fails is retried on a fresh
    connection. Its twin: the answer is the table's."""
    db = tmp_path / "state.db"
    tree(db, 5).close()
    index = FileIndex(db, cache_records=1)
    index.reload()
    assert index.get("/d/000001.csv") is not None
    index._local.db.close()  # the thread's connection gone under it
    assert index.path_of_inode(1003) == "/d/000003.csv"
    assert index.get("/d/000004.csv") == rec("/d/000004.csv", 1004)
    index.close()


def test_a_new_baseline_streams_in_without_holding_the_table_and_fails_whole(
        tmp_path: Path) -> None:
    """``replace_all`` takes a stream: while it is consumed (a tree being measured) another
    connection, the daemon's, still writes to state.db at once; a stream that breaks off
    leaves the old baseline exactly as it was, and a finished one replaces it whole."""
    db = tmp_path / "state.db"
    base = tree(db, 50)
    other = sqlite3.connect(db, timeout=0.5)  # the daemon: gives up after half a second

    def measured(n: int, fail_at: int | None = None) -> Iterator[Record]:
        for i in range(n):
            if i == 1500:
                with other:  # mid-stream, after batches went to the staging table
                    other.execute("INSERT OR REPLACE INTO fim_meta VALUES ('probe', ?)",
                                  (str(i),))
            if i == fail_at:
                raise RuntimeError("the measuring broke off")
            yield rec(f"/e/{i:06d}.csv", 5000 + i)

    with pytest.raises(RuntimeError):
        base.replace_all(measured(3000, fail_at=2500))
    assert base.count() == 50 and base.get("/d/000049.csv") is not None
    base.replace_all(measured(3000))
    assert base.count() == 3000 and base.get("/d/000001.csv") is None
    assert base.get("/e/002999.csv") == rec("/e/002999.csv", 7999)
    assert base.meta("probe") == "1500"
    other.close()
    base.close()
