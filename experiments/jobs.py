"""Jobs of one invocation: training runs several at a time (`run_jobs`: the demo's, the depth
study's, the config sweep's), and commands in interpreters of their own under a time budget
(`run_command`: the GPU check's stages). On a 2-core CPU two 1-thread processes train a third
more images per second than one 2-thread process (docs/benchmarks.md), and a run that waits for
another's weights starts as soon as they are saved.

Each job runs in a worker process (spawned once, the library imported once per worker), its
output in its own log file; one bar follows them all. Ctrl-C or SIGTERM reaches the running jobs
as SIGTERM: each trainer saves its checkpoint, and `run_jobs` raises KeyboardInterrupt once all
have, so that the same command continues from there. The workers are spawned: a script that calls
`run_jobs` needs the `if __name__ == "__main__":` guard (tools/demo.py has it).
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.logs import ProgressBar, show_messages


@dataclass
class Job:
    title: str
    action: Callable[[], object]  # picklable: a module-level function (functools.partial)
    log: Path  # the job's stdout and stderr
    after: tuple[str, ...] = ()  # titles of the jobs whose results it needs
    progress: Callable[[], float] = field(default=lambda: 0.0)  # 0..1, read by this process


def worker_threads(workers: int) -> int:
    """CPU threads per worker: the cores shared out (a GPU run leaves torch's default)."""
    return max(1, (os.cpu_count() or workers) // workers)


def run_jobs(jobs: list[Job], workers: int, on_done: Callable[[Job, float], None],
             keep_going: bool = False) -> list[Job]:
    """Run `jobs` in dependency order, `workers` at a time, a job others wait for before one
    nobody does (else in the given order); `on_done(job, seconds)` after each. A failed job stops
    the others (they save) and its error is raised here, naming its log; with `keep_going`, it is
    reported, the jobs that need it are dropped, the rest run, and the failed ones are returned."""
    if workers < 1:
        raise ValueError(f"jobs: at least 1 training run at a time, not {workers}")
    if not jobs:
        return []
    titles = {job.title for job in jobs}
    pending, running, finished, failed = list(jobs), {}, set(), []
    threads = worker_threads(workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(threads, multiprocessing.get_start_method()))
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    bar = ProgressBar(total=100 * len(jobs), desc="training runs (%)", dynamic_ncols=True)
    try:
        while pending or running:
            ready = [j for j in pending if all(a in finished or a not in titles for a in j.after)]
            ready.sort(key=lambda j: not any(j.title in other.after for other in pending))
            for job in ready[:workers - len(running)]:
                pending.remove(job)
                ProgressBar.write(f"started: {job.title} (log: {job.log})")
                running[pool.submit(_logged, job.action, job.log)] = (job, time.perf_counter())
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                job, start = running.pop(future)
                error = future.exception()
                if isinstance(error, KeyboardInterrupt):  # its trainer saved on a signal
                    raise KeyboardInterrupt(f"{job.title}: {error}")
                if error is not None and not keep_going:
                    raise RuntimeError(f"{job.title} failed: see {job.log}") from error
                if error is not None:
                    ProgressBar.write(f"{job.title} failed ({type(error).__name__}: {error}): see {job.log}")
                    failed += [job] + _drop_dependents(pending, job.title)
                    continue
                finished.add(job.title)
                on_done(job, time.perf_counter() - start)
            done_pct = round(100 * (len(finished) + sum(j.progress() for j, _ in running.values())))
            bar.update(done_pct - bar.n)  # redrawn as the bar's own interval allows (a log: 30 s)
    except BaseException:
        _stop(pool, running)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    return failed


def _drop_dependents(pending: list[Job], title: str) -> list[Job]:
    """Remove from `pending` the jobs that need `title`'s results, directly or not."""
    dropped = [j for j in pending if title in j.after]
    for job in dropped:
        pending.remove(job)
    for job in list(dropped):
        dropped += _drop_dependents(pending, job.title)
    return dropped


def _stop(pool, running: dict) -> None:
    """Ask the running jobs to save and stop (SIGTERM), and wait until they have."""
    for process in multiprocessing.active_children():
        os.kill(process.pid, signal.SIGTERM)
    for future in list(running):
        try:
            future.result()
        except BaseException:  # noqa: B036 - StopRequested, or the job's own error: both logged
            pass


class _Terminated(KeyboardInterrupt):
    pass


def _raise_terminated(signum, frame):
    raise _Terminated("terminated")


GRACE_S = 15  # after SIGTERM, before SIGKILL: time for a training run to save its checkpoint


def run_command(command: list[str], log: Path, *, budget_s: float | None = None, env=None, cwd=None,
                grace_s: float = GRACE_S) -> str:
    """`command` in an interpreter of its own (its own process group), its output written to
    `log`, within `budget_s` seconds: past it (or on Ctrl-C here), SIGTERM to its whole group (a
    training run saves), SIGKILL `grace_s` later. Returns "passed", "failed" or "over budget"."""
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                   start_new_session=True)
        try:
            return "passed" if process.wait(timeout=budget_s) == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop_group(process, grace_s)
            return "over budget"
        except BaseException:
            _stop_group(process, grace_s)
            raise


def _stop_group(process: subprocess.Popen, grace_s: float) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _start_worker(threads: int, start_method: str) -> None:
    """Signals reach a worker's job through its trainer (which saves); between jobs they wait
    for the pool's shutdown. The toolkit's messages go to the job's log, as a tool shows them.
    A spawned process defaults to spawning its own children: its jobs' loader workers start as
    they would from the command line instead (fork on Linux; spawned, each re-imported torch:
    a shipped ImageNet config's 8 workers took 35 s for two batches and two images, 4 s forked)."""
    multiprocessing.set_start_method(start_method, force=True)
    show_messages()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not torch.cuda.is_available():
        torch.set_num_threads(threads)


def _logged(action: Callable[[], object], log: Path):
    """`action()` with this process's stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a") as file:
        os.dup2(file.fileno(), 1), os.dup2(file.fileno(), 2)
        try:
            return action()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
