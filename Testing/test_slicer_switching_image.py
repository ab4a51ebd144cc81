"""Choosing another image in the panel leaves the previous image's segmentation as it was
(Slicer 5.12.3's own Python layer over slicer-core's MRML, `Testing/slicer_stand_in`).

Before: the panel kept the segmentation (and segment) of the image shown before, and the
first click on the new image rewrote the old image's masks on the new grid, applied the old
image's prompts to the new one and, for a cine, made the old segmentation a proxy of the new
cine's browser, copying the new masks over the old frames."""

from __future__ import annotations

import numpy as np
import pytest

from SAMUSALib import mrml
from SAMUSALib.errors import InputError

from test_slicer_widget import _cine, _place, _prepare, _widget

pytestmark = pytest.mark.mrml


def _volume(name: str, shape: tuple[int, int, int], block: tuple[slice, ...]):
    import slicer

    data = np.zeros(shape, np.uint8)
    data[(slice(None), *block)] = 200
    return mrml.volume_from_array(slicer.mrmlScene, data, None, name)


def _voxels(logic, input_node, segmentation, segment_id: str, frames) -> dict[int, int]:
    return {f: int(m.sum()) for f, m in logic.target(input_node, segmentation).read(segment_id, frames).items()}


def _two_volumes_the_first_segmented(app):
    """(widget, first, second, the first's segmentation, its segment, its voxels per slice)
    after one click on the first volume, then the second chosen."""
    session, _ = app
    first = _volume("first", (6, 20, 24), (slice(5, 15), slice(5, 15)))
    second = _volume("second", (4, 12, 16), (slice(3, 8), slice(3, 8)))
    widget = _widget(app)
    _prepare(widget, first)
    _place(widget, "regionPositiveButton", (10.0, 10.0, 2.0))
    session.process_events()
    p = widget._parameterNode
    kept, segment = p.segmentation, p.segmentID
    before = _voxels(widget.logic, first, kept, segment, range(6))
    widget.ui.regionPositiveButton.click()  # stop placing
    p.inputNode = second
    session.process_events()
    return widget, first, second, kept, segment, before


def test_a_click_on_another_volume_leaves_the_first_volume_s_segmentation_as_it_was(app):
    session, _ = app
    widget, first, second, kept, segment, before = _two_volumes_the_first_segmented(app)
    p = widget._parameterNode
    assert before[2] > 0
    assert p.segmentation is None and "belongs to the image shown before" in widget.ui.statusLabel.text
    _place(widget, "regionPositiveButton", (5.0, 5.0, 1.0))
    session.process_events()

    assert p.segmentation is not None and p.segmentation is not kept
    assert _voxels(widget.logic, first, kept, segment, range(6)) == before  # untouched
    assert "frame(s) 1" in widget.ui.statusLabel.text and "2" not in widget.ui.statusLabel.text.split("frame(s)")[1][:4]
    assert sum(_voxels(widget.logic, second, p.segmentation, p.segmentID, range(4)).values()) > 0


def test_a_click_on_another_cine_leaves_the_first_cine_s_frames_as_they_were(app):
    session, _ = app
    first, _, _ = _cine(frames=5)
    second, _, _ = _cine(frames=3)
    widget = _widget(app)
    _prepare(widget, first)
    first.SetSelectedItemNumber(2)
    _place(widget, "boundaryButton", (12.0, 9.0, 0.0))
    _place(widget, "boundaryButton", (20.0, 14.0, 0.0), start=False)
    session.process_events()
    p = widget._parameterNode
    kept, segment = p.segmentation, p.segmentID
    before = _voxels(widget.logic, first, kept, segment, range(5))
    assert before[2] > 0

    widget.ui.boundaryButton.click()
    p.inputNode = second
    second.SetSelectedItemNumber(1)
    _place(widget, "boundaryButton", (12.0, 9.0, 0.0))
    _place(widget, "boundaryButton", (20.0, 14.0, 0.0), start=False)
    session.process_events()

    assert p.segmentation is not kept
    assert not second.IsProxyNodeID(kept.GetID()) and first.IsProxyNodeID(kept.GetID())
    first.SetSelectedItemNumber(2)
    assert _voxels(widget.logic, first, kept, segment, range(5)) == before
    assert _voxels(widget.logic, second, p.segmentation, p.segmentID, [1])[1] > 0


def test_choosing_the_other_image_s_segmentation_again_is_refused_with_the_fix(app):
    """The segmentation selector can still offer the old one; the click then says why not,
    removes its point, and nothing of the old image changes."""
    widget, first, second, kept, segment, before = _two_volumes_the_first_segmented(app)
    p = widget._parameterNode
    p.segmentation, p.segmentID = kept, segment  # the user picks it again
    with pytest.raises(InputError, match="made for another image.*Create new segmentation"):
        widget.logic.ensureSegmentation(second, kept)
    assert _voxels(widget.logic, first, kept, segment, range(6)) == before


def test_a_segmentation_of_another_grid_is_refused_only_when_it_holds_voxels(app):
    """The library's guard (`target_for`): a segmentation with masks on another image's grid
    is refused, naming both grids; an empty one takes the new image's grid."""
    import slicer

    first = _volume("first", (6, 20, 24), (slice(5, 15), slice(5, 15)))
    second = _volume("second", (4, 12, 16), (slice(3, 8), slice(3, 8)))
    empty = mrml.target_for(mrml.input_from_node(first), None, name="empty").node
    mrml.target_for(mrml.input_from_node(first), empty).ensure_segment()
    target = mrml.target_for(mrml.input_from_node(second), empty)  # no voxels yet: adopted
    assert mrml.made_for_another_image(mrml.input_from_node(second), target.node) is None

    full = mrml.target_for(mrml.input_from_node(first), None, name="full")
    segment = full.ensure_segment()
    mask = np.zeros((20, 24), bool)
    mask[5:15, 5:15] = True
    full.write(segment, {2: mask})
    with pytest.raises(InputError, match=r"'full' was made for another image .*24 x 20 x 6 grid, this image's is 16 x 12 x 4"):
        mrml.target_for(mrml.input_from_node(second), full.node)
    assert int(mrml.target_for(mrml.input_from_node(first), full.node).read(segment, [2])[2].sum()) == 100
    assert slicer.mrmlScene.GetNodeByID(full.node.GetID()) is full.node
