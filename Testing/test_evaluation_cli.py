"""`samusa eval`: runs end to end on phantoms and writes JSON, markdown and plots."""

from __future__ import annotations

import json

import pytest

from SAMUSALib.cli import main


def test_eval_image_protocol_writes_json_markdown_and_plots(tmp_path, capsys):
    out = tmp_path / "report"
    status = main(
        [
            "eval", "--protocol", "image", "--data", "phantom:1", "--model", "test-tiny",
            "--prompt", "region,box", "--max-clicks", "2", "--seed", "3", "--out", str(out), "--quiet",
        ]
    )
    assert status == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "image" and doc["model"]["id"] == "test-tiny" and doc["model"]["trained"] is False
    assert doc["settings"]["seed"] == 3 and doc["settings"]["prompt_types"] == ["region", "box"]
    assert {r["prompt"] for r in doc["cases"]} == {"region", "box"}
    region = next(r for r in doc["cases"] if r["prompt"] == "region")
    assert [c["k"] for c in region["clicks"]] == [1, 2]
    assert set(doc["summary"]) == {"region", "box"}
    markdown = (out / "summary.md").read_text()
    assert "UNTRAINED" in markdown and "| region |" in markdown and "NoC@0.85" in markdown
    printed = capsys.readouterr().out
    assert "results.json" in printed and "summary.md" in printed
    pytest.importorskip("matplotlib")
    for name in ("iou_vs_clicks.png", "overlays.png"):
        assert (out / name).stat().st_size > 5000
        assert f"({name})" in markdown

    # run again into the same folder: the earlier report was replaced without a word, and
    # plots the new run did not draw stayed beside its results
    again = ["eval", "--protocol", "image", "--data", "phantom:1", "--model", "test-tiny", "--prompt", "box",
             "--no-plots", "--out", str(out), "--quiet"]
    before = (out / "results.json").read_bytes()
    assert main(again) == 2
    assert "already holds an evaluation report" in capsys.readouterr().err and (out / "results.json").read_bytes() == before
    assert main([*again, "--force"]) == 0
    assert set(json.loads((out / "results.json").read_text())["summary"]) == {"box"}
    assert not (out / "overlays.png").exists() and not (out / "iou_vs_clicks.png").exists()


def test_eval_video_protocol_on_one_phantom_object(tmp_path):
    out = tmp_path / "video"
    status = main(
        [
            "eval", "--protocol", "video", "--data", "phantom:1", "--objects", "2", "--prompt", "box", "--model", "test-tiny",
            "--max-interventions", "0", "--window", "on", "--out", str(out), "--quiet", "--no-plots",
        ]
    )
    assert status == 0
    doc = json.loads((out / "results.json").read_text())
    (record,) = doc["cases"]
    assert record["object"] == 2 and record["variant"] == "box +window" and record["interventions"] == 0
    assert record["frames_computed"] == record["window"][1] - record["window"][0]
    assert "box +window" in (out / "summary.md").read_text()
    assert not (out / "iou_per_frame.png").exists()


def test_eval_without_a_model_scores_the_default_model_not_an_untrained_one(tmp_path, capsys):
    """`samusa eval` without --model runs what `samusa segment` runs (the shipped
    SAMUSA-Lite here), so a first evaluation does not score random weights by accident."""
    from SAMUSALib.models import default_model_id

    out = tmp_path / "default"
    args = ["eval", "--protocol", "image", "--data", "phantom:1", "--objects", "1", "--prompt", "box",
            "--out", str(out), "--quiet", "--no-plots"]
    assert main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"]["id"] == default_model_id() == "samusa-lite"
    assert "UNTRAINED" not in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "lasso"], "unknown prompt type"),
        (["--data", "/nonexistent/folder"], "no such data folder"),
        (["--max-clicks", "0"], "--max-clicks"),
        (["--boundary-jitter", "-1"], "--boundary-jitter"),
    ],
)
def test_eval_input_errors_are_one_line_with_status_2(tmp_path, capsys, extra, message):
    args = ["eval", "--protocol", "image", "--data", "phantom:1", "--out", str(tmp_path / "x"), "--quiet"]
    for flag, value in zip(extra[::2], extra[1::2]):
        index = args.index(flag) if flag in args else None
        if index is None:
            args += [flag, value]
        else:
            args[index + 1] = value
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x" / "results.json").exists()


def test_eval_compares_models_and_encodings_side_by_side(tmp_path, capsys, monkeypatch, tiny_model):
    """Issue 15 item 3: `samusa eval --model A --model B` with the encodings as options, on
    one phantom image: a full report per variant, and one comparison table with a row per
    variant; each LiteMedSAM variant really prompts with its own encoding, and frames are
    encoded once for both."""
    from SAMUSALib import models
    from SAMUSALib.backends.litemedsam.backend import LiteMedSAMBackend

    real_load = models.load_model  # test-tiny: the session's (built once), not built again
    monkeypatch.setattr(models, "load_model", lambda name, **kw: tiny_model if name == "test-tiny" else real_load(name, **kw))
    used, real_prompt = [], LiteMedSAMBackend.prompt

    def spy(self, obj, prompt, **kwargs):
        used.append(self.boundary_encoding)
        return real_prompt(self, obj, prompt, **kwargs)

    monkeypatch.setattr(LiteMedSAMBackend, "prompt", spy)
    out = tmp_path / "compare"
    status = main([
        "eval", "--protocol", "image", "--data", "phantom:1", "--objects", "1", "--prompt", "boundary",
        "--max-clicks", "2", "--model", "test-tiny", "--model", "litemedsam", "--boundary-encoding", "extent-box,curve-mask",
        "--out", str(out), "--quiet", "--no-plots",
    ])
    assert status == 0
    names = ["test-tiny", "litemedsam boundary=extent-box", "litemedsam boundary=curve-mask"]
    assert used == ["extent-box"] * 2 + ["curve-mask"] * 2  # one prompt per click, per variant
    doc = json.loads((out / "comparison.json").read_text())
    assert [v["name"] for v in doc["variants"]] == names
    assert [r["variant"] for r in doc["rows"]] == names and {r["group"] for r in doc["rows"]} == {"boundary"}
    for variant, row in zip(doc["variants"], doc["rows"]):
        own = json.loads((out / variant["folder"] / "results.json").read_text())  # the variant's full report
        assert own["model"]["id"] == variant["model"]["id"] and own["variant"] == variant["name"]
        assert row["dice@1"] == own["summary"]["boundary"]["dice_by_clicks"][0]["mean"]
        assert row["final_dice"] == own["summary"]["boundary"]["final_dice"]["mean"]
        assert "dice@3" not in row  # two clicks were given: no column repeats the last value
    frames = [json.loads((out / v["folder"] / "results.json").read_text())["cases"][0]["frames_encoded"] for v in doc["variants"][1:]]
    assert frames == [1, 0], f"LiteMedSAM encoded {frames} frames for its two variants; once is enough"
    table = (out / "comparison.md").read_text()
    assert "UNTRAINED" in table and "test-tiny" in table
    assert sum(line.startswith("| litemedsam boundary=") for line in table.splitlines()) == 2
    assert "compared 3 variants" in capsys.readouterr().out


def test_eval_comparison_refuses_an_unknown_encoding_before_loading_models(tmp_path, capsys, monkeypatch):
    from SAMUSALib import models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    args = ["eval", "--protocol", "image", "--data", "phantom:1", "--model", "litemedsam", "--model", "test-tiny",
            "--boundary-encoding", "lasso", "--out", str(tmp_path / "x"), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "unknown boundary encoding 'lasso'" in err and "extent-box" in err and err.count("\n") == 1
