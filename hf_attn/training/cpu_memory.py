"""Keep freed memory inside the process on Linux, so CPU training stops page-faulting its big tensors in every step.

glibc gives every freed block above its mmap threshold (32 MB at most by default) back to
the OS. A (tokens × vocabulary) logits tensor, its log-probabilities and their gradients are
such blocks, so each training step maps them afresh and pays a page fault per 4 KiB page
first touched. Raising the mmap and trim thresholds keeps freed blocks for reuse. On the
benchmark batches (1 thread) this made a small Transformer's training step 5 % faster and
the RNN's 9 %, with about the same peak memory (``docs/benchmarks.md`` has the numbers).
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 2**30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process; False where that is not possible.

    Process-wide and irreversible, so the training loop calls it only for CPU runs whose
    config asks for it (``keep_freed_memory``, on by default).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
