"""The `Backend` protocol and the family -> backend table the engine looks models up in.

Each family's package registers its factory here (`register_backend`); the engine asks
`make_backend(frames, model)` and never names a family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import PromptError

if TYPE_CHECKING:
    from ..frames import FrameSource
    from ..prompts import FramePrompt
    from ..state import ObjectState


class Backend(Protocol):
    """What `engine.Session` calls: one object on one frame at a time.

    `prompt` segments a prompted frame, `track` carries the object to `frame` from its
    results (the state's memory); both return an opaque output dict kept in the state,
    read back through `low_res_logits` and turned into an (H, W) mask by `logits_to_mask`.
    An output with ``"vanished": True`` says an image-only model lost the object.
    `features` is the image-feature cache (its `stats` count encoder calls).
    """

    features: Any

    def prompt(self, obj: "ObjectState", prompt: "FramePrompt", *, is_init: bool, previous: dict | None) -> dict: ...

    def track(self, obj: "ObjectState", frame: int, *, reverse: bool) -> dict: ...

    def low_res_logits(self, out: dict) -> Any: ...

    def logits_to_mask(self, low_res: Any) -> Any: ...


BackendFactory = Callable[["FrameSource", Any, "int | None"], Backend]
"""factory(frames, loaded_model, feature_cache_mb) -> Backend."""

_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(family: str, factory: BackendFactory) -> None:
    """Called by a family's package when it is imported."""
    _BACKENDS[family] = factory


def backend_families() -> list[str]:
    return sorted(_BACKENDS)


def make_backend(frames: "FrameSource", model, feature_cache_mb: int | None = None) -> Backend:
    """The backend of a loaded model's family (`model.spec.family`)."""
    family = model.spec.family
    try:
        factory = _BACKENDS[family]
    except KeyError:
        raise PromptError(
            f"no session backend for models of family {family!r}; known families: {', '.join(backend_families()) or 'none'}"
        ) from None
    return factory(frames, model, feature_cache_mb)
