"""Boundary points given alone are read by SAMUSA-Lite 2's boundary heads
(`SAMUSALite.attach_boundary_heads`), trained further to read them without their extent
as a box; every other prompt keeps the main heads, and SAMUSA_BOUNDARY_HEADS=off turns
the routing off. The boundary heads ship as a second delta file, hash-checked like the
first."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from SAMUSALib.engine import Session
from SAMUSALib.errors import InputError, ModelError
from SAMUSALib.frames import FrameSource
from SAMUSALib.io import read_image
from SAMUSALib.models import REGISTRY, load_model, sha256_of

from test_samusa_lite import SAMPLES, cine  # noqa: F401 - the bundled carotid cine fixture


def _decoders_used(model, monkeypatch, frame: np.ndarray, **prompt) -> set[str]:
    """Which heads decoded `prompt` on a fresh session: "boundary" and/or "main"."""
    net, used = model.sam, set()
    decode = net.decode_tokens

    def spy(*args, heads=None, **kwargs):
        chosen = heads or net.heads()
        used.add("boundary" if chosen.mask_decoder is net.boundary_heads["mask_decoder"] else "main")
        return decode(*args, heads=heads, **kwargs)

    monkeypatch.setattr(net, "decode_tokens", spy)
    Session(FrameSource(frame[None]), model).add_prompt(1, 0, **prompt)
    monkeypatch.undo()
    return used


def test_boundary_points_alone_go_to_the_boundary_heads_and_every_other_prompt_to_the_main_heads(cine, monkeypatch):
    array, masks = cine
    frame, reference = array[4], masks[4]
    rows, cols = np.nonzero(reference)
    centre = [[float(cols.mean()), float(rows.mean())]]
    points = [[float(cols.min()), float(rows.mean())], [float(cols.max()), float(rows.mean())],
              [float(cols.mean()), float(rows.min())]]
    box = [float(cols.min()) - 3, float(rows.min()) - 3, float(cols.max()) + 3, float(rows.max()) + 3]
    model = load_model("samusa-lite", device="cpu")
    assert not model.sam.heads(True).boundary_box and model.sam.heads().boundary_box
    # the main heads' `fit` rival is LiteMedSAM's own decoder, not the trained heads
    assert _decoders_used(model, monkeypatch, frame, boundary=points) == {"boundary"}
    assert _decoders_used(model, monkeypatch, frame, boundary=points[:1]) == {"boundary"}
    assert _decoders_used(model, monkeypatch, frame, boundary=points, positive=centre) == {"main"}
    assert _decoders_used(model, monkeypatch, frame, boundary=points, box=box) == {"main"}
    assert _decoders_used(model, monkeypatch, frame, positive=centre) == {"main"}
    monkeypatch.setenv("SAMUSA_BOUNDARY_HEADS", "off")
    assert _decoders_used(model, monkeypatch, frame, boundary=points) == {"main"}


def test_a_mistyped_boundary_heads_switch_is_named(cine, monkeypatch):
    array, _ = cine
    monkeypatch.setenv("SAMUSA_BOUNDARY_HEADS", "of")
    with pytest.raises(InputError, match="SAMUSA_BOUNDARY_HEADS"):
        Session(FrameSource(array[:1]), load_model("samusa-lite", device="cpu"))


def test_the_boundary_heads_are_hash_checked_and_a_missing_file_is_named(tmp_path, monkeypatch):
    from SAMUSALib.backends.litemedsam import lite

    spec = REGISTRY["samusa-lite"]
    path = lite.shipped_weights(spec.boundary_weights)
    assert path is not None and sha256_of(path) == spec.boundary_sha256
    assert path.stat().st_size < 12_000_000  # a delta, like the main weights
    shutil.copy(lite.shipped_weights(spec), tmp_path / spec.filename)
    monkeypatch.setattr(lite, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match=spec.boundary_weights):
        load_model("samusa-lite", device="cpu")  # missing
    tampered = tmp_path / spec.boundary_weights
    shutil.copy(path, tampered)
    with tampered.open("r+b") as handle:
        handle.seek(-200, 2)
        handle.write(b"\0" * 8)
    with pytest.raises(ModelError, match="SHA256"):
        load_model("samusa-lite", device="cpu")
