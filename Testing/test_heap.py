"""Freed memory goes back to the OS during long propagations (glibc Linux)."""

from __future__ import annotations

import sys

import pytest

from SAMUSALib import heap


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(heap._malloc_trim() is None, reason="malloc_trim needs glibc on Linux")
def test_memory_freed_between_kept_blocks_is_returned_to_the_os():
    # 100 KB blocks stay below glibc's mmap threshold, so they share the heap; keeping
    # every other one leaves ~50 MB of holes the allocator does not give back by itself.
    blocks = [b"x" * 100_000 for _ in range(1000)]
    kept = blocks[::2]
    del blocks
    before = _rss_mb()
    assert heap.release_free_memory() is True
    after = _rss_mb()
    assert before - after > 25, f"RSS {before:.0f} MB -> {after:.0f} MB"
    assert len(kept) == 500


def test_release_is_a_no_op_off_linux(monkeypatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert heap.release_free_memory() is False
    finally:
        heap._malloc_trim.cache_clear()
