"""`experiments.jobs.run_jobs`: dependency order, each job's output in its log, a failure named.
(Interrupting running jobs is tested on the demo: tests/test_demo.py.)"""

import multiprocessing
import time
from functools import partial

import pytest

from experiments.jobs import Job, run_jobs


def write_after(path, wait_for, seconds):
    """A job: fail unless `wait_for` exists (its dependency's output), then write `path`."""
    if wait_for is not None and not wait_for.exists():
        raise AssertionError(f"started before {wait_for} was written")
    time.sleep(seconds)
    print(f"writing {path.name}")
    path.write_text("done")


def fail():
    raise ValueError("a bad value in the job")


def test_jobs_run_after_what_they_need_with_their_output_in_their_logs(tmp_path):
    a, b, c = (tmp_path / name for name in "abc")
    jobs = [Job("b", partial(write_after, b, a, 0), tmp_path / "b.log", after=("a",)),
            Job("a", partial(write_after, a, None, 0.5), tmp_path / "a.log"),
            Job("c", partial(write_after, c, None, 0), tmp_path / "c.log")]
    finished = []
    run_jobs(jobs, 2, on_done=lambda job, seconds: finished.append(job.title))
    assert finished.index("a") < finished.index("b") and sorted(finished) == ["a", "b", "c"]
    assert all(p.read_text() == "done" for p in (a, b, c))
    assert (tmp_path / "b.log").read_text() == "writing b\n"


def test_a_failed_job_is_an_error_naming_its_log(tmp_path):
    with pytest.raises(RuntimeError, match=r"broken failed: see .*broken\.log") as error:
        run_jobs([Job("broken", fail, tmp_path / "broken.log")], 1, on_done=lambda job, seconds: None)
    assert "a bad value in the job" in str(error.value.__cause__)
    with pytest.raises(ValueError, match="jobs: at least 1"):
        run_jobs([], 0, on_done=print)


def test_keep_going_reports_a_failure_drops_what_needs_it_and_runs_the_rest(tmp_path):
    """The depth study's mode: one run failing does not stop the others."""
    c, d = tmp_path / "c", tmp_path / "d"
    jobs = [Job("broken", fail, tmp_path / "broken.log"),
            Job("needs_broken", partial(write_after, tmp_path / "x", None, 0), tmp_path / "x.log",
                after=("broken",)),
            Job("needs_that", partial(write_after, tmp_path / "y", None, 0), tmp_path / "y.log",
                after=("needs_broken",)),
            Job("c", partial(write_after, c, None, 0), tmp_path / "c.log"),
            Job("d", partial(write_after, d, c, 0), tmp_path / "d.log", after=("c",))]
    finished = []
    failed = run_jobs(jobs, 1, on_done=lambda job, seconds: finished.append(job.title), keep_going=True)
    assert [j.title for j in failed] == ["broken", "needs_broken", "needs_that"]
    assert finished == ["c", "d"] and c.read_text() == d.read_text() == "done"
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def write_start_method(path):
    """A job: record how its own children (a DataLoader's workers) would start."""
    path.write_text(multiprocessing.get_start_method())


def test_a_jobs_loader_workers_start_as_from_the_command_line(tmp_path):
    """The pool's workers are spawned; their own children must not be (each would re-import
    torch: 8 ImageNet loader workers took 35 s instead of 4 s for two batches)."""
    path = tmp_path / "method"
    run_jobs([Job("method", partial(write_start_method, path), tmp_path / "m.log")], 1,
             on_done=lambda job, seconds: None)
    assert path.read_text() == multiprocessing.get_start_method()
