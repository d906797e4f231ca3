"""The three layers: the library imports only downwards and never reaches into the repository; it
works from a built wheel with the repository off sys.path; tools are a parser and one call."""

import ast
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import REPO, write_coco_dataset

# Which project packages each package may import (the library is the first five).
ALLOWED = {
    "backbones": set(),
    "engine": {"backbones"},  # the trainer writes its weights files with backbones.save_weights
    "classification": {"backbones", "engine"},
    "detection": {"backbones", "engine"},
    "segmentation": {"backbones", "engine", "detection"},
}
PROJECT = set(ALLOWED) | {"experiments", "tools", "configs", "tests"}
REPOSITORY_STRINGS = ("configs/", "tools/", "experiments/", "bench/")
# bench/: benchmarks and dev-ops, scripts and their sibling modules above the experiments
BENCH_MODULES = {p.stem for p in (REPO / "bench").glob("*.py")}


def _imports(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute import in a module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _library_modules():
    for package in ALLOWED:
        yield from sorted((REPO / package).rglob("*.py"))


def test_library_imports_point_down_only():
    wrong = []
    for path in _library_modules():
        package = path.relative_to(REPO).parts[0]
        for name in _imports(ast.parse(path.read_text())) & PROJECT:
            if name != package and name not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_experiments_and_tools_import_nothing_from_bench():
    """bench/ builds on the library and the experiments, never the other way; tools/ is for users'
    runs, bench/ for measurements and dev-ops."""
    layers = [*_library_modules(), *sorted((REPO / "experiments").rglob("*.py")), *TOOLS]
    wrong = [f"{path.relative_to(REPO)} imports {name}" for path in layers
             for name in sorted(_imports(ast.parse(path.read_text())) & (BENCH_MODULES | {"bench"}))]
    assert BENCH_MODULES >= {"benchmark", "gpu_check", "wheelhouse", "test_configs"}
    assert not wrong, "\n".join(wrong)


def test_library_never_reads_the_repository_layout():
    """No __file__-relative paths, no configs/ or tools/ strings: the wheel has neither."""
    wrong = []
    for path in _library_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "__file__":
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} uses __file__")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    s in node.value for s in REPOSITORY_STRINGS) and not _is_docstring(tree, node):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno} names {node.value!r}")
    assert not wrong, "\n".join(wrong)


def _is_docstring(tree: ast.AST, constant: ast.Constant) -> bool:
    return any(isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n)
               and n.body[0].value is constant for n in ast.walk(tree))


WHEEL_SCRIPT = r'''
import importlib.abc, json, sys
from pathlib import Path

class Refuse(importlib.abc.MetaPathFinder):
    """The experiments package and tools/ are not the library's to import."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("experiments", "tools"):
            raise ImportError(f"the library imported {name}")

sys.meta_path.insert(0, Refuse())
site, repo, coco, out = (Path(p) for p in sys.argv[1:5])
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != repo]  # an editable install's entry

import backbones, classification.pretrain, detection, engine
for module in (backbones, classification.pretrain, detection, engine):
    assert Path(module.__file__).is_relative_to(site), module.__file__

from classification.pretrain import load_pretrain_config, pretrain
from detection import load_detection_config, train_detector

cls = pretrain(load_pretrain_config(None, [
    f"output_dir={out / 'cls'}", "data.kind=synthetic", "data.num_train=8", "data.num_val=8",
    "data.num_classes=2", "train.batch_size=8", "train.num_workers=0", "schedule.total=1",
    "schedule.milestones=[]"]))
det = train_detector(load_detection_config(None, [
    f"output_dir={out / 'det'}", f"data.train_annotations={coco}", f"data.val_annotations={coco}",
    f"data.train_images={coco.parent / 'images'}", f"data.val_images={coco.parent / 'images'}",
    "model.backbone=cifar_resnet20", "model.head=c4", "model.freeze_at=0", "model.norm=gn",
    f"model.backbone_weights={out / 'cls' / 'backbone.safetensors'}",
    "model.options={min_size: 64, max_size: 64, anchor_sizes: [16, 32], box_batch_size_per_image: 8,"
    " rpn_post_nms_top_n_train: 16, rpn_post_nms_top_n_test: 8}",
    "train.batch_size=2", "train.num_workers=0", "schedule.total=1", "schedule.milestones=[]",
    "schedule.warmup=0", "train.eval_every=1"]))
print(json.dumps({"classification": cls, "detection": det}))
'''


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    """The project's wheel, built from this checkout and unpacked into a folder of its own."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(REPO)], check=True, timeout=300, capture_output=True)
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(next(dist.glob("*.whl"))) as wheel:
        wheel.extractall(site)
    return site


def test_wheel_holds_the_library_and_no_configs_or_tools(wheel_site):
    top = {p.name for p in wheel_site.iterdir() if not p.name.endswith(".dist-info")}
    assert set(ALLOWED) - {"segmentation"} <= top
    assert not {"configs", "tools", "tests", "bench"} & top


def test_library_trains_and_evaluates_each_task_from_the_wheel(wheel_site, tmp_path):
    """With the repository off sys.path (and experiments/tools refused), the installed library
    builds each task's model, trains one step and evaluates; the run outputs are all there."""
    coco = write_coco_dataset(tmp_path / "coco", num_images=2, size=64)
    env = {"PYTHONPATH": str(wheel_site), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", WHEEL_SCRIPT, str(wheel_site), str(REPO), str(coco),
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["classification"]["val_images"] == 8
    assert metrics["detection"]["val_images"] == 2 and "val_AP" in metrics["detection"]
    for run, backbone in (("cls", True), ("det", False)):
        outputs = {p.name for p in (tmp_path / run).iterdir()}
        assert {"final.safetensors", "done.json", "config.yaml", "metrics.jsonl"} <= outputs, outputs
        assert ("backbone.safetensors" in outputs) is backbone  # only a backbone is a backbone
    assert (tmp_path / "det/eval/detections.json").is_file()


TOOLS = sorted((REPO / "tools").glob("*.py"))


@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.name)
def test_tool_is_a_parser_and_one_call_and_says_what_it_does(path, capsys):
    tree = ast.parse(path.read_text())
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert functions in ([], ["main"]), f"{path.name} holds logic: {functions}"
    summary = ast.get_docstring(tree).splitlines()[0]
    assert summary.endswith(".") and len(summary) <= 100, summary
    spec = importlib.util.spec_from_file_location(f"tool_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("rank, shown", [(0, ["loaded 3 files", "[process 0 of 2] warning: 1 unreadable"]),
                                         (1, ["[process 1 of 2] warning: 1 unreadable"])])
def test_messages_are_shown_once_per_job_and_warnings_with_their_process(monkeypatch, capsys, rank, shown):
    """engine.logs.show_messages: info from the main process only; warnings from every process,
    marked with its rank (the environment torchrun / Accelerate set)."""
    import logging

    from engine.logs import show_messages

    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    show_messages()
    logging.getLogger("detection").info("loaded 3 files")
    logging.getLogger("engine").warning("1 unreadable")
    assert capsys.readouterr().err.splitlines() == shown
