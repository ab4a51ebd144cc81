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


def test_eval_video_protocol_on_one_phantom_object(tmp_path):
    out = tmp_path / "video"
    status = main(
        [
            "eval", "--protocol", "video", "--data", "phantom:1", "--objects", "2", "--prompt", "box",
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


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prompt", "lasso"], "unknown prompt type"),
        (["--data", "/nonexistent/folder"], "no such data folder"),
        (["--max-clicks", "0"], "--max-clicks"),
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
