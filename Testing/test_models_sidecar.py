"""The SHA256 sidecar: a big checkpoint is hashed once, and hashed again when its content changes."""

from __future__ import annotations

import hashlib
import os

from SAMUSALib.models import weights


def test_an_unchanged_file_is_hashed_once(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"a" * 4096)
    calls = []
    real = weights.sha256_of
    monkeypatch.setattr(weights, "sha256_of", lambda p: calls.append(p) or real(p))
    first = weights._hash_with_stamp(path)
    second = weights._hash_with_stamp(path)
    assert first == second == hashlib.sha256(b"a" * 4096).hexdigest()
    assert len(calls) == 1


def test_a_file_modified_in_place_is_hashed_again(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"a" * 4096)
    before = weights._hash_with_stamp(path)
    stat = path.stat()
    path.write_bytes(b"b" * 4096)  # same size: only the content (and mtime) differ
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = weights._hash_with_stamp(path)
    assert after == hashlib.sha256(b"b" * 4096).hexdigest() != before
    assert (tmp_path / "model.pt.sha256").read_text().startswith(after)


def test_a_corrupt_sidecar_is_ignored(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"c" * 100)
    (tmp_path / "model.pt.sha256").write_text("not a digest\n")
    assert weights._hash_with_stamp(path) == hashlib.sha256(b"c" * 100).hexdigest()
