"""SAM2-family checkpoints at another input size, loaded by path with their configuration
inferred (issue 15 item 6): MedSAM2's releases are hiera-tiny at 512 px.

The test writes a random hiera-tiny built at 512 px as MedSAM2 ships it ({"model": state
dict}, no SAMUSA metadata) and loads it by path.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from SAMUSALib import cli, models
from SAMUSALib.backends.sam2 import loader
from SAMUSALib.engine import Session
from SAMUSALib.errors import ModelError
from SAMUSALib.frames import FrameSource


@pytest.fixture(scope="module")
def medsam2_like(tmp_path_factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = loader._build_sam("configs/sam2.1/sam2.1_hiera_t.yaml", models.registry.size_overrides(512))
    folder = tmp_path_factory.mktemp("medsam2")
    path = folder / "MedSAM2_US_Heart.pt"
    torch.save({"model": sam.state_dict()}, path)
    return path


def test_a_512_px_hiera_tiny_loads_by_path_with_what_was_inferred(medsam2_like):
    loaded = models.load_model(medsam2_like, device="cpu")
    guess = loaded.metadata["architecture"]
    assert guess["variant"] == "tiny" and guess["trunk_blocks"] == 12 and guess["embed_dim"] == 96
    assert guess["image_size"] == 512 and "MedSAM2" in guess["image_size_from"]
    assert loaded.image_size == 512 and loaded.sam.image_size == 512
    rope = loaded.sam.memory_attention.layers[0].self_attn
    assert rope.freqs_cis.shape[0] == 32 * 32, "memory attention sized for the 32x32 feature map"
    assert loaded.metadata["config"] == "configs/sam2.1/sam2.1_hiera_t.yaml"

    frames = np.zeros((2, 96, 128), dtype=np.uint8)
    frames[:, 30:70, 40:90] = 200
    session = Session(FrameSource(frames), loaded)
    mask = session.add_prompt(1, 0, box=[40, 30, 90, 70])
    assert mask.shape == (96, 128) and mask.dtype == bool
    assert session.features.stats.calls == 1


def test_the_input_size_comes_from_the_name_and_defaults_to_1024(medsam2_like, tmp_path):
    state = torch.load(medsam2_like, weights_only=True)["model"]
    assert loader.infer_architecture(state, tmp_path / "hiera_t_768px.pt")["image_size"] == 768
    plain = loader.infer_architecture(state, tmp_path / "checkpoint.pt")
    assert plain["image_size"] == 1024 and "default" in plain["image_size_from"]
    del state["image_encoder.trunk.blocks.11.norm1.weight"]
    for key in [k for k in state if k.startswith("image_encoder.trunk.blocks.11.")]:
        del state[key]
    with pytest.raises(ModelError, match="11 trunk blocks"):
        loader.infer_architecture(state, tmp_path / "odd.pt")


def test_samusa_models_show_says_what_was_inferred(medsam2_like, capsys):
    assert cli.main(["models", "--show", str(medsam2_like)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["family"] == "sam2"
    assert shown["architecture"]["variant"] == "tiny" and shown["architecture"]["image_size"] == 512
