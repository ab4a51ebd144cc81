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
from . import encodings
from .click_rules import ClickRules
from .network import IMAGE_SIZE, Letterbox
from .square import LetterboxSquare

if TYPE_CHECKING:
    from ...state import ObjectState
    from .lite import Heads

BOUNDARY_ENV = "SAMUSA_LITEMEDSAM_BOUNDARY"
REGION_ENV = "SAMUSA_LITEMEDSAM_REGION"
#: Propagation design: "legacy" (the grown-box tracker below) or one of
#: `SAMUSALib.tracking.DESIGNS`; overrides the model's own (`ModelSpec.tracker`, else
#: `tracking.DEFAULT_DESIGN`; docs/tracking.md).
TRACKER_ENV = "SAMUSA_TRACKER"

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


class LiteMedSAMBackend(ClickRules):
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
        self._read_click_settings()
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

    def _native(self, prompt: FramePrompt, previous: dict | None, derive_box: bool | None = None) -> encodings.Decoded:
        """SAMUSA-Lite: every point with its own label (boundary 4, positive 1, negative 0),
        the box, and a mask prompt, as it was trained (`SAMUSALib.training.lite`).

        SAMUSA-Lite 1 takes the frame's previous logits as the mask prompt, so its mask
        depends on the order the clicks came in. A model trained to settle
        (``settle_passes`` = n > 0, SAMUSA-Lite 2) ignores the history: the frame's clicks
        are decoded without a mask prompt (or with the user's mask), then n - 1 more times
        with the last pass's logits. The mask is then a function of the clicks alone, the
        same from a prompts file, a markups node or the same clicks one by one in any order.
        `derive_box`: give boundary points their extent as a box (None: as the heads that
        read the prompt were trained, `Heads.boundary_box`)."""
        passes = int(getattr(self.net, "settle_passes", 0) or 0)
        if passes <= 0:
            return self._native_pass(prompt, previous, derive_box)
        decoded = self._native_pass(prompt, None, derive_box)
        for _ in range(passes - 1):
            decoded = self._native_pass(prompt, {"logits": decoded.logits}, derive_box)
        return decoded

    def _native_clicks(self, prompt: FramePrompt, previous: dict | None, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Clicks, boundary points or a box the model reads natively: decoded, arbitrated
        (boundary points), refereed (region clicks), added to (positive clicks after the
        first) and kept local (corrections).

        Clicks on a propagated frame correct the mask it showed (`_local_to_clicks`), which
        is what a click on a nearly right mask asks for. When the propagated mask is on the
        wrong structure, though, the corrections would have to undo it piece by piece: so
        the same clicks decoded alone compete, and the mask with the stronger border wins
        (as in `_referee_region`). Bundled carotid loop, a box one lumen-height off the
        lumen, propagated (Dice 0 on frame 4), then a positive click on the lumen and a
        negative one on the wrong mask: 0.942 against 0.000 and 0.732 kept local; one
        click on each correctly tracked frame: unchanged (docs/tracking.md). Negative
        clicks alone mark no structure, so they only correct (half the decoder passes)."""
        decoded = self._local_to_points(prompt, self._boundary_points(prompt, previous, decoder), decoder)
        decoded = self._local_to_positives(prompt, self._referee_region(prompt, decoded, decoder), decoder)
        decoded = self._local_to_clicks(prompt, decoded, decoder)
        # negative clicks alone mark no structure to compete with
        if self._shown is None or prompt.mask is None or not len(prompt.positive) or self._local_case(prompt) != "correct":
            return decoded
        alone = self._native_clicks(FramePrompt(prompt.frame, positive=prompt.positive, negative=prompt.negative), None, decoder)
        corrected, own = self._contrasts(prompt.frame, decoder.masks(torch.cat([decoded.logits[0].float(), alone.logits[0].float()])))
        if own > corrected:
            return encodings.Decoded(alone.logits, alone.iou, f"{alone.how} (clicks alone: stronger border)")
        return decoded

    def _heads(self, prompt: FramePrompt) -> "Heads":
        """The heads that read `prompt` (`SAMUSALite.heads`): boundary points given alone,
        with no clicks and no box, go to the boundary heads where the model has them."""
        alone = self.use_boundary_heads and len(prompt.boundary) and not len(prompt.positive) and not len(prompt.negative)
        return self.net.heads(bool(alone and prompt.box is None))

    def _native_pass(self, prompt: FramePrompt, previous: dict | None, derive_box: bool | None = None) -> encodings.Decoded:
        from .lite import BOUNDARY_LABEL, batch_tokens, boundary_box, prompt_tokens

        xy = np.concatenate([prompt.boundary, prompt.positive, prompt.negative]).reshape(-1, 2)
        labels = [BOUNDARY_LABEL] * len(prompt.boundary) + [1] * len(prompt.positive) + [0] * len(prompt.negative)
        box = self.letterbox.box(prompt.box) if prompt.box is not None else None
        points = self.letterbox.points(xy)
        heads = self._heads(prompt)
        if heads.boundary_box if derive_box is None else derive_box:
            box = boundary_box(points, labels, box)
        coords, kinds = batch_tokens([prompt_tokens(points, labels, box)], self.device)
        masks = None
        if previous is not None and not previous.get("vanished"):
            masks = self.low_res_logits(previous).float().to(self.device)
        elif prompt.mask is not None:
            masks = self.letterbox.mask(prompt.mask, self.device)
        embedding = self.features.get(prompt.frame)
        with torch.inference_mode(), self.model.autocast():
            logits, iou = self.net.decode_tokens(embedding, coords, kinds, masks, heads=heads)
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
