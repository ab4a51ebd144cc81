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


def test_two_points_on_one_arc_give_the_lesion_and_two_spread_points_keep_their_square(monkeypatch):
    """BUS-BRA (never trained on), the first 10 images, two boundary points at once.
    Bunched on one arc (15-50 % of the border), the main heads are given the square on
    the points' chord and stop at it; the boundary heads read the points without it.
    Spread round the lesion, the square helps, and the boundary heads keep it. Baselines
    in the same test: the main heads (SAMUSA_BOUNDARY_HEADS=off) and the filled chord
    square itself. Measured: bunched 0.809 (main heads 0.629, square 0.301); spread 0.894
    (0.892, 0.732)."""
    from SAMUSALib.backends.litemedsam.backend import shared_embeddings
    from SAMUSALib.backends.litemedsam.encodings import chord_square
    from SAMUSALib.evaluation.clicks import boundary_layout
    from SAMUSALib.evaluation.datasets import load_cases
    from SAMUSALib.evaluation.metrics import dice

    from conftest import require_shared_data

    model = load_model("samusa-lite", device="cpu")
    cases = load_cases(require_shared_data("busbra"), "image")[:10]
    scores: dict[tuple[str, str], list[float]] = {}
    with shared_embeddings():
        for index, case in enumerate(cases):
            image, reference = case.array[0], case.references[1][0]
            for layout in ("clustered", "even"):
                points = boundary_layout(reference, 2, layout, np.random.default_rng(index))
                for heads in ("on", "off"):
                    monkeypatch.setenv("SAMUSA_BOUNDARY_HEADS", heads)
                    mask = Session(FrameSource(image[None]), model).add_prompt(1, 0, boundary=points.tolist())
                    scores.setdefault((layout, heads), []).append(dice(mask, reference))
                x0, y0, x1, y1 = np.round(chord_square(points, 1.0)).astype(int)
                square = np.zeros_like(reference)
                square[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True
                scores.setdefault((layout, "square"), []).append(dice(square, reference))
    means = {key: round(float(np.mean(v)), 3) for key, v in scores.items()}
    assert means["clustered", "on"] > means["clustered", "off"] + 0.1, means
    assert means["clustered", "on"] > means["clustered", "square"] + 0.3, means
    assert means["even", "on"] > means["even", "off"] - 0.01, means
    assert means["even", "on"] > means["even", "square"] + 0.1, means
