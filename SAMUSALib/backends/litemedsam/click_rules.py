"""How a settling model's mask answers boundary points: the rules between decoding the
points and showing the mask.

`ClickRules` is mixed into `backend.LiteMedSAMBackend`, with the region-click rules it
inherits (`region_rules.RegionRules`). Each rule compares candidate masks that depend on
the points alone (never their order), so a prompts file gives the same mask as the same
points one by one:

- `_uncut_by_points_box` (opt-in): boundary points bunched on one side, decoded without
  the box their extent gives when that box cuts the object off;
- `_arbitrate`: boundary points, the model against LiteMedSAM's ``fit`` encoding (two
  points only where the image backs the fit, `_fit_of_two_holds`), unless
  the fit falls short of the model's mask (`_fit_falls_short`, points bunched on one arc)
  or is a speck beside it (`fit_is_a_speck`: not blended in), or the points are bunched
  tighter still (`_outer_pair`: the outer two are read);
- `_local_to_points`: boundary points after a box change the box's mask only beside them.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
from scipy import ndimage

from ...errors import InputError
from ...prompts import FramePrompt
from . import encodings
from .click_regions import regions_near
from .region_rules import RegionRules
from .switches import OFF_WORDS, ON_WORDS, switch_setting

#: ``on`` (default): boundary points alone go to the model's boundary heads where it has
#: them (`SAMUSALite.attach_boundary_heads`); ``off``: to its main heads like every prompt.
BOUNDARY_HEADS_ENV = "SAMUSA_BOUNDARY_HEADS"
#: "off" turns boundary arbitration off (`LiteMedSAMBackend._arbitrate`).
ARBITRATION_ENV = "SAMUSA_BOUNDARY_ARBITRATION"
#: Boundary arbitration needs this many boundary points: with fewer, LiteMedSAM's fit
#: encoding has nothing to fit but the points' extent.
ARBITRATION_MIN_POINTS = 3
#: Two boundary points are arbitrated too, but only where the image backs the fit
#: (`ClickRules._fit_of_two_holds`): the fit covers at least `TWO_POINT_AREA` of the
#: model's mask's area, and its border is at least as contrasted as the model's mask's,
#: or the model's contour passes `TWO_POINT_MISS_PX` pixels further from the points.
TWO_POINT_AREA = 0.1
TWO_POINT_MISS_PX = 6.0
#: When the two candidates' contours lie within this many pixels of each other (mean
#: distance to the points), neither is clearly nearer: their mean logits are kept, a
#: two-model ensemble (docs/samusa_lite2.md, "Blending close candidates").
ARBITRATION_BLEND_PX = 2.0
#: Arbitration keeps the model's mask, untouched by LiteMedSAM's fit, when the fit falls
#: short of it with a border weaker by `PART_BORDER_MARGIN` (`_fit_falls_short`): whatever
#: the points say, when the fit covers under `SLIVER_SHARE` of the model's mask's area;
#: instead of blending the two, when it covers under `PART_SHARE` and lies at least
#: `PART_WITHIN` inside the model's mask; and from `ONE_SIDE_MIN_POINTS` points on, when
#: the points all lie on one side of the fit's centroid (`on_one_side`).
SLIVER_SHARE = 0.2
PART_SHARE = 0.5
PART_WITHIN = 0.8
PART_BORDER_MARGIN = 0.02
ONE_SIDE_MIN_POINTS = 4
#: ``on`` (default): from `ONE_SIDE_MIN_POINTS` boundary points on, points bunched on one
#: arc (on one side of LiteMedSAM's fit, and leaving an angle wider than `BUNCHED_ANGLE`
#: empty round the model's mask, seen from its centroid) are read by the model from the
#: two outermost alone by the boundary heads (`ClickRules._outer_pair`); ``off``: arbitrated
#: like any points. Part of arbitration: `ARBITRATION_ENV` off turns it off too.
BUNCHED_PAIR_ENV = "SAMUSA_BUNCHED_PAIR"
BUNCHED_ANGLE = float(np.radians(220))


#: Blending keeps the model's mask instead when LiteMedSAM's fit is a speck beside it
#: (`fit_is_a_speck`): under `SPECK_AREA` of the model's mask's area, and shallower, its
#: deepest point (distance to its border) under `SPECK_DEPTH` of the model's mask's.
SPECK_AREA = 0.5
SPECK_DEPTH = 0.85
#: ... unless the fit's border is more contrasted than the model's mask's by this much:
#: then it is the clicked structure beside a mask that ran past it, and is blended in.
SPECK_CONTRAST = 0.08


#: Opt-in (`ClickRules._uncut_by_points_box`): "on" (a share of 0.8) or a share in (0, 1.0]:
#: boundary points' box counts as cutting the object off when the mask of the same points
#: decoded without it lies at least that share outside it. Off by default: it rescues
#: points bunched on one side but costs spread points on echocardiography.
BOX_CUT_ENV = "SAMUSA_BOUNDARY_BOX_CUT"
BOX_CUT_ON = 0.8


def box_cut_setting() -> float | None:
    """The share of `ClickRules._uncut_by_points_box` that `BOX_CUT_ENV` asks for; None: off."""
    value = (os.environ.get(BOX_CUT_ENV) or "").strip().lower()
    if value in ("",) + OFF_WORDS:
        return None
    try:
        share = BOX_CUT_ON if value in ON_WORDS else float(value)  # "1" is on, as for every switch; "1.0" a share
    except ValueError:
        share = -1.0
    if not 0.0 < share <= 1.0:
        raise InputError(f"{BOX_CUT_ENV}={value!r}: expected on, off or a share of the mask between 0 and 1 (on: {BOX_CUT_ON})")
    return share


def on_one_side(points: np.ndarray, mask: np.ndarray, wider_than: float = np.pi) -> bool:
    """Whether the points (x, y) all lie on one side of the mask's centroid: seen from it,
    the largest angle between neighbouring points exceeds ``wider_than`` (radians; the
    default, 180 degrees, is one half-plane, so nothing the user clicked holds the mask's
    far side; a wider angle asks for points bunched tighter). A point within a pixel of
    the centroid has no direction and is left out."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if not mask.any():
        return False
    rows, cols = np.nonzero(mask)
    dx, dy = points[:, 0] - cols.mean(), points[:, 1] - rows.mean()
    away = np.hypot(dx, dy) >= 1.0
    if away.sum() < 2:
        return False
    angles = np.sort(np.arctan2(dy[away], dx[away]) % (2 * np.pi))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    return bool(gaps.max() > wider_than)


def outer_pair(points: np.ndarray) -> np.ndarray:
    """The two points (x, y) furthest apart, whatever order the points came in (ties go
    to the lexicographically first pair of the sorted points)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    distance = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    i, j = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return points[[min(i, j), max(i, j)]]


def depth(mask: np.ndarray) -> float:
    """The distance from the mask's deepest pixel to its border (pixels): its half-thickness."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0.0
    crop = np.pad(mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], 1)
    return float(ndimage.distance_transform_edt(crop).max())


def fit_is_a_speck(own: np.ndarray, fit: np.ndarray) -> bool:
    """Whether LiteMedSAM's fit is a speck beside the model's mask rather than a structure
    of its own: under `SPECK_AREA` of the model's mask and shallower (under `SPECK_DEPTH`
    of its `depth`). A fit that is smaller but as deep is a structure the model's mask ran
    past (a chamber, with the next one through the valve)."""
    own_area, fit_area = int(own.sum()), int(fit.sum())
    return 0 < fit_area < SPECK_AREA * own_area and depth(fit) < SPECK_DEPTH * depth(own)


def outside_share(mask: np.ndarray, box) -> float:
    """Share of the mask's pixels outside the (x0, y0, x1, y1) box."""
    total = int(mask.sum())
    if total == 0:
        return 0.0
    height, width = mask.shape
    x0, y0 = (int(np.clip(np.floor(v), 0, n)) for v, n in ((box[0], width), (box[1], height)))
    x1, y1 = (int(np.clip(np.ceil(v), 0, n - 1)) for v, n in ((box[2], width), (box[3], height)))
    return 1.0 - int(mask[y0 : y1 + 1, x0 : x1 + 1].sum()) / total


class ClickRules(RegionRules):
    """The click rules of `backend.LiteMedSAMBackend` (which supplies ``net``, ``letterbox``,
    ``_native``, ``_heads``, ``_contrasts``, ``logits_to_mask``, ``low_res_logits`` and ``_shown``)."""

    def _read_click_settings(self) -> None:
        self._read_region_settings()
        self.use_boundary_heads = switch_setting(BOUNDARY_HEADS_ENV, "on") == "on"
        self.arbitration = switch_setting(ARBITRATION_ENV, "on") == "on"
        self.box_cut = box_cut_setting()
        self.bunched_pair = switch_setting(BUNCHED_PAIR_ENV, "on") == "on"

    def _boundary_points(self, prompt: FramePrompt, previous: dict | None, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """The model's mask, kept as it is when the points' box would cut it off
        (`_uncut_by_points_box`), else arbitrated (`_arbitrate`). Heads that read boundary
        points without their box decode once; boxed heads decode without the box first
        only when the box-cut rule asks, so a cut prompt skips the boxed decode."""
        unboxed = None if self._heads(prompt).boundary_box else self._native(prompt, previous)
        return self._uncut_by_points_box(prompt, unboxed) or self._arbitrate(prompt, unboxed or self._native(prompt, previous), decoder)

    def _uncut_by_points_box(self, prompt: FramePrompt, unboxed: encodings.Decoded | None = None) -> encodings.Decoded | None:
        """Boundary points alone whose box (`lite.boundary_box`, their extent) cuts the
        object off: the mask decoded without that box, to be kept as it is (not
        arbitrated); None where the box does not cut it (or the rule is off).

        Why: boundary points bound the object only if they surround it. Bunched on one arc
        of the border, their extent is a sliver of the object and the mask stops at it
        (BUS-BRA, 2, 3 and 5 points bunched on 15-50 % of the border, at once: Dice 0.64
        0.48 0.54, below the 0.82 of one point). The same points decoded without the box
        show it: that mask then lies mostly outside the box (median 0.79-0.95 of it),
        while around spread points it lies mostly inside (90th percentile 0.20-0.43 on
        BUS-BRA, up to 0.80 on CAMUS). Measured on those prompts, the rule gives 0.80 0.77 0.78 there,
        and changes no spread prompt on BUS-BRA (docs/samusa_lite2.md, "Bunched boundary
        points"). Opt-in (`BOX_CUT_ENV`): on echocardiography the unboxed mask of spread
        points often runs past the structure, and the rule cost 5 even points there
        0.686 -> 0.658 at once, 0.712 -> 0.669 one at a time. Costs the settle passes
        once more per boundary prompt; depends on the points alone, not their order."""
        limit = self.box_cut
        if (
            limit is None
            or len(prompt.boundary) < 2
            or len(prompt.positive)
            or len(prompt.negative)
            or prompt.box is not None
            or prompt.mask is not None
        ):
            return None
        from .lite import BOUNDARY_LABEL, boundary_box

        points = self.letterbox.points(np.asarray(prompt.boundary, dtype=float).reshape(-1, 2))
        box = boundary_box(points, [BOUNDARY_LABEL] * len(points), None)
        uncut = unboxed or self._native(prompt, None, derive_box=False)
        if outside_share((uncut.logits[0, 0] > 0).cpu().numpy(), box) < limit:
            return None
        return encodings.Decoded(uncut.logits, uncut.iou, f"{uncut.how} (points' box cut it)")

    def _arbitrate(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Boundary points alone on a settling model (two only where `_fit_of_two_holds`;
        after a box from one point on, since the box gives the fit its extent: box + one
        point 0.930 -> 0.932 BUS-BRA, 0.954 -> 0.956 carotid, 0.682 -> 0.700 CAMUS):
        LiteMedSAM's ``fit`` encoding of the same points competes, and the mask whose
        contour passes nearer the points wins; when neither is nearer by
        `ARBITRATION_BLEND_PX`, their logits are averaged.

        Why: SAMUSA-Lite 2 reads boundary points well on the breast and carotid data it was
        trained on, but on echocardiography (CAMUS, never trained on) its mask can miss
        the clicked border where the pretrained box model, fitted to the points, follows it
        (boundary@5 0.64 alone, 0.71 arbitrated; docs/samusa_lite2.md). Except where the
        fit falls short of the model's mask (`_fit_falls_short`: points bunched on one arc),
        which is then kept, and where the points are bunched tighter still (`_outer_pair`),
        read from the outer two. Nor is a fit that is a speck beside the model's mask
        blended in (`fit_is_a_speck`): its logits outside the speck are far more negative
        than the model's are positive, so the mean kept about the speck (bunched points at
        once, k = 3..5: CAMUS 0.531 0.524 0.534 -> 0.554 0.552 0.549, BUS-BRA 0.845 0.859
        0.838 -> 0.859 0.859 0.860; evenly spread points: CAMUS one at a time 0.688 ->
        0.676 at k = 3, its one cost, BUS-BRA one at a time 0.911 0.935 -> 0.913 0.936 at
        k = 3, 5, the rest within 0.001; docs/samusa_lite2.md, "Boundary heads, third
        round, and a fit that is a speck"). Every candidate depends on the points alone, so
        the result stays independent of click order.
        """
        if (
            not self.arbitration
            or int(getattr(self.net, "settle_passes", 0) or 0) <= 0
            or len(prompt.boundary) < (1 if prompt.box is not None else 2)  # a box gives one point's extent
            or len(prompt.positive)
            or len(prompt.negative)
            or prompt.mask is not None
        ):
            return decoded
        fit = encodings.encode_boundary(decoder, prompt.boundary, "fit", box=prompt.box)
        masks = decoder.masks(torch.cat([decoded.logits[0], fit.logits[0]]))
        pair = self._outer_pair(prompt, masks)
        if pair is not None:
            return pair
        own, fitted = encodings.contour_distances(masks, np.asarray(prompt.boundary, dtype=float))
        if len(prompt.boundary) < ARBITRATION_MIN_POINTS and not self._fit_of_two_holds(prompt.frame, masks, own - fitted):
            return decoded
        blend = abs(fitted - own) < ARBITRATION_BLEND_PX
        if (blend or fitted < own) and self._fit_falls_short(prompt.frame, masks, blend, prompt.boundary):
            return encodings.Decoded(decoded.logits, decoded.iou, f"{decoded.how} (the fit falls short)")
        if blend and fit_is_a_speck(*masks) and not self._fit_stands_out(prompt.frame, masks):
            return encodings.Decoded(decoded.logits, decoded.iou, f"{decoded.how} (the fit is a speck)")
        if blend:
            logits = (decoded.logits.float() + fit.logits.float()) / 2
            return encodings.Decoded(logits, (decoded.iou + fit.iou) / 2, f"{decoded.how} + {fit.how} (blended)")
        if fitted < own:  # a margin favouring the model lost on CAMUS, gained nothing elsewhere
            return encodings.Decoded(fit.logits, fit.iou, f"{fit.how} (arbitrated)")
        return decoded

    def _fit_stands_out(self, frame: int, masks: np.ndarray) -> bool:
        """Whether LiteMedSAM's fit (``masks[1]``) has a border more contrasted than the
        model's mask's by `SPECK_CONTRAST`: a small fit that is still the clicked structure.

        Why: on echocardiography the heads' mask of three spread points can run past a small
        chamber into a dim neighbour; the chamber's fit is then small and shallower than
        that mask, a speck by `fit_is_a_speck`, yet its border is far the stronger (border
        contrast 0.13-0.24 against 0.03-0.12), and blending it in rescues the points (CAMUS,
        two prompts: 0.31 -> 0.89, 0.50 -> 0.97). The specks the rule was made for have
        borders within 0.06 of the heads' mask's (recorded on every prompt where it fired,
        k = 3..5, three sets; docs/samusa_lite2.md, "Two boundary points arbitrated where
        the image backs the fit")."""
        own_contrast, fit_contrast = self._contrasts(frame, masks)
        return fit_contrast > own_contrast + SPECK_CONTRAST

    def _fit_of_two_holds(self, frame: int, masks: np.ndarray, nearer_by: float) -> bool:
        """Whether LiteMedSAM's fit of two boundary points, or of one after a box
        (``masks[1]``), may compete with the model's mask (``masks[0]``): it is no speck (`TWO_POINT_AREA` of the model's
        area), and its border is at least as contrasted, or the model's contour passes
        the points `TWO_POINT_MISS_PX` further off than the fit's (`nearer_by`).

        Why: two points on echocardiography are where the boundary heads fell furthest
        below the fit (CAMUS, spread evenly: 0.555 one at a time, 0.557 at once, against
        the fit's 0.617); there the heads' mask often runs into the next chamber, and the
        fit of the two points follows the clicked one. Arbitrating every pair also took in
        fits of two points bunched on one arc (a square on a short chord: a speck, or a
        patch with a weak border) and cost bunched BUS-BRA 0.881 -> 0.862 and spread
        carotid 0.944 -> 0.941 (recorded per prompt at k = 2 and replayed). With the test,
        two spread points on CAMUS give 0.612 one at a time and 0.623 at once, and no
        bunched set changes (docs/samusa_lite2.md, "Two boundary points arbitrated where
        the image backs the fit"). Depends on the points alone, not their order."""
        own, fit = masks
        if int(fit.sum()) < TWO_POINT_AREA * int(own.sum()):
            return False
        if nearer_by >= TWO_POINT_MISS_PX:
            return True
        own_contrast, fit_contrast = self._contrasts(frame, masks)
        return fit_contrast >= own_contrast

    def _outer_pair(self, prompt: FramePrompt, masks: np.ndarray) -> encodings.Decoded | None:
        """Boundary points bunched on one arc of the border: the model's mask of the two
        outermost (`outer_pair`), kept as it is; None for points that are not bunched. From
        `ONE_SIDE_MIN_POINTS` points on, bunched means on one side of LiteMedSAM's fit
        (``masks[1]``, `on_one_side`) and leaving an angle wider than `BUNCHED_ANGLE` empty
        round the model's mask of all of them (``masks[0]``).

        Why: the boundary heads read the points between the outer two poorly, and their mask
        shrinks as bunched points are added (BUS-BRA, bunched at once: 0.873 at two points,
        0.848 0.844 0.838 at three to five), while the outer two of the same points give
        0.848 0.867 0.865; the fit of bunched points is worse still (0.28-0.34), so
        arbitrating against it has nothing better to offer. Asking both masks keeps points
        spread round a structure out: on echocardiography the model's mask of spread points
        can lie beside the structure, so they look bunched round it, but they surround the
        fit (docs/samusa_lite2.md, "Bunched points read from the outer two"). Depends on the
        points alone, not their order."""
        points = np.asarray(prompt.boundary, dtype=float).reshape(-1, 2)
        own, fit = masks
        if (
            not self.bunched_pair
            or prompt.box is not None
            or self._heads(prompt).boundary_box  # measured with the boundary heads only
            or len(points) < ONE_SIDE_MIN_POINTS
            or not on_one_side(points, fit)
            or not on_one_side(points, own, BUNCHED_ANGLE)
        ):
            return None
        pair = self._native(dataclasses.replace(prompt, boundary=outer_pair(points)), None)
        return encodings.Decoded(pair.logits, pair.iou, f"{pair.how} (bunched: the outer two points read)")

    def _fit_falls_short(self, frame: int, masks: np.ndarray, blend: bool, points: np.ndarray) -> bool:
        """Whether LiteMedSAM's fit (``masks[1]``) falls short of the model's mask
        (``masks[0]``): its border contrast below the model's by `PART_BORDER_MARGIN`, and
        either under `SLIVER_SHARE` of the model's area (wherever it lies), or, where the
        two would be blended (`blend`), under `PART_SHARE` of it and at least
        `PART_WITHIN` inside it, or, from `ONE_SIDE_MIN_POINTS` points on, the points all
        on one side of it (`on_one_side`).

        Why: the fit's boxes are the points' extent and squares on their chord. Points
        bunched on one arc of the border span a part of the object, and the fit stops at
        their chord, where the image has no edge, or spills past the arc; its contour
        still passes through the points, so it won, or was blended in (averaging the
        logits of a part and the whole gives about the part), and three bunched points at
        once fell below two (BUS-BRA 0.873 -> 0.631). A leaking model mask also dwarfs the
        fit, but there the fit is a whole structure with its own border. Recorded per
        prompt on the 30 / 39 / 48 BUS-BRA / carotid / CAMUS images at k = 3..5 and
        replayed: bunched points gain 0.19 / 0.21 / 0.16, and no prompt with points spread
        evenly (at once or one at a time) or furthest-first changes; a sliver share of 0.3
        cost CAMUS spread points 0.005, where a leaking mask can have the stronger border
        too, and asking slivers to lie inside the model's mask too gave back 0.03 / 0.07 /
        0.10 of the gain (docs/samusa_lite2.md, "The fit of bunched points kept out of the model's
        mask"). Four or five bunched points still lost where the fit was a fifth to two
        thirds of the model's mask; what marks them is that no point holds the fit's far
        side (BUS-BRA four / five points 0.806 / 0.727 -> 0.834 / 0.769). Three points
        spread round a structure lie on one side of its centre too often to ask that of
        them (docs/samusa_lite2.md, "Points on one side of the fit"). Depends on the points
        alone, not their order."""
        own, fit = masks
        own_area, fit_area = int(own.sum()), int(fit.sum())
        sliver = fit_area < SLIVER_SHARE * own_area
        part = blend and fit_area < PART_SHARE * own_area and int((own & fit).sum()) >= PART_WITHIN * fit_area
        if not (sliver or part or (len(points) >= ONE_SIDE_MIN_POINTS and on_one_side(points, fit))):
            return False
        own_contrast, fit_contrast = self._contrasts(frame, masks)
        return own_contrast > fit_contrast + PART_BORDER_MARGIN

    def _local_to_points(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Boundary points after a box change the box's own mask (LiteMedSAM's) only beside
        them: each connected region the decoded (arbitrated) mask adds to it or removes
        from it is taken where it comes within `click_regions.POINT_REACH` of a point.

        Why: the points after a box correct what the box gave, but a settling model
        re-decodes the whole structure from the box and all the points, and with more
        points it got no better or worse (box + 1..4 points, the model alone: BUS-BRA
        0.930 0.930 0.929 0.926, carotid 0.954 0.948 0.944 0.941, CAMUS 0.682 0.676
        0.673 0.652); arbitrated against LiteMedSAM's masks of the box, box + points still
        dipped on every set. Kept local: BUS-BRA 0.931 0.934 0.937 0.939 and CAMUS 0.688
        0.692 0.694 0.703 rise with every point, carotid 0.953 0.952 0.952 0.952 stays
        within 0.001; CAMUS's endocardium and atrium gain at every k, its myocardium (a
        ring, where re-reading the whole helped) loses (docs/samusa_lite2.md, "Boundary
        points after a box"). Depends on the box and the points, not their order."""
        if self._local_case(prompt) != "points":
            return decoded
        base = self._local_base(prompt, decoder)  # the box's own mask
        new = decoded.logits.float()
        inside, before = ((m[0, 0] > 0).cpu().numpy() for m in (new, base))
        points = self.letterbox.points(np.asarray(prompt.boundary, dtype=float).reshape(-1, 2))
        keep = regions_near(inside & ~before, points) | regions_near(before & ~inside, points)
        merged = torch.where(torch.from_numpy(keep).to(new.device)[None, None], new, base.to(new.device))
        return encodings.Decoded(merged, decoded.iou, f"{decoded.how} (local to the points)")
