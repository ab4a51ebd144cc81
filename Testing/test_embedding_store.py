"""Embeddings kept on disk (`SAMUSA_EMBEDDING_STORE`, `shared_embeddings(folder=...)`):
a second evaluation of the same images, in this process or another, skips the encoder
and gives the same masks; a damaged file or another encoder's embeddings are never read.
Runs LiteMedSAM on the bundled carotid cine (Resources/Samples, CC BY 4.0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SAMUSALib.backends.litemedsam import embedding_store
from SAMUSALib.backends.litemedsam.backend import shared_embeddings
from SAMUSALib.engine import Session
from SAMUSALib.frames import FrameSource
from SAMUSALib.io import read_image
from SAMUSALib.models import load_model

SAMPLES = Path(__file__).resolve().parent.parent / "Resources" / "Samples"


@pytest.fixture(scope="module")
def frame_and_box():
    array, _ = read_image(SAMPLES / "carotid_cine.nrrd")
    prompt = json.loads((SAMPLES / "carotid_cine_prompts_box.json").read_text())["objects"][0]["prompts"][0]
    return array[prompt["frame"]][None], prompt["box"]


@pytest.fixture(scope="module")
def model():
    return load_model("litemedsam", device="cpu")


def _segment(model, frame_and_box) -> tuple[np.ndarray, int]:
    """The box's mask and how many frames the encoder ran for."""
    frame, box = frame_and_box
    session = Session(FrameSource(frame), model)
    mask = session.add_prompt(1, 0, box=box)
    return mask, session.features.stats.calls


def test_a_second_run_reads_the_stored_embedding_and_gives_the_same_mask(model, frame_and_box, tmp_path):
    with shared_embeddings(folder=tmp_path):
        first, encoded = _segment(model, frame_and_box)
    assert encoded == 1 and len(list(tmp_path.rglob("*.pt"))) == 1
    with shared_embeddings(folder=tmp_path):  # a new block: nothing in memory
        again, encoded = _segment(model, frame_and_box)
    assert encoded == 0
    np.testing.assert_array_equal(again, first)


def test_the_folder_can_come_from_the_environment(model, frame_and_box, tmp_path, monkeypatch):
    monkeypatch.setenv(embedding_store.EMBEDDING_STORE_ENV, str(tmp_path))
    with shared_embeddings():
        _segment(model, frame_and_box)
    assert len(list(tmp_path.rglob("*.pt"))) == 1
    monkeypatch.delenv(embedding_store.EMBEDDING_STORE_ENV)
    with shared_embeddings():  # unset: memory only
        assert _segment(model, frame_and_box)[1] == 1


def test_a_damaged_file_is_encoded_again_and_rewritten(model, frame_and_box, tmp_path):
    with shared_embeddings(folder=tmp_path):
        first, _ = _segment(model, frame_and_box)
    (stored,) = tmp_path.rglob("*.pt")
    stored.write_bytes(b"half a file")
    with shared_embeddings(folder=tmp_path):
        again, encoded = _segment(model, frame_and_box)
    assert encoded == 1
    np.testing.assert_array_equal(again, first)
    assert embedding_store.load(stored) is not None


def test_another_encoder_never_reads_these_embeddings(model, frame_and_box, tmp_path, monkeypatch):
    with shared_embeddings(folder=tmp_path):
        _segment(model, frame_and_box)
    monkeypatch.setitem(model.sam.__dict__, "_embedding_store_key", "another-encoder")
    with shared_embeddings(folder=tmp_path):
        assert _segment(model, frame_and_box)[1] == 1
    assert len(list(tmp_path.rglob("*.pt"))) == 2


def test_a_folder_that_cannot_be_written_warns_and_keeps_the_embeddings_in_memory(model, frame_and_box, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with shared_embeddings(folder=blocked):
        with pytest.warns(RuntimeWarning, match="stay in memory only"):
            mask, encoded = _segment(model, frame_and_box)
        assert encoded == 1 and mask.any()
        assert _segment(model, frame_and_box)[1] == 0  # still shared in memory
