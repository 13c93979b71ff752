"""Peak memory of one piece of work (a training request): CUDA's allocator on a GPU, the process's peak RSS on a CPU."""
from __future__ import annotations

from pathlib import Path

import torch


def release_freed_memory() -> None:
    """Collect garbage and hand the C allocator's freed pages back to the system (glibc's malloc_trim), so a
    process that runs many requests (the bench's chains) starts each at the memory it really holds, not at the
    high-water mark of what earlier requests freed. A no-op where there is no glibc."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA's counter; on Linux the process's VmHWM via /proc/self/clear_refs,
    after release_freed_memory, so the window starts from what the process holds)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    release_freed_memory()
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


MAX_GEN_BATCH = 64              # images per pipeline call at most (the toy model fits 64 easily)
GEN_MEMORY_SHARE = 0.5          # share of the free memory a generation batch may use


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory where generation runs: CUDA's free device memory, else the machine's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def image_cost_bytes(unet, vae_scale_factor: int, dtype_bytes: int) -> int:
    """A conservative estimate of the activation memory of one generated image: two UNet passes (classifier-free
    guidance) holding ~64 feature maps of the first block's width at the latent size, plus the VAE decoder at full
    resolution (~6 maps of 256 channels at its widest stage). SD 1.5 at 512 px in fp16: ~0.13 GB; the toy: ~0.5 MB."""
    side = unet.config.sample_size
    unet_bytes = 2 * 64 * side * side * unet.config.block_out_channels[0] * dtype_bytes
    pixels = (side * vae_scale_factor) ** 2
    return int(unet_bytes + 6 * 256 * pixels * dtype_bytes)


def generation_batch(pipe, device: torch.device, override: int | None = None) -> int:
    """Images per pipeline call: `override` when given, else as many as fit in GEN_MEMORY_SHARE of the free memory
    (image_cost_bytes each), between 1 and MAX_GEN_BATCH."""
    if override:
        return int(override)
    free = free_memory_bytes(device)
    if free is None:
        return 8
    cost = image_cost_bytes(pipe.unet, pipe.vae_scale_factor, pipe.unet.dtype.itemsize)
    return max(1, min(MAX_GEN_BATCH, int(free * GEN_MEMORY_SHARE // max(cost, 1))))
