"""Corrections the model ignores are heeded (`LiteMedSAMBackend._heed_clicks`).

The user's view: a click that removes a spill removes it. SAMUSA-Lite 2 never saw
echocardiography, and on CAMUS 88 of 192 simulated corrective clicks changed nothing: a
negative click in the ventricle stayed inside an atrium's mask that had spilled through
the valve, click after click. Figures are from these tests' own runs; thresholds leave
room for CPU numerics.
"""

from __future__ import annotations

import numpy as np
import pytest

from SAMUSALib.engine import Session
from SAMUSALib.evaluation.datasets import load_cases
from SAMUSALib.evaluation.metrics import dice
from SAMUSALib.frames import FrameSource
from SAMUSALib.models import load_model

from conftest import require_shared_data

ATRIUM = 3  # CAMUS label: left atrium


@pytest.fixture(scope="module")
def atrium():
    case = next(c for c in load_cases(require_shared_data("camus"), "image") if c.id.startswith("patient0027_4CH_ES"))
    return case.array, case.references[ATRIUM][0], load_model("samusa-lite", device="cpu")


def _atrium_then_ventricle(array, model, heeding: bool) -> tuple[Session, np.ndarray, np.ndarray]:
    """A positive click in the atrium, then a negative one in the ventricle (where the
    simulated user puts it: the deepest point of the spill)."""
    session = Session(FrameSource(array), model)
    session.backend.click_heeding = heeding
    first = session.add_prompt(1, 0, positive=[[118.0, 181.0]])
    second = session.add_prompt(1, 0, negative=[[116.0, 120.0]])
    return session, first, second


def test_a_negative_click_the_model_ignores_removes_the_spill_it_is_in(atrium):
    """Measured: the mask of the atrium click 0.618 (it spills into the ventricle); after
    the negative click 0.897 heeded, 0.618 ignored (the baseline: the same mask, the
    click still inside it)."""
    array, truth, model = atrium
    _, first, ignored = _atrium_then_ventricle(array, model, heeding=False)
    session, _, heeded = _atrium_then_ventricle(array, model, heeding=True)
    assert ignored[120, 116] and dice(ignored, truth) < dice(first, truth) + 0.01  # the model alone: nothing
    assert not heeded[120, 116]  # the click is outside the mask now
    assert dice(heeded, truth) > dice(ignored, truth) + 0.2
    assert "heeds the clicks" in session.objects[1].output(0)["how"]


def test_a_heeded_correction_is_the_same_from_a_prompts_file(atrium):
    """Both clicks at once (no history) give the mask of the same clicks one by one."""
    array, _, model = atrium
    _, _, one_by_one = _atrium_then_ventricle(array, model, heeding=True)
    session = Session(FrameSource(array), model)
    at_once = session.add_prompt(1, 0, positive=[[118.0, 181.0]], negative=[[116.0, 120.0]])
    assert "heeds the clicks" in session.objects[1].output(0)["how"]
    assert dice(at_once, one_by_one) > 0.98
