"""The tracker's `SquareModel` (`SAMUSALib.tracking.tracker`) for a LiteMedSAM-family
backend: its letterboxed square, cached grey frames and one batched decoder call for all
of a frame's candidates.

It lives with the backend because it speaks the family's prompt tokens; the tracking
package sees only the `SquareModel` interface. It reads the backend's `net`,
`letterbox`, `features` (embedding cache), `frames` and `model.autocast`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch

from .lite import batch_tokens, prompt_tokens


class LetterboxSquare:
    """The tracker's view of a LiteMedSAM / SAMUSA-Lite backend (see `tracker.SquareModel`)."""

    def __init__(self, backend, keep: int = 4) -> None:
        self.backend = backend
        self.size = backend.letterbox.size
        self.valid = backend.letterbox.inner
        self._grey: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._keep = keep
        self.decoder_calls = 0
        self._view: tuple[np.ndarray | None, np.ndarray | None] | None = None

    def view(self) -> np.ndarray | None:
        """(S, S) bool: the probe's field of view in the square (`view.field_of_view`, read
        once from frames spread over the loop); None: the whole frame."""
        return self._views()[0]

    def frame_view(self) -> np.ndarray | None:
        """The same over the frame, (H, W) bool; None: the whole frame."""
        return self._views()[1]

    def _views(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self._view is None:
            from ...tracking.view import field_of_view, sample_frames

            frames = self.backend.frames
            found = field_of_view([frames.frame(i) for i in sample_frames(frames.num_frames)])
            square = None
            if found is not None:
                with torch.inference_mode():
                    square = (self.backend.letterbox.mask(found)[0, 0] > 0).numpy()
            self._view = (square, found)
        return self._view

    def embedding(self, frame: int) -> torch.Tensor:
        return self.backend.features.get(frame)

    def grey(self, frame: int) -> np.ndarray:
        """The frame as the model sees it, one channel: (S, S) float in [0, 1]."""
        if frame in self._grey:
            self._grey.move_to_end(frame)
            return self._grey[frame]
        with torch.inference_mode():
            image = self.backend.letterbox.image(self.backend.frames.frame(frame))[0].mean(0).numpy()
        self._grey[frame] = image
        while len(self._grey) > self._keep:
            self._grey.popitem(last=False)
        return image

    def decode_batch(self, frame: int, prompts: Sequence[tuple]) -> tuple[torch.Tensor, np.ndarray]:
        net = self.backend.net
        device = self.backend.device
        embedding = self.embedding(frame)
        fill = -8.0
        masks = [m if m is not None else torch.full((1, 1, self.size, self.size), fill) for _, _, _, m in prompts]
        mask_t = torch.cat(masks).to(device).float()
        use = torch.tensor([m is not None for _, _, _, m in prompts], device=device)
        with torch.inference_mode(), self.backend.model.autocast():
            if getattr(net, "boundary_native", False):
                coords, kinds = batch_tokens([prompt_tokens(p, l, b) for p, l, b, _ in prompts], device)
                logits, iou = net.decode_tokens(embedding, coords, kinds, mask_t, use_mask=use)
            else:  # the pretrained box model: boxes and masks only
                boxes = [b if b is not None else np.array([0, 0, self.valid[1], self.valid[0]], float) for _, _, b, _ in prompts]
                box_t = torch.as_tensor(np.stack(boxes), dtype=torch.float32, device=device)
                logits, iou = net.decode(embedding, boxes=box_t, masks=mask_t if bool(use.all()) else None)
        self.decoder_calls += 1
        self.backend.decoder_steps += 1
        return logits.float(), iou.float().reshape(-1).cpu().numpy()

