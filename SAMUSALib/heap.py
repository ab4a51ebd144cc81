"""Give freed memory back to the operating system during long propagations.

Each propagated frame allocates and frees tens of megabytes of intermediates between
the small tensors the session keeps (cached features, memories, masks). glibc's
allocator leaves the freed space inside its heap, split by the kept tensors, so the
process's resident memory grows by about 0.3 MB a frame beyond what is actually kept
(measured: 300 frames of 480x640, test-tiny, 369 MB above the model without trimming,
313 MB with a trim every 16 frames, at no measurable cost in time). `malloc_trim`
returns those free pages; elsewhere (macOS, Windows, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

#: Frames between two trims during propagation (one trim costs well under a millisecond).
TRIM_EVERY = 16


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the OS; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
