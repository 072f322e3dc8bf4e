"""`library.memory`: free heap pages go back to the system."""

from __future__ import annotations

import ctypes
import ctypes.util

import psutil

from library.memory import release_free_memory

BLOCK = 16 * 1024  # below glibc's mmap threshold: from the heap
BLOCKS = 4096  # 64 MiB


def test_freed_heap_pages_pinned_under_a_live_block_go_back_to_the_system():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)  # resident
    # Free all but the last block: it sits at the heap's top, so glibc cannot shrink the
    # heap on its own, and the 64 MiB below it stays resident until trimmed.
    for block in blocks[:-1]:
        libc.free(block)
    process = psutil.Process()
    before = process.memory_info().rss
    assert release_free_memory() is True
    after = process.memory_info().rss
    libc.free(blocks[-1])
    assert before - after > 32 * 2**20, (before, after)
