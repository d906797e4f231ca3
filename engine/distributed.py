"""What a job of N processes (GPUs, nodes) needs beyond one process: the timeout that turns a
lost or hung process into an error instead of a hang, a plain account of which process was lost,
and a check that every process was started with the same config."""

from datetime import timedelta

import torch.distributed
from accelerate.utils import InitProcessGroupKwargs, gather_object
from omegaconf import OmegaConf

from .errors import ProcessLost
from .resume import flat

# What torch's gloo and NCCL backends say when a peer died (its connection closed) or hung (the
# collective timed out) where they raise a plain RuntimeError rather than a DistError.
COLLECTIVE_FAILURES = ("Connection reset by peer", "Connection closed by peer", "Broken pipe",
                       "Timed out waiting", "NCCL communicator was aborted",
                       "Watchdog caught collective operation timeout")


def process_group_timeout(seconds: float) -> InitProcessGroupKwargs:
    """The process group's timeout: it bounds every collective (gradient all-reduce, metric
    reduction, evaluation gathering, barriers), so a hung process stops the job after `seconds`."""
    return InitProcessGroupKwargs(timeout=timedelta(seconds=seconds))


def is_collective_failure(error: BaseException) -> bool:
    return isinstance(error, torch.distributed.DistError) or (
        isinstance(error, RuntimeError) and any(text in str(error) for text in COLLECTIVE_FAILURES))


def lost_process(error: BaseException, rank: int, world: int, iteration: int, timeout_s: float,
                 kept: str) -> ProcessLost:
    """The one line a surviving process stops with. With two processes the lost one is the
    other; with more, the backend does not say which (the other processes' logs do)."""
    lost = f"process {1 - rank} of 2" if world == 2 else f"another of the {world} processes"
    hung = "timed out" in str(error).lower()
    why = f" (no answer within train.dist_timeout_s={timeout_s:g} s)" if hung else ""
    return ProcessLost(f"{lost} stopped answering at iteration {iteration}{why}; process {rank} "
                       f"stops too. {kept} Run the same command again to resume (on any number of "
                       f"processes that splits train.batch_size).")


def check_same_config(cfg, accelerator) -> None:
    """Every process must train what process 0 trains: a key that differs (one node started with
    another batch size or model) stops every process before the first step, naming the key and
    each process's value."""
    if accelerator.num_processes == 1:
        return
    configs = gather_object([flat(OmegaConf.to_container(cfg, resolve=True))])
    keys = sorted(set().union(*configs))
    differing = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    if differing:
        shown = "; ".join(f"{k}: " + ", ".join(f"{c.get(k)!r} on process {i}" for i, c in enumerate(configs))
                          for k in differing[:5])
        raise ValueError(f"the processes of this job were started with different configs: {shown}; "
                         f"start every node with the same config file and overrides")
