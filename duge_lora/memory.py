"""Peak memory of one piece of work (a training request): CUDA's allocator on a GPU, the process's peak RSS on a CPU."""
from __future__ import annotations

from pathlib import Path

import torch


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA's counter; on Linux the process's VmHWM via /proc/self/clear_refs)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                   # not Linux: the peak then covers the whole process


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset_peak_memory: CUDA's max allocated on a GPU, else the process's peak
    resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)            # kB
    except OSError:
        pass
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)   # Linux: KiB
