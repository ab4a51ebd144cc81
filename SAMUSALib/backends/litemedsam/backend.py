"""LiteMedSAM behind the session: prompted frames and frame-to-frame propagation.

The session (`engine.Session`) decides which frame to compute and from which
neighbour; this backend computes one object on one frame, with the same interface as
`backends.sam2.backend.SAM2Backend`:

- `prompt(obj, prompt, is_init=..., previous=...)`: segment a frame from the user's
  prompt (boundary points, region clicks, box, mask; see `encodings`);
- `track(obj, frame, reverse=...)`: segment a frame from its neighbour's result (the
  frame before it, or after it when `reverse`) with `SAMUSALib.tracking`'s tracker
  (motion, shape and appearance memory; docs/tracking.md). `SAMUSA_TRACKER=legacy`
  keeps the old tracker: the neighbour mask's bounding box, grown by a margin, as the
  box prompt, then a second pass with the first mask's box (it balloons);
- `redetect(obj, frame)`: without a window, after the object was lost, whether it is back;
- `low_res_logits(out)` / `logits_to_mask(low_res)`: 256 x 256 logits in the model's
  padded square, and the (H, W) mask they give on the frame.

Presence. Outside a temporal window the object may leave the picture: a propagated
frame whose mask is empty, shrinks below `VANISH_AREA` of its neighbour's, or whose
edge contrast drops below `VANISH_CONTRAST` of its neighbour's, is returned as
``{"vanished": True}`` and the session stops that run there. Inside a window the object is declared present: the mask is kept
whatever its score, and an empty result falls back to the neighbour's box and mask.

Image embeddings are cached per frame within a byte budget (`EmbeddingCache`), so
clicks and re-propagation after an edit only run the decoder.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from ...features import FrameLRU, cache_budget_bytes
from ...frames import FrameSource
from ...prompts import FramePrompt
from ...tracking.shape import edge_contrast as shape_edge_contrast
from ...tracking.shape import leak_solidity_setting, leaks
from . import encodings
from .click_regions import clicked_changes, cut_ignored, keep_clicked
from .network import IMAGE_SIZE, Letterbox
from .square import LetterboxSquare

if TYPE_CHECKING:
    from ...state import ObjectState

BOUNDARY_ENV = "SAMUSA_LITEMEDSAM_BOUNDARY"
REGION_ENV = "SAMUSA_LITEMEDSAM_REGION"
#: Propagation design: "legacy" (the grown-box tracker below) or one of
#: `SAMUSALib.tracking.DESIGNS`; overrides the model's own (`ModelSpec.tracker`, else
#: `tracking.DEFAULT_DESIGN`; docs/tracking.md).
TRACKER_ENV = "SAMUSA_TRACKER"
#: "off" turns boundary arbitration off (`LiteMedSAMBackend._arbitrate`).
ARBITRATION_ENV = "SAMUSA_BOUNDARY_ARBITRATION"
#: Boundary arbitration needs this many boundary points: with fewer, LiteMedSAM's fit
#: encoding has nothing to fit but the points' extent.
ARBITRATION_MIN_POINTS = 3
#: ``local`` (default): corrective clicks change the mask they correct only where they
#: are (`LiteMedSAMBackend._local_to_clicks`); ``free``: the model's mask as decoded.
LOCAL_CLICKS_ENV = "SAMUSA_LOCAL_CLICKS"
#: ``on`` (default): region clicks without a box get a second candidate, LiteMedSAM's
#: ``search`` encoding, and the mask with the stronger border contrast is kept
#: (`LiteMedSAMBackend._referee_region`); ``off``: the model's mask alone.
REGION_REFEREE_ENV = "SAMUSA_REGION_REFEREE"
#: ``on`` (default): a correction the model ignores (a negative click left inside the
#: mask, a positive one outside) is tried again with LiteMedSAM's ``search`` encoding,
#: kept where the clicks are (`LiteMedSAMBackend._heed_clicks`), then a negative click
#: still inside cuts off the mask on its side (`_cut_ignored`); ``search``: no cut; ``off``.
CLICK_HEEDING_ENV = "SAMUSA_CLICK_HEEDING"
#: Base masks of `_local_to_clicks` kept per backend (box, or positive clicks, per frame).
LOCAL_BASES_KEPT = 8
#: When the two candidates' contours lie within this many pixels of each other (mean
#: distance to the points), neither is clearly nearer: their mean logits are kept, a
#: two-model ensemble (docs/samusa_lite2.md, "Blending close candidates").
ARBITRATION_BLEND_PX = 2.0

#: Propagation: the neighbour's bounding box grows by this fraction of its size on each
#: side (motion); 0.25 followed the carotid sequence best (0.15: chained Dice 0.58, 0.25:
#: 0.64, 0.35: 0.45; docs/litemedsam_results.md).
TRACK_MARGIN = 0.25
#: Without a window, a propagated mask smaller than this fraction of its neighbour's ...
VANISH_AREA = 0.2
#: ... or whose edge contrast (mean intensity inside against a ring around it) falls below
#: this fraction of the neighbour's means the object left the picture. A box model finds
#: "something" in any box, blank frames included (predicted IoU 0.78 on a black frame),
#: so the image must say whether a structure is there: on the carotid sequence the true
#: lumen keeps at least 0.7 of its neighbour's contrast; a blank frame has none.
VANISH_CONTRAST = 0.35


#: How embeddings are kept: "float16" (default) or "float32".
EMBEDDING_DTYPE_ENV = "SAMUSA_EMBEDDING_DTYPE"
EMBEDDING_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class EmbeddingCache(FrameLRU[torch.Tensor]):
    """Image embeddings per frame, least recently used dropped first beyond the budget.

    `stats` counts encoder calls like SAM2's `FeatureCache`. With `shared_embeddings()`
    active, embeddings are also kept across sessions keyed by the frame's content (for
    evaluations that open the same image many times).

    Embeddings are kept in float16 (`SAMUSA_EMBEDDING_DTYPE`): a 480x640 loop's cache is
    2 MB a frame instead of 4, so the default 1 GB budget holds 512 frames, not 256 (a
    300-frame loop propagated and kept for clicks). Every use, the first included, reads
    the rounded copy, so a frame's result does not depend on whether its embedding came
    from the encoder or the cache; masks stay within Dice 0.995 of float32 storage
    (`Testing/test_litemedsam_speed.py`).
    """

    _shared: "OrderedDict[str, torch.Tensor] | None" = None
    _shared_budget = 0

    def __init__(self, net, load_frame: Callable[[int], np.ndarray], letterbox: Letterbox, device, budget_bytes: int, autocast) -> None:
        super().__init__(budget_bytes)
        self.net = net
        self.load_frame = load_frame
        self.letterbox = letterbox
        self.device = device
        self.autocast = autocast
        name = (os.environ.get(EMBEDDING_DTYPE_ENV) or "float16").strip().lower()
        if name not in EMBEDDING_DTYPES:
            raise ValueError(f"{EMBEDDING_DTYPE_ENV} must be one of {', '.join(EMBEDDING_DTYPES)}; got {name!r}")
        self.dtype = EMBEDDING_DTYPES[name]

    def get(self, frame: int) -> torch.Tensor:
        """(1, 256, 64, 64) float32 embedding of a frame (the kept copy's values)."""
        return self.lookup(frame).float()

    @staticmethod
    def _nbytes(entry: torch.Tensor) -> int:
        return entry.numel() * entry.element_size()

    def _encode(self, frame: int) -> torch.Tensor:
        image = self.load_frame(frame)
        shared = EmbeddingCache._shared
        key = None
        if shared is not None:
            key = hashlib.sha1(np.ascontiguousarray(image).tobytes() + str(image.shape).encode() + str(self.dtype).encode()).hexdigest()
            if key in shared:
                shared.move_to_end(key)
                return shared[key]
        start = time.perf_counter()
        with torch.inference_mode():
            tensor = self.letterbox.image(image, self.device)
            with self.autocast():
                embedding = self.net.embed(tensor)
            embedding = embedding.to(self.dtype).clone()
        self.stats.calls += 1
        self.stats.frames.append(frame)
        self.stats.seconds += time.perf_counter() - start
        if shared is not None and key is not None:
            shared[key] = embedding
            while len(shared) * embedding.numel() * embedding.element_size() > EmbeddingCache._shared_budget and len(shared) > 1:
                shared.popitem(last=False)
        return embedding


@contextmanager
def shared_embeddings(megabytes: int = 2048) -> Iterator[None]:
    """Keep LiteMedSAM embeddings across sessions inside the block, keyed by frame content
    (a 256 x 64 x 64 float16 embedding is 2 MB). Cache hits do not count as encoder calls."""
    previous = EmbeddingCache._shared, EmbeddingCache._shared_budget
    EmbeddingCache._shared = OrderedDict()
    EmbeddingCache._shared_budget = int(megabytes) * 1024 * 1024
    try:
        yield
    finally:
        EmbeddingCache._shared, EmbeddingCache._shared_budget = previous


def edge_contrast(image: np.ndarray, mask: np.ndarray, view: np.ndarray | None = None) -> float:
    """The vanish detector's contrast: `tracking.shape.edge_contrast` with its 3 px minimum
    ring (inside the probe's field of view `view`, where known)."""
    return shape_edge_contrast(image, mask, min_width=3, view=view)


def _box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5)


def model_tracker(model) -> str | None:
    """The propagation design the model says suits it: its metadata's "tracker", else its
    spec's (None: `tracking.DEFAULT_DESIGN`). `SAMUSA_TRACKER` overrides both."""
    named = (getattr(model, "metadata", None) or {}).get("tracker")
    return named or getattr(getattr(model, "spec", None), "tracker", None)


class LiteMedSAMBackend:
    """Computes one object's result on one frame with LiteMedSAM (a `LoadedModel`)."""

    #: clicks on a propagated frame correct the mask shown there (`Session._correcting`
    #: hands it over as the prompt's mask; `_local_to_clicks` keeps the change local)
    clicks_correct_shown_mask = True

    #: the session computes a frame between two prompted frames from the nearer one
    #: (an image-only model has no memory that could hold both)
    @property
    def nearest_prompt(self) -> bool:
        return self.tracker is not None

    def __init__(
        self,
        frames: FrameSource,
        model,
        feature_cache_mb: int | None = None,
        *,
        boundary_encoding: str | None = None,
        region_encoding: str | None = None,
    ) -> None:
        self.frames = frames
        self.model = model
        self.net = model.sam
        self.device = model.device
        self.image_size = IMAGE_SIZE
        self.letterbox = Letterbox(frames.frame_shape)
        self.features = EmbeddingCache(
            self.net, frames.frame, self.letterbox, self.device, cache_budget_bytes(feature_cache_mb), model.autocast
        )
        self.boundary_encoding = boundary_encoding or os.environ.get(BOUNDARY_ENV) or encodings.DEFAULT_BOUNDARY_ENCODING
        self.region_encoding = region_encoding or os.environ.get(REGION_ENV) or encodings.DEFAULT_REGION_ENCODING
        if self.boundary_encoding not in encodings.BOUNDARY_ENCODINGS:
            raise ValueError(
                f"LiteMedSAM boundary encoding must be one of {', '.join(encodings.BOUNDARY_ENCODINGS)}; "
                f"got {self.boundary_encoding!r}"
            )
        if self.region_encoding not in encodings.REGION_ENCODINGS:
            raise ValueError(
                f"LiteMedSAM region encoding must be one of {', '.join(encodings.REGION_ENCODINGS)}; "
                f"got {self.region_encoding!r}"
            )
        self.arbitration = os.environ.get(ARBITRATION_ENV, "on").lower() not in ("off", "0", "false", "no")
        self.local_clicks = os.environ.get(LOCAL_CLICKS_ENV, "local").lower() != "free"
        self.region_referee = os.environ.get(REGION_REFEREE_ENV, "on").lower() not in ("off", "0", "false", "no")
        self.leak_solidity = leak_solidity_setting()
        heeding = os.environ.get(CLICK_HEEDING_ENV, "on").lower()
        self.click_heeding = "off" if heeding in ("off", "0", "false", "no") else "search" if heeding == "search" else "on"
        self._local_bases: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._shown: dict | None = None  # the propagated result the prompt being decoded corrects
        self.decoder_steps = 0
        # ---- tracking hook (SAMUSALib.tracking): memory, motion and shape for propagation
        from ... import tracking

        self.tracker = tracking.make_tracker(os.environ.get(TRACKER_ENV) or model_tracker(model))
        self.square = LetterboxSquare(self) if self.tracker is not None else None

    # -------------------------------------------------------------- interface
    def prompt(self, obj: "ObjectState", prompt: FramePrompt, *, is_init: bool, previous: dict | None) -> dict:
        """Segment a prompted frame from all of its prompt (clicks accumulate in `prompt`);
        `previous` is the frame's earlier result, used as the starting box for region
        clicks that come without one."""
        decoder = self._decoder(prompt.frame)
        # the propagated result the prompt's mask came from (`Session._correcting`; a frame
        # with a mask of the user's own has none)
        self._shown = obj.shown.get(prompt.frame) if prompt.mask is not None else None
        previous_mask = None
        if previous is not None and not previous.get("vanished"):
            previous_mask = self.logits_to_mask(self.low_res_logits(previous))
        clicks = len(prompt.positive) + len(prompt.negative)
        native = getattr(self.net, "boundary_native", False)
        box_by_pretrained = getattr(self.net, "pretrained_box", False)
        if native and (clicks or len(prompt.boundary) or (prompt.box is not None and not box_by_pretrained)):
            decoded = self._native_clicks(prompt, previous, decoder)
        elif len(prompt.boundary):
            decoded = encodings.encode_boundary(
                decoder, prompt.boundary, self.boundary_encoding, box=prompt.box,
                positive=prompt.positive, negative=prompt.negative,
            )
        elif prompt.mask is not None and prompt.box is None and not clicks:
            decoded = encodings.Decoded(decoder.hard_logits(prompt.mask), 1.0, "mask")
        elif prompt.box is not None and not clicks:
            decoded = self._box_alone(decoder, prompt.box)
            if self._local_case(prompt) == "seen":  # what clicks after the box will correct
                self._keep_base(self._local_key(prompt), decoded.logits.float())
        else:
            start = prompt.mask if prompt.mask is not None else previous_mask
            decoded = encodings.encode_region(
                decoder, prompt.positive, prompt.negative, self.region_encoding, box=prompt.box, previous=start
            )
        self.decoder_steps += decoder.calls
        out = self._result(decoded)
        if self.tracker is not None:  # tracking hook: the prompted frame joins the memory
            self.tracker.remember(self.square, prompt.frame, out)
        return out

    def track(self, obj: "ObjectState", frame: int, *, reverse: bool) -> dict:
        """Segment `frame` from its neighbour's result (see the module docstring)."""
        neighbour = frame + 1 if reverse else frame - 1
        source = obj.output(neighbour)
        windowed = obj.window is not None
        if source is None or source.get("vanished"):
            if not windowed:
                return self._vanished()
            neighbour, source = self._last_present(obj, frame, reverse)
            if source is None:
                return self._vanished()
        if self.tracker is not None:  # tracking hook (SAMUSALib.tracking)
            return self._track_with_memory(obj, frame, neighbour, source, windowed)
        source_mask = self.logits_to_mask(self.low_res_logits(source))
        box = _box_of(source_mask) or source.get("box")
        if box is None:
            return self._vanished() if not windowed else dict(source)
        decoder = self._decoder(frame)
        shape = decoder.shape
        grown = encodings.clip_boxes(encodings.grown(box, (TRACK_MARGIN,)), shape)
        logits, iou = decoder.decode(grown)
        mask = decoder.masks(logits)[0]
        tight = _box_of(mask)
        if tight is not None:  # a second pass with the first mask's own box
            logits2, iou2 = decoder.decode(encodings.clip_boxes(np.asarray(tight)[None], shape))
            if iou2[0] >= iou[0]:
                logits, iou = logits2, iou2
                mask = decoder.masks(logits)[0]
        self.decoder_steps += decoder.calls
        area, source_area = int(mask.sum()), int(source_mask.sum())
        lost = area == 0 or area < VANISH_AREA * source_area
        if not lost and not windowed:
            before = edge_contrast(self._grey(neighbour), source_mask)
            lost = edge_contrast(self._grey(frame), mask) < VANISH_CONTRAST * before
        if lost and not windowed:
            return self._vanished()
        if area == 0:  # inside a window: the object stays where it was last seen
            out = dict(source)
            out["how"] = "held"
            return out
        return self._result(encodings.Decoded(logits[:1][None], float(iou[0]), "track"))

    @staticmethod
    def low_res_logits(out: dict) -> torch.Tensor:
        return out["logits"]

    def logits_to_mask(self, low_res: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return (self.letterbox.to_frame(low_res.float())[0, 0] > 0).cpu().numpy()

    def redetect(self, obj: "ObjectState", frame: int) -> dict:
        """Without a window, after the object was lost: is it back on `frame`? (tracking
        hook; the legacy tracker never looks again.)"""
        if self.tracker is None:
            return self._vanished()
        out = self.tracker.redetect(self.square, frame, list(obj.cond.values()))
        if out is None:
            return self._vanished()
        mask = self.logits_to_mask(out["logits"])
        view = self.square.frame_view()
        contrasts = [
            edge_contrast(self._grey(f), self.logits_to_mask(self.low_res_logits(o)), view) for f, o in obj.cond.items()
        ]
        if edge_contrast(self._grey(frame), mask, view) < VANISH_CONTRAST * max(contrasts, default=0.0):
            return self._vanished()
        return out

    # -------------------------------------------------------------- internals
    def _track_with_memory(self, obj: "ObjectState", frame: int, neighbour: int, source: dict, windowed: bool) -> dict:
        """`SAMUSALib.tracking`'s tracker, then presence as the legacy tracker decides it."""
        out = self.tracker.track(self.square, frame, neighbour, source, list(obj.cond.values()))
        if windowed:
            return out
        mask = self.logits_to_mask(out["logits"])
        source_mask = self.logits_to_mask(self.low_res_logits(source))
        area, source_area = int(mask.sum()), int(source_mask.sum())
        lost = out["how"] == "held" or area == 0 or area < VANISH_AREA * source_area
        if not lost:
            view = self.square.frame_view()
            before = edge_contrast(self._grey(neighbour), source_mask, view)
            lost = edge_contrast(self._grey(frame), mask, view) < VANISH_CONTRAST * before
        return self._vanished() if lost else out

    def _native(self, prompt: FramePrompt, previous: dict | None) -> encodings.Decoded:
        """SAMUSA-Lite: every point with its own label (boundary 4, positive 1, negative 0),
        the box, and a mask prompt, as it was trained (`SAMUSALib.training.lite`).

        SAMUSA-Lite 1 takes the frame's previous logits as the mask prompt, so its mask
        depends on the order the clicks came in. A model trained to settle
        (``settle_passes`` = n > 0, SAMUSA-Lite 2) ignores the history: the frame's clicks
        are decoded without a mask prompt (or with the user's mask), then n - 1 more times
        with the last pass's logits. The mask is then a function of the clicks alone, the
        same from a prompts file, a markups node or the same clicks one by one in any order."""
        passes = int(getattr(self.net, "settle_passes", 0) or 0)
        if passes <= 0:
            return self._native_pass(prompt, previous)
        decoded = self._native_pass(prompt, None)
        for _ in range(passes - 1):
            decoded = self._native_pass(prompt, {"logits": decoded.logits})
        return decoded

    def _native_clicks(self, prompt: FramePrompt, previous: dict | None, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Clicks, boundary points or a box the model reads natively: decoded, arbitrated
        (boundary points), refereed (region clicks) and kept local (corrections).

        Clicks on a propagated frame correct the mask it showed (`_local_to_clicks`), which
        is what a click on a nearly right mask asks for. When the propagated mask is on the
        wrong structure, though, the corrections would have to undo it piece by piece: so
        the same clicks decoded alone compete, and the mask with the stronger border wins
        (as in `_referee_region`). Bundled carotid loop, a box one lumen-height off the
        lumen, propagated (Dice 0 on frame 4), then a positive click on the lumen and a
        negative one on the wrong mask: 0.942 against 0.000 and 0.732 kept local; one
        click on each correctly tracked frame: unchanged (docs/tracking.md). Negative
        clicks alone mark no structure, so they only correct (half the decoder passes)."""
        decoded = self._arbitrate(prompt, self._native(prompt, previous), decoder)
        decoded = self._referee_region(prompt, decoded, decoder)
        decoded = self._local_to_clicks(prompt, decoded, decoder)
        # negative clicks alone mark no structure to compete with
        if self._shown is None or prompt.mask is None or not len(prompt.positive) or self._local_case(prompt) != "correct":
            return decoded
        alone = self._native_clicks(FramePrompt(prompt.frame, positive=prompt.positive, negative=prompt.negative), None, decoder)
        corrected, own = self._contrasts(prompt.frame, decoder.masks(torch.cat([decoded.logits[0].float(), alone.logits[0].float()])))
        if own > corrected:
            return encodings.Decoded(alone.logits, alone.iou, f"{alone.how} (clicks alone: stronger border)")
        return decoded

    def _arbitrate(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Boundary points alone on a settling model: LiteMedSAM's ``fit`` encoding of the
        same points competes, and the mask whose contour passes nearer the points wins;
        when neither is nearer by `ARBITRATION_BLEND_PX`, their logits are averaged.

        Why: SAMUSA-Lite 2 reads boundary points well on the breast and carotid data it was
        trained on, but on echocardiography (CAMUS, never trained on) its mask can miss
        the clicked border where the pretrained box model, fitted to the points, follows it
        (boundary@5 0.64 alone, 0.71 arbitrated; docs/samusa_lite2.md). Both candidates
        depend on the points alone, so the result stays independent of click order.
        """
        if (
            not self.arbitration
            or int(getattr(self.net, "settle_passes", 0) or 0) <= 0
            or len(prompt.boundary) < ARBITRATION_MIN_POINTS
            or len(prompt.positive)
            or len(prompt.negative)
            or prompt.mask is not None
        ):
            return decoded
        fit = encodings.encode_boundary(decoder, prompt.boundary, "fit", box=prompt.box)
        masks = decoder.masks(torch.cat([decoded.logits[0], fit.logits[0]]))
        own, fitted = encodings.contour_distances(masks, np.asarray(prompt.boundary, dtype=float))
        if abs(fitted - own) < ARBITRATION_BLEND_PX:
            logits = (decoded.logits.float() + fit.logits.float()) / 2
            return encodings.Decoded(logits, (decoded.iou + fit.iou) / 2, f"{decoded.how} + {fit.how} (blended)")
        if fitted < own:  # a margin favouring the model lost on CAMUS, gained nothing elsewhere
            return encodings.Decoded(fit.logits, fit.iou, f"{fit.how} (arbitrated)")
        return decoded

    def _local_to_clicks(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Corrective region clicks on a settling model change the mask they correct only
        where they are. The mask they correct (the base) is the prompt's mask when there
        is one (the user's, or the propagated mask the frame showed before its first click),
        the box's own (LiteMedSAM's, the one the box alone gives) when there is a box, else
        the mask of the positive
        clicks alone (refereed, `_referee_region`); the model's mask of all the clicks is
        taken only in each connected region it added around a positive click or removed
        around a negative one, within the click's own side of the clicks of the other
        kind (`click_regions.nearer_to`: a negative click does not remove what lies
        nearer a positive one, or, without any positive click, nearer the base's deepest
        point: BUS-BRA box + clicks at 5 clicks 0.934 -> 0.940, now rising at every click).

        Why: a settling model re-decodes the whole structure from all the clicks, so a
        click could change the mask far from where it was given; on echocardiography
        (never trained on) every click after a box made the mask worse than the box
        alone. Mean Dice at 1..5 clicks, decoded freely -> kept local
        (docs/samusa_lite2.md): CAMUS box + clicks 0.677 0.646 0.623 0.611 0.605 -> 0.677
        0.681 0.682 0.681 0.681; region clicks on BUS-BRA 0.870 0.882 0.894 0.898 0.898 ->
        0.870 0.893 0.903 0.904 0.903. Every mask involved depends on the clicks alone,
        not their order. Costs the base's decoding when the box or the positive clicks
        change, unless the user saw that base first (kept for `LOCAL_BASES_KEPT` bases)."""
        case = self._local_case(prompt)
        if case == "seen":  # the mask the clicks that may follow will correct
            self._keep_base(self._local_key(prompt), decoded.logits.float())
        if case != "correct":
            return decoded
        base = self._local_base(prompt, decoder)
        new = decoded.logits.float()
        keep = self._clicked_changes(prompt, new, base)
        merged = torch.where(torch.from_numpy(keep).to(new.device)[None, None], new, base.to(new.device))
        how = f"{decoded.how} (local)" if keep.any() else f"{decoded.how} (base)"
        return self._cut_ignored(prompt, self._heed_clicks(prompt, encodings.Decoded(merged, decoded.iou, how), base, decoder), base)

    def _cut_ignored(self, prompt: FramePrompt, decoded: encodings.Decoded, base: torch.Tensor) -> encodings.Decoded:
        """Negative clicks the corrected mask still holds cut off the mask on their side of
        the positive clicks (`click_regions.cut_ignored`): a click the user sees ignored
        is the worst answer, and both models can ignore one."""
        if self.click_heeding != "on" or not len(prompt.negative) or prompt.box is not None:
            return decoded
        positive, negative = (self.letterbox.points(np.asarray(c, dtype=float).reshape(-1, 2)) for c in (prompt.positive, prompt.negative))
        cut = cut_ignored(decoded.logits.float(), positive, negative, (base[0, 0] > 0).cpu().numpy(), -encodings.HARD_LOGIT)
        return decoded if cut is None else encodings.Decoded(cut, decoded.iou, f"{decoded.how} (cut at the click)")

    def _clicked_changes(self, prompt: FramePrompt, new: torch.Tensor, base: torch.Tensor) -> np.ndarray:
        """Where `new` may replace `base` (model-square pixels): `click_regions.clicked_changes`
        of the prompt's clicks and box in the square."""
        positive, negative = (self.letterbox.points(np.asarray(c, dtype=float).reshape(-1, 2)) for c in (prompt.positive, prompt.negative))
        box = self.letterbox.box(prompt.box) if prompt.box is not None else None
        return clicked_changes((new[0, 0] > 0).cpu().numpy(), (base[0, 0] > 0).cpu().numpy(), positive, negative, box)

    def _heed_clicks(self, prompt: FramePrompt, local: encodings.Decoded, base: torch.Tensor,
                     decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Region clicks without a box that the corrected mask still contradicts (a
        negative click inside it, a positive one outside): LiteMedSAM's ``search`` encoding
        of all the clicks (with boxes around the base's box when the base holds a positive
        click or there is none, `encodings.encode_region`) is taken where the clicks are (the
        same regions as `_clicked_changes`), if that contradicts fewer clicks and its border
        is no weaker (`edge_contrast`).

        Why: SAMUSA-Lite 2 often ignores a correction, on echocardiography (never trained
        on) as on slivers along a breast lesion's border: 88 of CAMUS's 192 corrective
        clicks changed nothing, and the same negative click stayed inside the mask click
        after click. The pretrained box model, given boxes that respect the clicks, moves
        the border there. Its whole mask is worse on breast lesions (region@1 0.79 against
        0.88), so it is taken only around the clicks, and only where the image's contrast
        does not drop. Mean Dice at 1..5 clicks (docs/samusa_lite2.md, "Clicks the model
        ignores are heeded"): CAMUS 0.568 0.576 0.573 0.583 0.579 -> 0.568 0.588 0.589 0.602 0.599;
        BUS-BRA 0.883 0.891 0.907 0.910 0.917 -> 0.883 0.893 0.912 0.915 0.922; carotid
        0.938 0.940 0.951 0.954 0.955 -> 0.938 0.942 0.953 0.956 0.957. Everything involved
        depends on the clicks, not their order. Costs a batch of box decodings only when a
        click is still contradicted."""
        if self.click_heeding == "off" or prompt.box is not None:
            return local
        local_mask = decoder.masks(local.logits[0].float())
        wrong = int(encodings.contradicted(local_mask, prompt.positive, prompt.negative)[0])
        if wrong == 0:
            return local
        search = encodings.encode_region(decoder, prompt.positive, prompt.negative, "search",
                                         previous=self.logits_to_mask(base))
        new = search.logits.float().to(local.logits.device)
        keep = torch.from_numpy(self._clicked_changes(prompt, new, base)).to(new.device)
        heeded = torch.where(keep[None, None], new, local.logits.float())
        heeded_mask = decoder.masks(heeded[0])
        if int(encodings.contradicted(heeded_mask, prompt.positive, prompt.negative)[0]) >= wrong:
            return local
        before, after = self._contrasts(prompt.frame, np.concatenate([local_mask, heeded_mask]))
        if after < before:
            return local
        return encodings.Decoded(heeded, local.iou, f"{local.how} + {search.how} (heeds the clicks)")

    def _referee_region(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Region clicks without a box on a settling model: the model's mask, less the
        pieces no positive click is in, against LiteMedSAM's ``search`` encoding of the
        same clicks. A mask missing every click loses to one holding a click (CAMUS
        myocardium, a ring: region@1 0.125 -> 0.184); else the one whose border has the
        stronger contrast (mean inside against a ring, `shape.edge_contrast`) is kept.

        Why: SAMUSA-Lite 2 never saw echocardiography, and a click in the left atrium
        gives the atrium and the ventricle through the open valve; the pretrained box
        model, given boxes around the click, keeps to one chamber. Neither predicted IoU
        tells which is right (docs/samusa_lite2.md); the image does: the mask whose
        inside differs more from the tissue around it. On breast lesions and the carotid
        lumen the model's own mask usually wins that test. Opt-in (`SAMUSA_LEAK_SOLIDITY`),
        search also wins where the model's mask is less solid (`leaks`): two chambers
        joined through the valve (off by default: `tracking.shape.LEAK_SOLIDITY_ENV`).
        Negative clicks then correct
        the refereed mask of the positive clicks locally (`_local_to_clicks`). Mean Dice
        at 1..5 clicks, model alone (kept local) -> refereed (docs/samusa_lite2.md,
        "Region clicks refereed by the image"): CAMUS 0.470 0.479 0.487 0.504 0.501 ->
        0.568 0.576 0.573 0.583 0.579; BUS-BRA 0.870 0.893 0.903 0.904 0.903 -> 0.883
        0.891 0.907 0.910 0.917; carotid 0.927 0.938 0.947 0.948 0.950 -> 0.938 0.940
        0.951 0.954 0.955. Costs a batch of five box decodings whenever the positive
        clicks change (0.12 s here). Both candidates depend on the clicks alone."""
        if (
            not self.region_referee
            or int(getattr(self.net, "settle_passes", 0) or 0) <= 0
            or not len(prompt.positive)
            or len(prompt.boundary)
            or prompt.box is not None
            or prompt.mask is not None
            or self._local_case(prompt) == "correct"  # negatives correct the refereed base locally
        ):
            return decoded
        positive = np.asarray(prompt.positive, dtype=float).reshape(-1, 2)
        negative = np.asarray(prompt.negative, dtype=float).reshape(-1, 2)
        own = keep_clicked(decoded.logits.float(), self.letterbox.points(positive), -encodings.HARD_LOGIT)
        search = encodings.encode_region(decoder, positive, negative, "search")
        masks = decoder.masks(torch.cat([own[0], search.logits[0].float()]))
        missed = encodings.contradicted(masks, positive, np.zeros((0, 2)))  # a mask missing every click
        if (missed == len(positive)).tolist() == [True, False]:  # is not what they asked for
            return encodings.Decoded(search.logits, search.iou, f"{search.how} (holds a click)")
        own_contrast, search_contrast = self._contrasts(prompt.frame, masks)
        if search_contrast > own_contrast:
            return encodings.Decoded(search.logits, search.iou, f"{search.how} (stronger border)")
        if leaks(masks[0], masks[1], self.leak_solidity):
            return encodings.Decoded(search.logits, search.iou, f"{search.how} (more solid)")
        return encodings.Decoded(own, decoded.iou, decoded.how)

    def _local_case(self, prompt: FramePrompt) -> str | None:
        """What `_local_to_clicks` does with a prompt on a settling model: ``correct``
        (clicks that correct a base: a mask, the box, or the positive clicks), ``seen`` (a
        base shown alone, which later clicks may correct) or None (boundary points, a mask
        alone, ``SAMUSA_LOCAL_CLICKS=free``)."""
        if not self.local_clicks or int(getattr(self.net, "settle_passes", 0) or 0) <= 0 or len(prompt.boundary):
            return None
        positives, negatives = len(prompt.positive), len(prompt.negative)
        if prompt.mask is not None:  # the user's mask, or the propagated one clicks correct
            return "correct" if prompt.box is None and (positives or negatives) else None
        if prompt.box is not None:
            if not getattr(self.net, "pretrained_box", False):
                return None
            return "correct" if positives or negatives else "seen"
        if not positives:
            return None
        return "correct" if negatives else "seen"

    @staticmethod
    def _box_alone(decoder: encodings.FrameDecoder, box) -> encodings.Decoded:
        """LiteMedSAM's own mask for a box."""
        logits, iou = decoder.decode(encodings.clip_boxes(np.asarray(box, dtype=float)[None], decoder.shape))
        return encodings.Decoded(logits[:1][None], float(iou[0]), "box")

    @staticmethod
    def _local_key(prompt: FramePrompt) -> tuple:
        if prompt.box is not None:
            return (prompt.frame, "box", tuple(prompt.box))
        points = np.asarray(prompt.positive, dtype=float).reshape(-1, 2)
        return (prompt.frame, "positive", points[np.lexsort(points.T[::-1])].tobytes())  # the set, not the order

    def _keep_base(self, key: tuple, logits: torch.Tensor) -> None:
        self._local_bases[key] = logits
        self._local_bases.move_to_end(key)
        while len(self._local_bases) > LOCAL_BASES_KEPT:
            self._local_bases.popitem(last=False)

    def _local_base(self, prompt: FramePrompt, decoder: encodings.FrameDecoder) -> torch.Tensor:
        """(1, 1, S, S) logits of the mask the clicks correct (see `_local_to_clicks`)."""
        if prompt.mask is not None:
            if self._shown is not None:  # exactly the propagated mask, not its frame-pixel copy
                return self.low_res_logits(self._shown).float().to(self.device)
            return decoder.hard_logits(prompt.mask).float()
        key = self._local_key(prompt)
        base = self._local_bases.get(key)
        if base is not None:
            self._local_bases.move_to_end(key)
            return base
        if prompt.box is not None:
            base = self._box_alone(decoder, prompt.box).logits.float()
        else:
            positives = FramePrompt(prompt.frame, positive=prompt.positive)
            base = self._referee_region(positives, self._native(positives, None), decoder).logits.float()
        self._keep_base(key, base)
        return base

    def _native_pass(self, prompt: FramePrompt, previous: dict | None) -> encodings.Decoded:
        from .lite import BOUNDARY_LABEL, batch_tokens, boundary_box, prompt_tokens

        xy = np.concatenate([prompt.boundary, prompt.positive, prompt.negative]).reshape(-1, 2)
        labels = [BOUNDARY_LABEL] * len(prompt.boundary) + [1] * len(prompt.positive) + [0] * len(prompt.negative)
        box = self.letterbox.box(prompt.box) if prompt.box is not None else None
        points = self.letterbox.points(xy)
        if getattr(self.net, "boundary_box", False):
            box = boundary_box(points, labels, box)
        coords, kinds = batch_tokens([prompt_tokens(points, labels, box)], self.device)
        masks = None
        if previous is not None and not previous.get("vanished"):
            masks = self.low_res_logits(previous).float().to(self.device)
        elif prompt.mask is not None:
            masks = self.letterbox.mask(prompt.mask, self.device)
        embedding = self.features.get(prompt.frame)
        with torch.inference_mode(), self.model.autocast():
            logits, iou = self.net.decode_tokens(embedding, coords, kinds, masks)
        self.decoder_steps += 1
        return encodings.Decoded(logits.float(), float(iou[0, 0]), "native")

    def _grey(self, frame: int) -> np.ndarray:
        image = self.frames.frame(frame)
        return image.mean(axis=-1) if image.ndim == 3 else image

    def _contrasts(self, frame: int, masks: np.ndarray) -> list[float]:
        """Each candidate mask's border contrast on `frame` (`edge_contrast`): how the
        image referees candidates (region clicks, clicks on a propagated frame, heeding)."""
        grey = self._grey(frame)
        return [edge_contrast(grey, mask) for mask in masks]

    def _decoder(self, frame: int) -> encodings.FrameDecoder:
        return encodings.FrameDecoder(self.net, self.features.get(frame), self.letterbox, self.model.autocast)

    def _result(self, decoded: encodings.Decoded) -> dict:
        mask = self.logits_to_mask(decoded.logits)
        return {"logits": decoded.logits.float(), "iou": decoded.iou, "how": decoded.how, "box": _box_of(mask)}

    def _vanished(self) -> dict:
        empty = torch.full((1, 1, IMAGE_SIZE, IMAGE_SIZE), -encodings.HARD_LOGIT, device=self.device)
        return {"vanished": True, "logits": empty, "iou": 0.0, "how": "vanished", "box": None}

    @staticmethod
    def _last_present(obj: "ObjectState", frame: int, reverse: bool) -> tuple[int, dict | None]:
        step = 1 if reverse else -1
        g = frame + step
        while True:
            out = obj.output(g)
            if out is None:
                return g, None
            if not out.get("vanished"):
                return g, out
            g += step
