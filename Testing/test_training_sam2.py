"""Fine-tuning SAM2 (`samusa train` with a SAM2 model): a few steps on phantoms lower the
loss on images and clips, the checkpoint carries what it was trained for and segments
through `samusa segment`, resume continues where a run stopped, bad configs are named.

Small randomly initialised SAM2 (`test-tiny`, 256 px) on the CPU: the code path is the
one a GPU run takes (autocast, scaler, accumulation), at a size the CI can afford.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from SAMUSALib.errors import InputError
from SAMUSALib.evaluation.datasets import phantom_cases
from SAMUSALib.models import load_model
from SAMUSALib.training.sam2 import Sam2TrainConfig, load_images, load_videos, precision_for, sample_clip, train_sam2
from SAMUSALib.training.sam2_steps import StepSettings, clip_loss, image_batch_loss

SAMPLES = Path(__file__).resolve().parent.parent / "Resources" / "Samples"


def _config(tmp_path: Path, **overrides) -> Sam2TrainConfig:
    values = dict(model="test-tiny", train=["phantom:4"], out=str(tmp_path / "run"), steps=12, batch=4, lr=3e-4,
                  warmup=1, augment="none", validate_every=1000, progress_bar=False, tensorboard=False,
                  resume=False, log_every=1000)
    values.update(overrides)
    return Sam2TrainConfig.from_dict(values)


def _fixed_image_loss(sam, items, seed=0) -> float:
    """The loss on the same prompts (same seed) for the same images, without dropout."""
    sam.eval()
    with torch.no_grad():
        parts = image_batch_loss(sam, [i.frame for i in items], [i.mask for i in items],
                                 ["boundary", "region", "box", "box+region"], {0, 1}, np.random.default_rng(seed),
                                 StepSettings())
    return float(parts["loss"])


def test_a_few_image_steps_lower_the_loss(tmp_path):
    config = _config(tmp_path)
    items = load_images(config.train, None)
    before = _fixed_image_loss(load_model("test-tiny", device="cpu", seed=0).sam, items)
    result = train_sam2(config, progress=lambda _: None)
    after = _fixed_image_loss(load_model(result["checkpoint"], device="cpu").sam, items)
    assert after < 0.5 * before, (before, after)
    assert len(result["history"]) == 12 and {r["kind"] for r in result["history"]} == {"image"}


def test_a_few_clip_steps_lower_the_loss(tmp_path):
    config = _config(tmp_path, train=[], train_videos=["phantom:2"], clip_frames=4, steps=10)
    videos = load_videos(config.train_videos, None)
    clips = [sample_clip(v, 4, np.random.default_rng(i), 0, "none") for i, v in enumerate(videos[:2])]

    def fixed(sam) -> float:
        sam.eval()
        with torch.no_grad():
            return float(np.mean([float(clip_loss(sam, *clip, "boundary", np.random.default_rng(0), StepSettings())["loss"])
                                  for clip in clips]))

    before = fixed(load_model("test-tiny", device="cpu", seed=0).sam)
    result = train_sam2(config, progress=lambda _: None)
    after = fixed(load_model(result["checkpoint"], device="cpu").sam)
    assert after < 0.6 * before, (before, after)
    assert {r["kind"] for r in result["history"]} == {"video"}


def test_clips_start_on_a_visible_annotated_frame_inside_the_window():
    video = load_videos(["phantom:1"], None)[0]
    for seed in range(10):
        frames, masks, annotated = sample_clip(video, 5, np.random.default_rng(seed), 1, "default")
        assert len(frames) == len(masks) == len(annotated) <= 5
        assert annotated[0] and masks[0].any()
        assert frames.shape[1:] == video.frames.shape[1:] and masks.shape == frames.shape[:3]


def test_checkpoint_records_training_and_segments_through_the_cli(tmp_path, capsys):
    from SAMUSALib.cli import main
    from SAMUSALib.io import read_segmentation

    config = _config(tmp_path, steps=2, validate=["phantom:1"], validate_images=1, validate_clicks=2,
                     modes={"boundary": 1.0, "region": 1.0})
    result = train_sam2(config, progress=lambda _: None)
    loaded = load_model(result["checkpoint"], device="cpu")
    meta = loaded.metadata
    assert loaded.spec.boundary_native and loaded.spec.boundary_label == 1 and "boundary" in loaded.spec.prompt_types
    assert meta["base_model"] == "test-tiny" and meta["steps"] == 2 and meta["image_size"] == 256
    assert meta["data"]["images"] == ["phantom:4"] and meta["frozen"] == ["image_encoder"]
    assert {"phantom/boundary@1", "phantom/boundary@2", "phantom/region@2"} <= set(meta["validation"])
    validations = json.loads((Path(config.out) / "validation.json").read_text())
    assert [v["step"] for v in validations] == [0, 2]
    assert (Path(config.out) / "log.csv").read_text().startswith("step,kind,")
    capsys.readouterr()
    assert main(["models", "--show", result["checkpoint"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["base_model"] == "test-tiny" and shown["validation"]["step"] == 2 and len(shown["sha256"]) == 64

    out = tmp_path / "seg.seg.nrrd"
    code = main(["segment", str(SAMPLES / "carotid_cine.nrrd"), "--prompts", str(SAMPLES / "carotid_cine_prompts.json"),
                 "--out", str(out), "--model", result["checkpoint"], "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    masks, _, _ = read_segmentation(out)
    assert masks and all(m.shape[0] == 15 for m in masks.values())  # every frame of the sample cine


def test_frozen_encoder_stays_put_and_the_rest_moves(tmp_path):
    result = train_sam2(_config(tmp_path, steps=2), progress=lambda _: None)
    base = load_model("test-tiny", device="cpu", seed=0).sam.state_dict()
    trained = load_model(result["checkpoint"], device="cpu").sam.state_dict()
    encoder = [k for k in base if k.startswith("image_encoder.")]
    decoder = [k for k in base if k.startswith("sam_mask_decoder.") and base[k].is_floating_point()]
    assert all(torch.equal(base[k], trained[k]) for k in encoder)
    assert any(not torch.equal(base[k], trained[k]) for k in decoder)


def test_resume_continues_where_the_run_stopped(tmp_path):
    messages: list[str] = []
    first = train_sam2(_config(tmp_path, steps=2, resume=True, validate_every=2), progress=messages.append)
    second = train_sam2(_config(tmp_path, steps=4, resume=True, validate_every=2), progress=messages.append)
    assert "resumed at step 2" in messages
    assert [r["step"] for r in second["history"]] == [1, 2, 3, 4]
    assert second["history"][:2] == first["history"]


def test_accumulation_and_precision_choice(tmp_path):
    result = train_sam2(_config(tmp_path, steps=1, accumulate=2, batch=2), progress=lambda _: None)
    assert len(result["history"]) == 1
    assert precision_for(torch.device("cpu"), "auto") == "fp32"
    assert precision_for(torch.device("cpu"), "bf16") == "bf16"


@pytest.mark.parametrize("values, message", [
    ({"model": "test-tiny"}, "needs `train:`"),
    ({"model": "test-tiny", "train": ["phantom"], "freeze": ["decoder"]}, "freeze"),
    ({"model": "test-tiny", "train": ["phantom"], "freeze": ["image_encoder", "prompt_encoder", "mask_decoder", "memory"]},
     "nothing would be trained"),
    ({"model": "test-tiny", "train": ["phantom"], "boundary_label": 4}, "boundary_label"),
    ({"model": "test-tiny", "train": ["phantom"], "learning_rate": 1}, "unknown SAM2 training option"),
    ({"model": "test-tiny", "train": ["phantom"], "modes": {"clicks": 1}}, "modes"),
])
def test_bad_configs_are_named(values, message):
    with pytest.raises(InputError, match=message):
        Sam2TrainConfig.from_dict(values)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        train_sam2(_config(tmp_path, train=[], train_videos=[str(tmp_path / "nowhere")]), progress=lambda _: None)


def test_samusa_train_runs_the_sam2_loop_from_a_config(tmp_path, capsys):
    from SAMUSALib.cli import main

    config = tmp_path / "sam2.yaml"
    config.write_text("model: test-tiny\ntrain: [phantom:2]\nsteps: 1\nbatch: 2\naugment: light\n"
                      "progress_bar: false\ntensorboard: false\nout: run\n")
    assert main(["train", str(config)]) == 0
    out = capsys.readouterr().out
    assert "SAM2 checkpoint:" in out and (tmp_path / "run" / "checkpoint.pt").is_file()
