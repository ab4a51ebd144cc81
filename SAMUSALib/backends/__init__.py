"""Model families behind one `Backend` protocol (registry.py), one folder each.

- `sam2/`: SAM 2.1, MedSAM2 and SAMUSA-trained SAM2 checkpoints, driven through
  SAM2's building blocks (`sam2/backend.py`: prompt -> mask; `sam2/loader.py`: weights
  -> model, the configuration inferred from the weights);
- `litemedsam/`: LiteMedSAM and SAMUSA-Lite, an image-only model with its own frame to
  frame tracking (`litemedsam/backend.py`; network, encoder, prompt encodings, deltas).

Importing this package registers every family's backend (with `registry`) and model
loader (with `SAMUSALib.models.registry`). A new family is a new folder whose
`__init__` registers both, plus its import line below.
"""

from . import litemedsam, sam2  # noqa: F401  (each registers itself)
from .registry import Backend, backend_families, make_backend, register_backend

__all__ = ["Backend", "backend_families", "make_backend", "register_backend"]
