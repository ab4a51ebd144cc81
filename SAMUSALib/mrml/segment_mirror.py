"""A cine's segments stay one set across its frames: a segment renamed, recoloured, added or
deleted on the shown frame (Segment Editor, Data module) is renamed, recoloured, added or
deleted on every frame.

Why: a cine's segmentation is a sequence with one segmentation per frame, and the node the
user edits is its proxy, which holds the shown frame's copy. Slicer writes proxy edits back
into that frame's item only, so a segment renamed on frame 2 was back to its old name on
every other frame, and a deleted one came back when the cine was scrolled (and went into
exports under its old name).

How: the segment set (IDs, names, colours) last agreed on is kept on the sequence node
(`ATTRIBUTE_SEGMENTS`), and every frame's item is kept to it. The browser copies an item
into the proxy in one step (one modified event, after the copy), so a proxy that differs
from the agreed set was edited by the user; the difference is applied to every item and
becomes the agreed set. Voxels stay per frame; the last deleted segment's are kept in memory,
so the Segment Editor's undo of the deletion brings it back on every frame, not empty. With
"save changes" off for the sequence the proxy is a view, and nothing is mirrored.
"""

from __future__ import annotations

import json
import weakref

import vtk

import slicer

#: On the segmentation sequence node: JSON [[segment ID, name, [r, g, b]], ...].
ATTRIBUTE_SEGMENTS = "SAMUSA.Segments"
_SEGMENT_EVENTS = ("SegmentAdded", "SegmentRemoved", "SegmentModified")

#: Proxy node ID -> its mirror, so one scene's proxy is observed once however many targets
#: are made for it.
_mirrors: "weakref.WeakValueDictionary[str, SegmentMirror]" = weakref.WeakValueDictionary()


def _color(segment) -> list[float]:
    """The segment's colour, rounded so a float round trip through the attribute compares equal."""
    return [round(float(c), 5) for c in segment.GetColor()]


def segment_set(segmentation_node) -> list[list]:
    """[[ID, name, [r, g, b]], ...] of the node's segments, in order."""
    segmentation = segmentation_node.GetSegmentation()
    return [[segmentation.GetNthSegmentID(i), segmentation.GetNthSegment(i).GetName(), _color(segmentation.GetNthSegment(i))]
            for i in range(segmentation.GetNumberOfSegments())]


class SegmentMirror:
    """Keeps every item of `sequence` to the segment set of its proxy `node` (see the module)."""

    def __init__(self, node, sequence) -> None:
        # Nodes by ID, not held: the node's observers hold the mirror, so holding the node
        # (and through the sequence every frame's voxels) would keep both alive after the
        # scene let them go.
        self.scene, self.node_id, self.sequence_id = node.GetScene(), node.GetID(), sequence.GetID()
        self.address = node.GetAddressAsString("")  # a later node may reuse the ID
        self._busy = False
        self._deleted: dict[str, dict[str, object]] = {}  # segment ID -> item index value -> its vtkSegment
        self._tags = [node.AddObserver(vtk.vtkCommand.ModifiedEvent, self._on_modified)]
        for name in _SEGMENT_EVENTS:
            self._tags.append(node.AddObserver(getattr(slicer.vtkSegmentation, name), self._on_modified))
        if self.agreed() is None:
            segments = segment_set(node)
            self._agree(segments)
            self._apply_to_items(segments, removed=())

    @property
    def node(self):
        """The proxy segmentation node (None once the scene let it go, or gave its ID to another)."""
        node = self.scene.GetNodeByID(self.node_id)
        return node if node is not None and node.GetAddressAsString("") == self.address else None

    @property
    def sequence(self):
        """The segmentation sequence (None once the scene let it go)."""
        return self.scene.GetNodeByID(self.sequence_id)

    def agreed(self) -> list[list] | None:
        text = self.sequence.GetAttribute(ATTRIBUTE_SEGMENTS)
        return json.loads(text) if text else None

    def _agree(self, segments: list[list]) -> None:
        self.sequence.SetAttribute(ATTRIBUTE_SEGMENTS, json.dumps(segments))

    def _on_modified(self, caller, event) -> None:
        """On every event of the proxy (each labelmap write too): cheap until the segment set
        differs from the agreed one."""
        if self._busy or self.sequence is None:
            return
        current, agreed = segment_set(caller), self.agreed() or []
        if sorted(current) == sorted(agreed) or not self._edits_are_kept(caller):  # the order is the user's, per frame
            return
        removed = {row[0] for row in agreed} - {row[0] for row in current}
        self._busy = True
        try:
            self._apply_to_items(current, removed)
            self._agree(current)
        finally:
            self._busy = False

    def _edits_are_kept(self, node) -> bool:
        """Whether the browser writes proxy edits back into the frames ("save changes"). With
        it off, the proxy is a view: switching it off even empties the proxy, which is no
        deletion by the user."""
        for browser in self.scene.GetNodesByClass("vtkMRMLSequenceBrowserNode"):
            if browser.IsProxyNodeID(node.GetID()):
                return bool(browser.GetSaveChanges(self.sequence))
        return False

    def _apply_to_items(self, segments: list[list], removed) -> None:
        """Every item: `removed` segment IDs deleted; the rest given the names and colours
        of `segments`, and added (empty) where an item lacks them."""
        sequence = self.sequence
        if removed:
            self._deleted = {}  # the last deletion is the one an undo brings back
        for index in range(sequence.GetNumberOfDataNodes()):
            item, value = sequence.GetNthDataNode(index), sequence.GetNthIndexValue(index)
            if item is None:
                continue
            segmentation = item.GetSegmentation()
            for segment_id in removed:
                if segmentation.GetSegment(segment_id) is not None:
                    kept = slicer.vtkSegment()
                    kept.DeepCopy(segmentation.GetSegment(segment_id))
                    self._deleted.setdefault(segment_id, {})[value] = kept
                    segmentation.RemoveSegment(segment_id)
            for segment_id, name, color in segments:
                segment = segmentation.GetSegment(segment_id)
                if segment is None:
                    kept = self._deleted.get(segment_id, {}).pop(value, None)
                    if kept is not None and (kept.GetName() != name or _color(kept) != color):
                        kept = None  # a new segment that reuses the ID, not the deleted one back
                        self._deleted.pop(segment_id, None)
                    if kept is not None:
                        segmentation.AddSegment(kept, segment_id)
                        segment = segmentation.GetSegment(segment_id)
                    else:
                        segmentation.AddEmptySegment(segment_id, name, color)
                        continue
                if segment.GetName() != name:
                    segment.SetName(name)
                if _color(segment) != color:
                    segment.SetColor(*color)

    def detach(self) -> None:
        node = self.node
        for tag in self._tags if node is not None else ():
            node.RemoveObserver(tag)
        self._tags = []


def mirror_segments(node, sequence) -> SegmentMirror:
    """The mirror of the proxy `node` of `sequence`, made the first time it is asked for."""
    key = f"{id(node.GetScene())}:{node.GetID()}"
    mirror = _mirrors.get(key)
    if mirror is None or mirror.node is not node or mirror.sequence_id != sequence.GetID():
        if mirror is not None:
            mirror.detach()
        mirror = SegmentMirror(node, sequence)
        _mirrors[key] = mirror
    return mirror


def mirror_scene(scene) -> int:
    """Mirror every cine segmentation of the scene that SAMUSA made (its sequence carries
    `ATTRIBUTE_SEGMENTS`), as after a scene is opened: the mirrors of the session that saved
    it are gone. Returns how many are mirrored."""
    count = 0
    for browser in scene.GetNodesByClass("vtkMRMLSequenceBrowserNode"):
        sequences = vtk.vtkCollection()
        browser.GetSynchronizedSequenceNodes(sequences, True)
        for index in range(sequences.GetNumberOfItems()):
            sequence = sequences.GetItemAsObject(index)
            proxy = browser.GetProxyNode(sequence)
            if sequence.GetAttribute(ATTRIBUTE_SEGMENTS) and proxy is not None and proxy.IsA("vtkMRMLSegmentationNode"):
                mirror_segments(proxy, sequence)
                count += 1
    return count
