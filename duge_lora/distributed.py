"""Data-parallel training on accelerate: one request trained by N processes (gloo on a CPU, NCCL on GPUs).

Every rank holds the same UNet, data and settings. Each step draws the global batch with the shared generator
(so the data order, noise and timesteps do not depend on N), every rank takes its own rows of each segment
(shard_rows), computes the loss on them, and the LoRA gradients are averaged over the ranks before the optimiser
step: with equal shards the average of the ranks' mean losses is the mean loss of the global batch, so N
processes take exactly the step one process would (up to float summation order; tests/test_distributed.py).
Rank 0 alone makes the data set first (the others wait, then read it from the cache), reports progress, keeps
checkpoints and writes the adapter; a checkpoint resumes with any N. launch() starts the ranks with torch's
launcher (`python -m torch.distributed.run`), whose ranks accelerate's `Accelerator` picks up; `accelerate
launch` works too.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .errors import PEER_LOST, DugeError, PeerLost, UsageError, param

CHILD_ENV = "DUGE_LORA_RANK_CHILD"        # set by launch() in every rank it starts


@dataclass
class Ranks:
    """This process's place among the ranks of a data-parallel run (one rank: no accelerate at all)."""
    rank: int = 0
    world: int = 1
    accelerator: object | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wait(self) -> None:
        if self.accelerator is not None:
            with peer_check():
                self.accelerator.wait_for_everyone()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (it makes and caches the data), then the others (they read the cache)."""
        if self.accelerator is None:
            yield
            return
        if not self.is_main:
            self.wait()
        yield
        if self.is_main:
            self.wait()

    def mean_grads(self, params: list[torch.Tensor]) -> None:
        """Average the parameters' gradients over the ranks (one flat all-reduce)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        with peer_check():
            dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
            offset += g.numel()

    def mean_values(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over the ranks of each logged loss term (what one process over the global batch logs)."""
        if self.world == 1 or not values:
            return values
        import torch.distributed as dist

        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        with peer_check():
            dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t)}


@contextmanager
def peer_check():
    """A collective that fails because another rank is gone (its connection closed: killed, out of memory, failed)
    becomes PeerLost: this rank stops too, with one sentence (or none under launch(), whose parent speaks)."""
    try:
        yield
    except RuntimeError as exc:          # torch.distributed's DistBackendError/DistNetworkError are RuntimeErrors
        raise PeerLost("Another process of this data-parallel run stopped, so this one stopped too; no adapter was "
                       "written.", "Rerun the same command to resume from the last checkpoint.") from exc


def current_ranks(device: torch.device) -> Ranks:
    """The ranks this process belongs to: from the launcher's environment (WORLD_SIZE > 1) through accelerate's
    Accelerator (which sets up the process group: gloo on a CPU, NCCL on GPUs), else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    from accelerate import Accelerator

    acc = Accelerator(cpu=device.type == "cpu")
    return Ranks(acc.process_index, acc.num_processes, acc)


def shard_rows(seg: dict[str, slice], rank: int, world: int) -> tuple[list[int], dict[str, slice]]:
    """Rank `rank`'s rows of a batch of concatenated segments (every world-th row of each segment), and the
    segments' slices in the shard."""
    rows, out, start = [], {}, 0
    for name, s in seg.items():
        mine = list(range(s.start + rank, s.stop, world))
        rows += mine
        out[name] = slice(start, start + len(mine))
        start += len(mine)
    return rows, out


def check_processes(n: int, batch: int, device: torch.device) -> None:
    """--num-processes within what the machine has (its cores, or its GPUs), and dividing the batch evenly."""
    have = torch.cuda.device_count() if device.type == "cuda" else (os.cpu_count() or 1)
    what = "GPUs" if device.type == "cuda" else "CPU cores"
    if n < 1:
        raise UsageError(f"{param('num_processes')} {n} must be at least 1.", "Pass 1 or more.", option="num_processes")
    if n > have:
        raise UsageError(f"{param('num_processes')} {n} is more than the {have} {what} of this machine.",
                         f"Pass at most {have}.", option="num_processes")
    if batch % n:
        raise UsageError(f"{param('batch')} {batch} does not split evenly over {n} processes, so the ranks' mean losses "
                         "would not average to the global batch's.", f"Pass a {param('batch')} that is a multiple of {n}.",
                         option="batch")


def thread_share(n: int) -> int:
    """Each of n processes' share of this machine's cores (at least one thread)."""
    return max(1, (os.cpu_count() or 1) // n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(argv: list[str], n: int, entry: tuple[str, ...] = ("-m", "duge_lora_cli.main"),
                quiet_all: bool = False, omp_threads: bool = True) -> list:
    """Start `python ENTRY ARGV` as n ranks on this machine, with the environment torch's launcher (torchrun, static
    rendezvous) gives each rank: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; accelerate's Accelerator
    and PartialState read it. Rank 0 prints (unless quiet_all); the others are quiet. omp_threads: set
    OMP_NUM_THREADS to each rank's share of the cores (unless set already); the bench's ranks set their torch
    threads themselves, as its process pool did, which keeps their results those of one process to the last digit."""
    port = free_port()
    procs: list = []
    for rank in range(n):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n),
                   GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{CHILD_ENV: "1"})
        if omp_threads:
            env.setdefault("OMP_NUM_THREADS", str(thread_share(n)))
        quiet = {} if rank == 0 and not quiet_all else {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        try:
            procs.append(subprocess.Popen([sys.executable, *entry, *argv], env=env, **quiet))
        except OSError as exc:
            for p in procs:
                p.kill()
            raise DugeError(f"Could not start {n} processes ({exc}).", f"Run with {param('num_processes')} 1.") from exc
    return procs


def wait_ranks(procs: list, tick=None, grace: float = 0.0) -> tuple[int, int]:
    """Wait for every rank (calling tick() about 5 times a second). Returns (-1, 0) when all succeeded, else (rank,
    exit code) of the rank that failed first on its own (a rank that only lost a peer, PEER_LOST, is not the
    cause), after stopping the others: they get `grace` seconds to stop by themselves (a data-parallel rank notices
    a lost peer at its next collective), then are terminated, then killed after 10 s. Ctrl-C (or SIGTERM turned into
    it) reaches every rank, then re-raises."""
    import signal
    import time

    try:
        while True:
            if tick is not None:
                tick()
            codes = [p.poll() for p in procs]
            if any(c not in (None, 0) for c in codes) or all(c == 0 for c in codes):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        _reap(procs, terminate=False)       # each rank stops at its step boundary and keeps its checkpoint
        raise
    if all(c == 0 for c in codes):
        return -1, 0
    t0 = time.time()
    while time.time() - t0 < grace and any(p.poll() is None for p in procs):
        time.sleep(0.1)
    own = [p.poll() for p in procs]          # how each rank ended before any was stopped here
    _reap(procs)
    failed = [(r, c) for r, c in enumerate(own) if c not in (None, 0)]
    return next(((r, c) for r, c in failed if c != PEER_LOST), failed[0])


def _reap(procs: list, terminate: bool = True) -> None:
    for p in procs:
        if terminate and p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def how_it_ended(code: int) -> str:
    """'was killed by SIGKILL' or 'exited with code 4': how a process ended, from its exit code."""
    import signal

    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class RankFailed(DugeError):
    """A rank of launch() stopped without saying why itself (killed, or a quiet rank other than 0 failed)."""

    def __init__(self, rank: int, world: int, code: int, hint: str = ""):
        super().__init__(f"Process {rank} of {world} of this data-parallel run {how_it_ended(code)}, so the others were "
                         "stopped and no adapter was written.", hint or "Rerun the same command to resume.")
        self.rank, self.world, self.process_code = rank, world, code


def launch(argv: list[str], n: int, entry: tuple[str, ...] = ("-m", "duge_lora_cli.main")) -> int:
    """Run `duge-lora ARGV` (or `python ENTRY ARGV`) as n ranks and wait for them (start_ranks, wait_ranks).

    Returns 0, or rank 0's exit code when rank 0 failed and said why (its one sentence is on the terminal); raises
    RankFailed when a rank stopped without a word of its own (killed, or a quiet rank other than 0 failed). The
    ranks it starts stay silent about a lost peer (PeerLost under CHILD_ENV): this process speaks for them."""
    rank, code = wait_ranks(start_ranks(argv, n, entry), grace=10.0)
    if code == 0:
        return 0
    if rank == 0 and code > 0:
        return code
    raise RankFailed(rank, n, code)
