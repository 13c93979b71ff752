"""One DUGE optimisation step on the toy model in this rank; rank 0 writes the averaged LoRA gradients.
Run in N ranks by distributed.launch (tests/test_distributed.py): python one_step.py OUT CACHE"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from duge_lora.distributed import current_ranks
from duge_lora.models import load_base
from duge_lora.step import training_step
from duge_lora.train import TrainConfig, prepare
from duge_lora.worlds.toy import TOY


def one_step_grads(ranks, cache: Path) -> list[torch.Tensor]:
    base = load_base("toy", "cpu")
    cfg = TrainConfig(steps=1, batch=4, max_prompts=8, checkpoint_every=0)
    s = prepare(base, TOY.make_request("circle"), [], cfg, cache, None, ranks)
    loss, _ = training_step(s.step, s.gen, (ranks.rank, ranks.world))
    loss.backward()
    ranks.mean_grads(s.params)
    return [p.grad.detach().clone() for p in s.params]


if __name__ == "__main__":
    ranks = current_ranks(torch.device("cpu"))
    grads = one_step_grads(ranks, Path(sys.argv[2]))
    if ranks.is_main:
        save_file({f"g{i}": g.contiguous() for i, g in enumerate(grads)}, sys.argv[1])
    ranks.wait()
