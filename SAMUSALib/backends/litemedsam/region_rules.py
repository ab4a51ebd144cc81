"""How a settling model's mask answers region clicks: the rules between decoding the
clicks and showing the mask, mixed into `click_rules.ClickRules` (boundary points).

- `_referee_region`: region clicks, the model against LiteMedSAM's ``search`` encoding;
- `_local_to_positives`: positive clicks after the first add to the mask of the earlier
  ones, unless the model re-reads the same structure;
- `_local_to_clicks`: corrective clicks change the mask they correct only where they are,
  then `_heed_clicks` and `_cut_ignored` answer clicks the mask still contradicts (after a
  box, a negative click cuts a hole).

Every candidate depends on the clicks alone (the positive clicks without a box in their
order, as they are listed), so a prompts file gives the same mask as the same clicks one
by one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np
import torch

from ...prompts import FramePrompt
from ...tracking.shape import leak_solidity_setting, leaks
from . import encodings
from .click_regions import clicked_changes, cut_holes, cut_ignored, keep_clicked
from .switches import switch_setting

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
#: still inside cuts off the mask on its side, or after a box a hole round itself
#: (`_cut_ignored`); ``search``: no cut; ``off``.
CLICK_HEEDING_ENV = "SAMUSA_CLICK_HEEDING"
#: ``on`` (default): positive clicks without a box, after the first, add to the mask of
#: the earlier ones (`_local_to_positives`); ``off``: the model re-draws the structure
#: from all of them. Part of local clicks: `LOCAL_CLICKS_ENV` free turns it off too.
LOCAL_POSITIVES_ENV = "SAMUSA_LOCAL_POSITIVES"
#: ... unless the model's mask of all of them is within this IoU of the mask with the
#: additions: then it re-reads the same structure, and is kept whole.
REDRAW_IOU = 0.9
#: Base masks of `_local_to_clicks`, `_local_to_points` and `_local_to_positives` kept per
#: backend (box, or positive clicks and the runs of them before the last, per frame).
LOCAL_BASES_KEPT = 8


class RegionRules:
    """The region-click rules of `backend.LiteMedSAMBackend` (which supplies ``net``,
    ``letterbox``, ``_native``, ``_contrasts``, ``logits_to_mask``, ``low_res_logits``
    and ``_shown``)."""

    def _read_region_settings(self) -> None:
        self.local_clicks = switch_setting(LOCAL_CLICKS_ENV, "local", ("local", "free")) == "local"
        self.local_positives = switch_setting(LOCAL_POSITIVES_ENV, "on") == "on"  # with local clicks (`_local_case`)
        self.region_referee = switch_setting(REGION_REFEREE_ENV, "on") == "on"
        self.leak_solidity = leak_solidity_setting()
        self.click_heeding = switch_setting(CLICK_HEEDING_ENV, "on", ("on", "search", "off"))
        self._local_bases: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()

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
        not their order (but for the positive clicks' mask, `_local_to_positives`).
        Costs the base's decoding when the box or the positive clicks
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

    def _local_to_positives(self, prompt: FramePrompt, decoded: encodings.Decoded, decoder: encodings.FrameDecoder) -> encodings.Decoded:
        """Positive clicks without a box, after the first: the mask of the clicks before the
        last (`_positives_mask`), plus each connected region the model's mask of all of them
        adds around a positive click (`click_regions.clicked_changes`), unless that
        model's mask is within IoU `REDRAW_IOU` of the result: then it re-reads the same
        structure, and is kept whole.

        Why: a settling model re-draws the whole structure from all the positive clicks.
        On echocardiography (never trained on) a click in a part of the atrium the mask
        missed re-drew it through the valve into the ventricle, or re-drew a ventricle the
        earlier clicks had right: on CAMUS 24 of 118 positive clicks after the first
        lowered Dice by over 0.05 (the worst by 0.56). A positive click asks for what it is
        in to be added. On breast lesions and the carotid lumen, though, the re-drawn
        mask of more clicks fits the border better (always adding lost 0.005 and 0.004 at
        five clicks), and a re-read within the IoU is kept. Mean Dice at 1..5 region clicks (docs/samusa_lite2.md, "Positive clicks
        add to the mask of the earlier ones"): CAMUS 0.607 0.657 0.669 0.676 0.686 ->
        0.607 0.678 0.699 0.717 0.718; carotid 0.938 0.942 0.953 0.956 0.957 -> 0.938
        0.946 0.954 0.956 0.956; BUS-BRA 0.883 0.902 0.912 0.913 0.921 -> 0.883 0.902
        0.912 0.913 0.917. The mask now depends on the order of the positive clicks (the
        first is the base), as one-by-one clicking does; a prompts file lists them in
        order, and gives the same mask as the same clicks one by one. Costs, when a prompt's
        positive clicks come at once, the decoding of each run of them before the last
        (settle passes and the referee's box batch), once: the masks are kept as bases."""
        if not self.local_positives or len(prompt.positive) < 2 or self._local_case(prompt) != "seen":
            return decoded
        positive = np.asarray(prompt.positive, dtype=float).reshape(-1, 2)
        base = self._positives_mask(FramePrompt(prompt.frame, positive=positive[:-1]), decoder)
        new = decoded.logits.float()
        inside, before = ((m[0, 0] > 0).cpu().numpy() for m in (new, base))
        keep = clicked_changes(inside, before, self.letterbox.points(positive), np.zeros((0, 2)))
        added = before | keep
        if (inside & added).sum() >= REDRAW_IOU * (inside | added).sum():
            return decoded  # the same structure, re-read
        merged = torch.where(torch.from_numpy(keep).to(new.device)[None, None], new, base.to(new.device))
        how = "added at the clicks" if keep.any() else "the earlier clicks' mask"
        return encodings.Decoded(merged, decoded.iou, f"{decoded.how} ({how})")

    def _cut_ignored(self, prompt: FramePrompt, decoded: encodings.Decoded, base: torch.Tensor) -> encodings.Decoded:
        """Negative clicks the corrected mask still holds cut off the mask on their side of
        the positive clicks (`click_regions.cut_ignored`), or after a box, where the box
        already says where the structure is, cut a hole around them (`cut_holes`; there
        LiteMedSAM's search is not tried first): a click the user sees ignored is the
        worst answer, and both models can ignore one."""
        if self.click_heeding != "on" or not len(prompt.negative):
            return decoded
        positive, negative = self._square_clicks(prompt)
        if prompt.box is not None:  # the box says where the structure is: a hole, not a side
            cut = cut_holes(decoded.logits.float(), negative, positive, -encodings.HARD_LOGIT)
            return decoded if cut is None else encodings.Decoded(cut, decoded.iou, f"{decoded.how} (hole at the click)")
        cut = cut_ignored(decoded.logits.float(), positive, negative, (base[0, 0] > 0).cpu().numpy(), -encodings.HARD_LOGIT)
        return decoded if cut is None else encodings.Decoded(cut, decoded.iou, f"{decoded.how} (cut at the click)")

    def _square_clicks(self, prompt: FramePrompt) -> tuple[np.ndarray, np.ndarray]:
        """The prompt's positive and negative clicks in the model square, (N, 2) each."""
        return tuple(self.letterbox.points(np.asarray(c, dtype=float).reshape(-1, 2)) for c in (prompt.positive, prompt.negative))

    def _clicked_changes(self, prompt: FramePrompt, new: torch.Tensor, base: torch.Tensor) -> np.ndarray:
        """Where `new` may replace `base` (model-square pixels): `click_regions.clicked_changes`
        of the prompt's clicks and box in the square."""
        positive, negative = self._square_clicks(prompt)
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
        depends on the clicks (the positive ones in order, `_local_to_positives`). Costs a batch of box decodings only when a
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
        """What the local rules (`_local_to_clicks`, `_local_to_positives`,
        `ClickRules._local_to_points`) do with a prompt on a settling model: ``correct``
        (clicks that correct a base: a mask, the box, or the positive clicks), ``seen`` (a
        base shown alone, which later clicks may correct), ``points`` (boundary points that
        correct the box's mask, `ClickRules._local_to_points`) or None (other boundary
        points, a mask alone, ``SAMUSA_LOCAL_CLICKS=free``)."""
        if not self.local_clicks or int(getattr(self.net, "settle_passes", 0) or 0) <= 0:
            return None
        positives, negatives = len(prompt.positive), len(prompt.negative)
        if len(prompt.boundary):
            after_a_box = prompt.box is not None and prompt.mask is None and not positives and not negatives
            return "points" if after_a_box and getattr(self.net, "pretrained_box", False) else None
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

    def _local_key(self, prompt: FramePrompt) -> tuple:
        if prompt.box is not None:
            return (prompt.frame, "box", tuple(prompt.box))
        points = np.asarray(prompt.positive, dtype=float).reshape(-1, 2)
        if self.local_positives:  # the earlier positive clicks are the later ones' base
            return (prompt.frame, "positive, in order", points.tobytes())
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
        if prompt.box is None:
            return self._positives_mask(FramePrompt(prompt.frame, positive=prompt.positive), decoder)
        return self._kept_base(self._local_key(prompt), lambda: self._box_alone(decoder, prompt.box).logits.float())

    def _positives_mask(self, prompt: FramePrompt, decoder: encodings.FrameDecoder) -> torch.Tensor:
        """(1, 1, S, S) logits of positive clicks alone, as a prompt of them gives it."""
        def decode() -> torch.Tensor:
            decoded = self._referee_region(prompt, self._native(prompt, None), decoder)
            return self._local_to_positives(prompt, decoded, decoder).logits.float()

        return self._kept_base(self._local_key(prompt), decode)

    def _kept_base(self, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The base kept under `key`, made (and kept) when it is not."""
        base = self._local_bases.get(key)
        if base is None:
            base = make()
        self._keep_base(key, base)
        return base

