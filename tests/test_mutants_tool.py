"""`make mutants`' choices (bench/mutants.py): which test files each module's mutants run, which
of the trainer's functions are mutated, and the rerun of survivors refused without a first run."""

import fnmatch
from pathlib import Path

import pytest

import mutants

REPO = Path(__file__).resolve().parents[1]


def test_every_module_and_test_file_named_exists_and_each_module_has_tests():
    for module, extra in mutants.MODULES.items():
        assert (REPO / module).is_file(), module
        assert all((REPO / test).is_file() for test in extra), extra
        assert mutants.test_files(module), f"{module}: no test file imports it"
    for module, tests in mutants.TESTS.items():
        assert module in mutants.MODULES
        for test in tests:
            path, _, name = test.partition("::")
            assert (REPO / path).is_file() and (not name or f"def {name}(" in (REPO / path).read_text()), test


def test_a_modules_tests_are_the_files_that_import_it_by_either_spelling():
    assert "tests/test_pretrain.py" in mutants.test_files("engine/trainer.py")
    assert "tests/test_schedule.py" in mutants.test_files("engine/schedule.py")
    blocks = mutants.test_files("backbones/blocks.py")
    assert set(mutants.MODULES["backbones/blocks.py"]) <= set(blocks)  # the registry's users added
    assert "tests/test_segmentation.py" not in blocks


def test_the_evaluation_runs_the_tests_of_its_numbers_not_the_trainings(tmp_path):
    assert mutants.make_work("detection/evaluation.py", tmp_path / "work") == ["tests/test_detection_eval.py"]
    config = (tmp_path / "work/pyproject.toml").read_text()
    assert 'only_mutate = ["detection/evaluation.py"]' in config and (tmp_path / "work/tests").is_symlink()


def test_only_the_trainers_step_and_epoch_functions_are_mutated():
    patterns = mutants.mutant_patterns("engine/trainer.py")
    chosen = [name for name in ("engine.trainer.xǁTrainerǁ_epoch__mutmut_3",
                                "engine.trainer.xǁTrainerǁ_epoch_batches__mutmut_1",
                                "engine.trainer.xǁTrainerǁ__init____mutmut_12",
                                "engine.trainer.xǁTrainerǁfit__mutmut_2",
                                "engine.trainer.xǁTrainerǁ_micro_step__mutmut_5")
              if any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert chosen == ["engine.trainer.xǁTrainerǁ_epoch__mutmut_3",
                      "engine.trainer.xǁTrainerǁ_epoch_batches__mutmut_1",
                      "engine.trainer.xǁTrainerǁ__init____mutmut_12"]
    assert mutants.mutant_patterns("engine/schedule.py") == []  # all of it


def test_survivors_again_needs_an_earlier_run(tmp_path):
    with pytest.raises(SystemExit, match="no earlier run of engine/schedule.py"):
        mutants.run_module("engine/schedule.py", tmp_path, 1, survivors_only=True, log=lambda _: None)


def test_the_tests_left_out_of_mutmuts_runs_exist():
    """A renamed test would silently come back into the statistics run, and stop it."""
    for node in mutants.CHILD_PROCESS_TESTS:
        path, name = node.split("::")
        assert f"def {name}(" in (REPO / path).read_text(), node
