"""Host memory: keep the memory a CPU step frees inside the process for the next step.

A training step on the CPU allocates and frees dozens of tensors of a few MiB. glibc's ``malloc``
serves large blocks with fresh ``mmap`` pages and gives freed memory at the top of its heap back
to the kernel, so each step touches new pages, and the kernel zero-fills every page on its first
touch: element-wise ops then spend most of their time in page faults. Retaining the memory makes
CPU steps faster and steadier (measured in ``benchmarks/results/``).

PyTorch's CPU performance guide answers this with jemalloc or TCMalloc through ``LD_PRELOAD``,
which must be set before Python starts. glibc's own ``mallopt`` does the same from inside the
process: blocks below ``mmap_threshold`` come from the heap, and up to ``trim_threshold`` bytes
of freed heap stay mapped, so steady-state steps reuse pages that are already there. The cost is
that a process keeps up to ``trim_threshold`` of freed memory until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

# glibc <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger values on 64-bit systems


def retain_freed_memory(mmap_threshold: int = MMAP_THRESHOLD_MAX,
                        trim_threshold: int = 1 << 30) -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse (process-wide; see the module doc).

    Args:
        mmap_threshold: blocks of at least this many bytes still get their own ``mmap``
            (at most 32 MiB, glibc's limit on 64-bit systems).
        trim_threshold: freed memory at the top of the heap is returned to the kernel only
            beyond this many bytes.

    Returns:
        True when both settings took effect; False where the C library is not glibc (macOS,
        musl), which then keeps its own behaviour.
    """
    if not 0 < mmap_threshold <= MMAP_THRESHOLD_MAX:
        raise ValueError(f"mmap_threshold must be in (0, {MMAP_THRESHOLD_MAX}], got {mmap_threshold}")
    if not 0 < trim_threshold < 2**31:
        raise ValueError(f"trim_threshold must be in (0, 2**31), got {trim_threshold}")
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 when glibc rejects the value
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
                and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))


def retain_on_cpu(device: torch.device, enabled: bool) -> bool:
    """:func:`retain_freed_memory` for a run on ``device`` when ``enabled``
    (``train.retain_host_memory``); GPU runs keep the allocator as it comes. True when applied."""
    return enabled and device.type == "cpu" and retain_freed_memory()


def _glibc() -> ctypes.CDLL | None:
    """The running glibc, or None on other C libraries."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # gnu_get_libc_version exists in glibc only (musl has mallopt as a no-op stub)
    return libc if hasattr(libc, "gnu_get_libc_version") else None
