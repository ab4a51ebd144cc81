"""The protocols against oracle predictors whose answers are known in advance: the
truth itself (Dice 1 from the first click, no interventions) and nothing at all (Dice 0,
the video protocol gives up after its 7 interventions). The eroding oracle (known IoU
per click) is `ScriptedSession` in test_evaluation_protocols.py."""

from __future__ import annotations

import numpy as np
import pytest

from SAMUSALib.evaluation.datasets import Case
from SAMUSALib.evaluation.protocols import image_case, video_case

from test_evaluation_protocols import ScriptedSession, square_video


class TruthOracle(ScriptedSession):
    """Every prompt and every propagated frame gives exactly the reference."""

    def add_prompt(self, obj_id, frame, **prompt):
        super().add_prompt(obj_id, frame, **prompt)
        self.results[frame] = self.reference[frame].copy()
        return self.results[frame].copy()


class EmptyOracle(ScriptedSession):
    """Segments nothing, whatever it is told."""

    def add_prompt(self, obj_id, frame, **prompt):
        super().add_prompt(obj_id, frame, **prompt)
        self.results[frame] = np.zeros(self.frame_shape, bool)
        return self.results[frame].copy()

    def propagate(self, direction="forward", **kwargs):
        report = super().propagate(direction, **kwargs)
        for frame in list(self.results):
            self.results[frame] = np.zeros(self.frame_shape, bool)
        return report


def _image() -> Case:
    video = square_video(1, (0, 0))
    return Case("square", "image", video.array, video.references, geometry=video.geometry)


@pytest.mark.parametrize("prompt", ["region", "boundary", "box", "box+region"])
def test_the_truth_scores_one_from_the_first_interaction(prompt):
    case = _image()
    (record,) = image_case(case, lambda frames: TruthOracle(frames, case.reference_frames(1)), prompt_types=[prompt], max_clicks=10)
    assert record["dice_by_clicks"][0] == 1.0 and record["iou_by_clicks"][0] == 1.0
    assert record["clicks_to"] == {"0.85": 1, "0.90": 1}
    # nothing left to correct: the user stops (the boundary user always gives its first
    # two points, a random boundary point and the one furthest from it, before judging)
    assert len(record["clicks"]) == (2 if prompt == "boundary" else 1)


@pytest.mark.parametrize("prompt", ["region", "boundary"])
def test_nothing_scores_zero_at_every_click(prompt):
    case = _image()
    (record,) = image_case(case, lambda frames: EmptyOracle(frames, case.reference_frames(1)), prompt_types=[prompt], max_clicks=10)
    assert len(record["dice_by_clicks"]) == 10 and set(record["dice_by_clicks"]) == {0.0}
    assert record["clicks_to"] == {"0.85": None, "0.90": None}


@pytest.mark.parametrize("window", [False, True])
def test_the_truth_needs_no_intervention_in_a_video(window):
    case = square_video(12, (2, 9))
    record = video_case(case, lambda frames: TruthOracle(frames, case.reference_frames(1)), prompt_type="boundary",
                        clicks=5, window=window)
    assert record["interventions"] == 0 and record["intervention_frames"] == []
    assert record["mean_iou"] == 1.0 and record["mean_dice"] == 1.0
    assert record["clicks_total"] == 2  # the boundary user's opening pair, then nothing to correct


def test_nothing_exhausts_the_seven_interventions():
    case = square_video(12, (2, 11))
    record = video_case(case, lambda frames: EmptyOracle(frames, case.reference_frames(1)), prompt_type="region", clicks=5)
    assert record["interventions"] == 7
    assert record["intervention_frames"] == [3, 4, 5, 6, 7, 8, 9]  # each the first frame below IoU 0.75
    assert record["mean_iou_visible"] == 0.0
    assert record["mean_dice"] == pytest.approx(2 / 12, abs=1e-4)  # frames 0-1: both empty count as agreement
    assert record["clicks_total"] == 5 * 8  # the first prompt and 7 corrections, 5 clicks each
