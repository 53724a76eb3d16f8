"""Memory of the sandboxed children that parse imported files."""

from __future__ import annotations

from pathlib import Path

from app.cases.sandbox import run_limited

FRAME = 16 * 1024 * 1024  # a 2800 x 2800 16-bit frame, about


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def frame_sized_buffers_freed() -> float:
    """In a child: what stays resident after two frame-sized buffers were used and freed,
    one after the other (as the file, the pixels and each encoder's output are)."""
    before = _resident_mb()
    first = bytearray(FRAME)
    first[::4096] = b"x" * len(first[::4096])
    del first
    second = bytearray(FRAME)  # glibc's default: from the heap, where the first one was
    second[::4096] = b"x" * len(second[::4096])
    del second
    return _resident_mb() - before


def test_a_child_gives_frame_sized_buffers_back_to_the_system():
    """Otherwise a child's peak adds up buffers that were never alive together (glibc's
    malloc raises its mmap threshold to each large block freed, and keeps the next ones)."""
    kept = run_limited(frame_sized_buffers_freed, (), timeout=120, memory_bytes=0)
    assert kept < 4, f"{kept:.0f} MB still resident after the buffers were freed"
