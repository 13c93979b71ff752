"""Compose speed on an SD-1.5-sized UNet (random weights, built here; nothing downloaded).

Measures, side by side in one run: (a) loading and saving the base UNet state dict alone (safetensors),
(b) `compose` of N rank-4 adapters on attn2.to_k/to_v (sum, unet format), which does (a) plus the merge.
Usage: .venv/bin/python scripts/bench_compose.py [--adapters 10] [--repeats 2] [--device auto] [--base-dtype fp16|fp32]
       [--settle 3] [--dir /dev/shm]
(SD 1.5's own UNet weights are published in fp32 and in fp16; --base-dtype picks how the random base is stored.)
Between jobs the script syncs the disk, deletes the previous job's output and waits --settle seconds, so no job pays
for the previous one's write-back or memory.
--dir puts the files elsewhere (default: the system's temp folder); a tmpfs such as /dev/shm takes the disk out
of the measurement, leaving what compose itself adds to reading and writing the weights.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from duge_lora.adapter import LoraSpec
from duge_lora.compose import Item, compose, write_output
from duge_lora.formats import write_adapter_folder
from duge_lora.records import resolve_adapter
from duge_lora.models import pick_device

SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--base-dtype", choices=("fp16", "fp32"), default="fp16")
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--dir", default=None, help="where to write the base, adapters and outputs (default: the temp folder)")
    args = ap.parse_args()
    from diffusers import UNet2DConditionModel

    dev = pick_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-compose-", dir=args.dir))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).to(torch.float16 if args.base_dtype == "fp16" else torch.float32)
    (tmp / "base" / "unet").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(tmp / "base/unet/diffusion_pytorch_model.safetensors"))
    spec = LoraSpec(rank=4, alpha=4.0)
    mods = {n: m for n, m in unet.named_modules() if n.endswith(("attn2.to_k", "attn2.to_v"))}
    params = sum(p.numel() for p in unet.parameters())
    del unet
    for i in range(args.adapters):
        g = torch.Generator().manual_seed(i)
        w = {n: (torch.randn(4, m.in_features, generator=g) * 0.01, torch.randn(m.out_features, 4, generator=g) * 0.01) for n, m in mods.items()}
        write_adapter_folder(tmp / f"a{i}", w, spec, {"request": {"concept": f"c{i}"}, "base": {"fingerprint": "sd15-random"}}, "")
    src = tmp / "base/unet/diffusion_pytorch_model.safetensors"
    def synced(path: Path) -> None:        # count the write to disk, not just to the page cache
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    times = {"load_save": [], "compose": []}
    for r in range(args.repeats):
        for job in (("load_save", "compose") if r % 2 else ("compose", "load_save")):   # alternate the order
            os.sync()
            time.sleep(args.settle)
            t = time.perf_counter()
            if job == "load_save":
                save_file(load_file(str(src)), str(tmp / f"copy{r}.safetensors"))
                synced(tmp / f"copy{r}.safetensors")
            else:
                items = [Item(resolve_adapter(tmp / f"a{i}")) for i in range(args.adapters)]
                write_output(compose(items, "sum", "unet", device=dev), str(tmp / "base"), tmp / f"merged{r}.safetensors")
                synced(tmp / f"merged{r}.safetensors")
            times[job].append(time.perf_counter() - t)
            # delete the output at once: a 1.7-3.4 GB file left in the page cache (or in tmpfs) made whichever job
            # ran second 3-4x slower in earlier runs of this script
            (tmp / (f"copy{r}.safetensors" if job == "load_save" else f"merged{r}.safetensors")).unlink()
    best = {k: statistics.median(v) for k, v in times.items()}
    import shutil
    shutil.rmtree(tmp)
    print(json.dumps({"unet_parameters": params, "dir": str(tmp.parent), "base_dtype": args.base_dtype, "settle_s": args.settle, "adapters": args.adapters, "modules_per_adapter": len(mods),
                      "device": str(dev), "seconds": times, "median": best, "ratio_of_medians": best["compose"] / best["load_save"],
                      "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
                      "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=1))


if __name__ == "__main__":
    main()
