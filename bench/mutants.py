"""`make mutants`: mutation testing (mutmut 3) of the modules whose numbers users trust.

Each module is mutated on its own, in a work folder of its own (outputs/mutants/<module>/) whose
pyproject names it and, as the tests to run, the test files that import it (plus those that reach
it through the registry: MODULES; or the files TESTS names); within those, mutmut runs for each
mutant only the tests that call the function it changed (the trainer: only the functions FUNCTIONS
names are mutated). Writes outputs/mutants/report.md (killed / survived / not covered / timeouts
per module, each survivor's diff) and report.json. Minutes per module; not in make test. A plain
run keeps the results it finds in --out; after adding tests, --survivors tests the survivors and
timeouts again.

    python bench/mutants.py                          # every module (make mutants)
    python bench/mutants.py --only engine/schedule.py,segmentation/metrics.py
    python bench/mutants.py --only engine/schedule.py --survivors   # after adding tests
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from engine.cli import run_tool

REPO = Path(__file__).resolve().parents[1]
LINKED = ("backbones", "classification", "detection", "engine", "segmentation", "experiments", "configs",
          "bench", "tools", "tests")
# module -> test files that exercise it without importing it by name (the registry, the trainer)
MODULES = {
    "backbones/blocks.py": ["tests/test_architectures.py", "tests/test_registry.py", "tests/test_weights.py",
                            "tests/test_tta.py"],
    "backbones/resnet.py": ["tests/test_registry.py", "tests/test_weights.py"],
    "backbones/metadata.py": ["tests/test_weights.py"],
    "backbones/msra.py": [],
    "engine/schedule.py": [],
    "engine/checkpoint.py": [],
    "engine/resume.py": ["tests/test_reliability.py"],
    "engine/trainer.py": [],
    "detection/evaluation.py": [],
    "detection/tta.py": [],
    "detection/sampling.py": ["tests/test_detection_model.py"],
    "segmentation/metrics.py": [],
    "classification/task.py": [],
    "classification/lighting.py": [],
    "classification/batch_augment.py": [],
}
# module -> its tests where not the files that import it: the tests of its numbers (against
# pycocotools, by hand, on the input path), not every training that evaluates or batches through
# it (a surviving mutant of the classification task ran 100 s of tests, for 309 mutants)
TESTS = {
    "detection/evaluation.py": ["tests/test_detection_eval.py"],
    "classification/task.py": ["tests/test_imagenet_input.py", "tests/test_imagenet_protocol.py",
                               "tests/test_tta.py", "tests/test_batch_augment.py",
                               "tests/test_pretrain.py::test_top1_and_top5_error_count_the_true_class_rank",
                               "tests/test_pretrain.py::test_top5_error_on_ten_class_data_equals_the_hand_count",
                               "tests/test_pretrain.py::test_ten_crop_prediction_averages_ten_views",
                               "tests/test_pretrain.py::test_loss_decreases_and_metrics_are_logged"],
    # the trainer: its own tests, and those of the step's features it carries (skipped samples,
    # non-finite steps, the EMA's cadence, the device-resident set)
    "engine/trainer.py": ["tests/test_pretrain.py", "tests/test_batch_augment.py",
                          "tests/test_classification_data.py::test_an_image_broken_after_its_header_is_skipped_in_every_epoch_and_reported",
                          "tests/test_reliability.py::test_a_skipped_step_leaves_weights_and_bn_statistics_as_the_step_before",
                          "tests/test_reliability.py::test_divergence_stops_naming_the_iteration_and_keeps_the_last_good_checkpoint",
                          "tests/test_reliability.py::test_looking_every_4_steps_trains_the_same_and_still_stops_a_divergence",
                          "tests/test_reliability.py::test_a_bounded_number_of_nonfinite_steps_can_be_skipped",
                          "tests/test_optimizers.py::test_ema_is_evaluated_beside_the_model_and_the_better_is_kept",
                          "tests/test_optimizers.py::test_the_ema_is_updated_every_train_ema_every_steps",
                          "tests/test_optimizers.py::test_the_ema_warms_up_with_the_trainers_step"],
}
# module -> the functions to mutate where not all (fnmatch patterns of mutmut's names): the trainer's
# step and epoch arithmetic; its other methods build and hand over, which every training test runs
FUNCTIONS = {
    "engine/trainer.py": ["xǁTrainerǁ__init__", "xǁTrainerǁ_epoch_batches", "xǁTrainerǁ_epoch",
                          "xǁTrainerǁ_after_epoch"],
}
# Tests that train in a child process working in another folder: mutmut's statistics run cannot
# follow them (the child, in its mutmut-trampolined code, looks for mutmut's config in its working
# folder and stops), so they are left out; the in-process resume tests stay
CHILD_PROCESS_TESTS = (
    "tests/test_reliability.py::test_ctrl_c_and_sigterm_at_random_moments_resume_bit_exactly",
    "tests/test_reliability.py::test_kill_9_eight_times_then_resume_equals_an_uninterrupted_run",
    "tests/test_pretrain.py::test_sigterm_saves_and_rerun_continues",
    "tests/test_pretrain.py::test_slurm_script_resumes_a_preempted_job_on_two_nodes_as_one_process",
)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STATUSES = ("killed", "survived", "no tests", "timeout", "suspicious", "skipped", "segfault")
NOT_RUN = "not checked"  # a mutant outside FUNCTIONS
AGAIN = ("survived", "timeout")  # --survivors: a timeout is not evidence either (docs/mutants.md)


def test_files(module: str) -> list[str]:
    """The test files that import `module` (dotted, or its name from its package), with the extras."""
    dotted = module.removesuffix(".py").replace("/", ".")
    package, name = dotted.rsplit(".", 1)
    pattern = re.compile(rf"(from|import) {re.escape(dotted)}\b"
                         rf"|from {re.escape(package)} import [^\n]*\b{name}\b")
    found = [f"tests/{p.name}" for p in sorted((REPO / "tests").glob("test_*.py"))
             if pattern.search(p.read_text())]
    return sorted(set(found) | set(MODULES.get(module, [])))


def make_work(module: str, work: Path, tests: list[str] | None = None) -> list[str]:
    """A folder mutmut can copy: the checkout's folders linked, a pyproject naming the module and
    the tests (default: the files that import it)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        if not (work / name).exists():
            (work / name).symlink_to(REPO / name)
    tests = tests or TESTS.get(module) or test_files(module)
    config = (REPO / "pyproject.toml").read_text() + (
        "\n[tool.mutmut]\n"
        f'source_paths = ["{module.split("/")[0]}"]\n'
        f'only_mutate = ["{module}"]\n'
        'also_copy = ["configs", "bench", "experiments", "tools", "backbones", "classification", '
        '"detection", "engine", "segmentation"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        f"pytest_add_cli_args = {json.dumps([a for t in CHILD_PROCESS_TESTS for a in ('--deselect', t)])}\n"
        "timeout_multiplier = 3.0\n"  # a mutant running 6x its tests' time is a hang, not 30x
        # mutmut's limit is (tests' time + constant) x multiplier x 2 seconds, the tests' time
        # being their calls' alone: a module-scoped fixture that trains is not in it
        "timeout_constant = 60.0\n")
    (work / "pyproject.toml").write_text(config)
    return tests


def mutant_patterns(module: str) -> list[str]:
    """mutmut's names of the mutants to run: all (none given), or those of FUNCTIONS[module]."""
    dotted = module.removesuffix(".py").replace("/", ".")
    return [f"{dotted}.{function}__mutmut_*" for function in FUNCTIONS.get(module, [])]


def statuses(mutmut: str, work: Path) -> dict[str, str]:
    """mutant name -> mutmut's status, for the mutants this module's runs chose."""
    listed = subprocess.run([mutmut, "results", "--all", "true"], cwd=work, capture_output=True,
                            text=True).stdout
    return {name: value for name, value in re.findall(r"^\s*(\S+): (.+)$", listed, re.M) if value != NOT_RUN}


def run_module(module: str, out: Path, children: int, tests: list[str] | None = None,
               survivors_only: bool = False, log=print) -> dict:
    """One module's mutants tested (or, with `survivors_only`, the survivors and timeouts of its
    last run in `out` again: mutmut keeps the other results, rerunning mutants given by name)."""
    work = out / module.replace("/", "__").removesuffix(".py")
    mutmut = str(Path(sys.executable).parent / "mutmut")
    patterns = mutant_patterns(module)
    if survivors_only:
        if not (work / "mutants").is_dir():
            raise SystemExit(f"--survivors: no earlier run of {module} in {work}")
        before = statuses(mutmut, work)
        patterns = [name for name, value in before.items() if value in AGAIN]
    tests = make_work(module, work, tests)
    again = f"; {len(patterns)} survivors and timeouts again" if survivors_only else ""
    log(f"{module}: tests {', '.join(tests)}{again}")
    start = time.perf_counter()
    if patterns or not survivors_only:
        with open(work / "run.log", "w") as run_log:
            # mutmut forks each mutant's test run from a process that has used torch: with OpenMP's
            # thread pool started, a forked child deadlocks in its first parallel op, which mutmut
            # then reports as a timeout (docs/mutants.md); one thread per process is fork-safe
            subprocess.run([mutmut, "run", "--max-children", str(children), *patterns], cwd=work,
                           stdout=run_log, stderr=subprocess.STDOUT, check=False,
                           env={**os.environ, **ONE_THREAD})
    seconds = round(time.perf_counter() - start, 1)
    status = statuses(mutmut, work)
    if survivors_only and len(status) < len(before):  # mutmut drops results whose tests changed
        log(f"{module}: mutmut dropped {len(before) - len(status)} earlier results (their tests changed): "
            f"the counts below are the survivors' alone; run the module again without --survivors")
    counts = {s: sum(v == s for v in status.values()) for s in STATUSES}
    survivors = {}
    for name, value in status.items():
        if value == "survived":
            shown = subprocess.run([mutmut, "show", name], cwd=work, capture_output=True, text=True).stdout
            survivors[name] = "\n".join(line for line in shown.splitlines() if line.startswith(("-", "+"))
                                        and not line.startswith(("---", "+++")))
    log(f"{module}: {len(status)} mutants, {counts} in {seconds:.0f} s")
    return {"module": module, "tests": tests, "mutants": len(status), "counts": counts, "seconds": seconds,
            "survivors": survivors, "rerun": survivors_only}


def report(results: list[dict]) -> str:
    lines = ["| module | mutants | killed | survived | not covered | timeout | survived / covered | s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c = r["counts"]
        covered = r["mutants"] - c["no tests"]
        share = f"{100 * c['survived'] / covered:.0f}%" if covered else "-"
        lines.append(f"| {r['module']} | {r['mutants']} | {c['killed']} | {c['survived']} | "
                     f"{c['no tests']} | {c['timeout']} | {share} | {r['seconds']:.0f} |")
    for r in results:
        if r["survivors"]:
            lines += ["", f"### {r['module']}: survivors", ""]
            for name, diff in r["survivors"].items():
                lines += [f"- `{name}`", "  ```diff", *[f"  {d}" for d in diff.splitlines()], "  ```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated modules (default: all of MODULES)")
    parser.add_argument("--out", type=Path, default=Path("outputs/mutants"))
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--tests", help="comma-separated test files instead of those importing each "
                        "module (a quick look: fewer tests, more survivors)")
    parser.add_argument("--survivors", action="store_true",
                        help="test only the survivors and timeouts of the last run again (after adding "
                        "tests); a plain run keeps every result it finds in --out")
    args = parser.parse_args(argv)
    modules = args.only.split(",") if args.only else list(MODULES)
    unknown = [m for m in modules if not (REPO / m).is_file()]
    if unknown:
        parser.error(f"no such module: {', '.join(unknown)}")
    tests = args.tests.split(",") if args.tests else None
    results = [run_module(m, args.out.resolve(), args.max_children, tests, args.survivors) for m in modules]
    (args.out / "report.json").write_text(json.dumps(results, indent=2))
    (args.out / "report.md").write_text(report(results))
    print(report(results).split("\n### ")[0])


if __name__ == "__main__":
    run_tool(main)
