"""Two processes that miss the data cache at the same moment (tests/reliability/test_processes.py): each loads the
toy model, waits at a file barrier for the other, then asks data.cached_latents for the same entry.
python cache_race.py CACHE BARRIER ID OUT"""
import sys
import time
from pathlib import Path

from safetensors.torch import save_file

from duge_lora.data import cached_latents
from duge_lora.models import load_base

PROMPTS = ["a red solid oval", "a blue outlined heart", "a green striped square", "a yellow outlined circle"]

if __name__ == "__main__":
    cache, barrier, me, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    base = load_base("toy", "cpu")
    (barrier / me).touch()
    t0 = time.time()
    while len(list(barrier.iterdir())) < 2:
        assert time.time() - t0 < 120, "the other process never came"
        time.sleep(0.01)
    latents, was_cached = cached_latents(base, PROMPTS, 0, "race", [], cache)
    save_file({"latents": latents.contiguous()}, out, metadata={"cached": str(was_cached)})
