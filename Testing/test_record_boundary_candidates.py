"""The research recorder (scripts/record_boundary_candidates.py): the records a new click
rule is replayed on must hold the mask the user was shown, and the recorder must leave the
evaluation and the rules as it found them."""

from __future__ import annotations

import importlib.util
import json

from SAMUSALib import engine
from SAMUSALib.backends.litemedsam.click_rules import ClickRules
from SAMUSALib.evaluation import protocols

from conftest import REPO, require_shared_data

spec = importlib.util.spec_from_file_location("record_boundary_candidates", REPO / "scripts" / "record_boundary_candidates.py")
recorder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recorder)


def test_the_records_hold_the_shown_mask_and_the_rules_are_left_untouched(tmp_path):
    data = require_shared_data("busbra")
    before = (protocols.SimulatedUser, engine.Session.add_prompt, ClickRules._arbitrate)
    out, report = tmp_path / "records.json", tmp_path / "eval"
    assert recorder.main([str(out), "--points", "3", "--", "--protocol", "image", "--data", str(data),
                          "--model", "samusa-lite", "--prompt", "boundary", "--max-clicks", "3",
                          "--clicks-at-once", "on", "--boundary-layout", "clustered", "--limit", "2",
                          "--out", str(report), "--no-plots", "--quiet"]) == 0
    assert (protocols.SimulatedUser, engine.Session.add_prompt, ClickRules._arbitrate) == before
    records = json.loads(out.read_text())
    evaluated = json.loads((report / "results.json").read_text())["cases"]
    assert len(records) == len(evaluated) == 2  # one three-point prompt per case
    for record, case in zip(records, evaluated):
        assert record["regime"] == "once"
        assert abs(record["shown"]["dice"] - case["dice_by_clicks"][2]) < 1e-3, (record, case["dice_by_clicks"])
        assert set(record) >= {"own", "pair", "fit", "shown"}
        assert record["shown"]["area"] == case["clicks"][2]["pred_pixels"]
