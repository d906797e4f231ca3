"""Small data the tests write themselves."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "classification" / "smoke.yaml"


class Exploit:
    """Unpickling it would run code (it prints a line): what every safe loader must refuse."""

    def __reduce__(self):
        return (print, ("this must never run",))


class OneProcess:
    """Accelerate's `gather_for_metrics` on one process: evaluation outside a training."""

    @staticmethod
    def gather_for_metrics(x):
        return x


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=6, size=32, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8) // 2 + (100 * c) % 256
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:04d}.png")
    return root


def write_coco_dataset(root: Path, num_images=8, size=96, seed=0, category_ids=(3, 7)) -> Path:
    """A tiny COCO set: 1-2 filled squares (red: first category, blue: second) on noise, each
    with its polygon as the segmentation."""
    import json

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        pixels = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
        for k in range(1 + image_id % 2):
            side = int(rng.integers(size // 4, size // 2))
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            colour = (230, 30, 30) if k == 0 else (30, 30, 230)
            pixels[y : y + side, x : x + side] = colour
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category_ids[k], "bbox": [x, y, side, side],
                                "area": side * side, "iscrowd": 0, "segmentation": [
                                    [x, y, x + side, y, x + side, y + side, x, y + side]]})
        Image.fromarray(pixels).save(root / "images" / f"{image_id:04d}.png")
        images.append({"id": image_id, "file_name": f"{image_id:04d}.png", "width": size,
                       "height": size})
    categories = [{"id": c, "name": n} for c, n in zip(category_ids, ("red", "blue"))]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def pycocotools_stats(annotation_file, results, iou_type="bbox") -> list:
    """COCOeval's twelve box (or mask) metrics computed directly, the reference for our numbers."""
    import copy

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(annotation_file))
    evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return list(evaluator.stats[:12])


def edit_json(path: Path, change) -> None:
    """Apply `change` (a function of the loaded dict) to a JSON file in place."""
    import json

    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def stop_before_done(run: Path) -> None:
    """A finished run folder as a stop after its last checkpoint leaves it: no done.json, final
    weights or eval/."""
    import shutil

    for name in ("done.json", "final.safetensors", "backbone.safetensors"):
        (run / name).unlink()
    shutil.rmtree(run / "eval")


def coco_overrides(annotations: Path, images: Path) -> list[str]:
    """Detection config overrides that train and validate on one COCO file and image folder."""
    return [f"data.{split}_{kind}={path}" for split in ("train", "val")
            for kind, path in (("annotations", annotations), ("images", images))]


def free_port() -> int:
    """A TCP port free on localhost now (for a rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_accelerate_state() -> None:
    """Accelerate keeps process-wide singletons; an in-process run starts from none."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def call_tool(name: str, *args, cwd: Path | None = None, check: bool = False):
    """`python tools/<name>.py args...` (or bench/<name>.py) run in this process: its `main(argv)`
    under the same error handling as `engine.cli.run_tool` (a user's error: exit 2 and `error: ...`
    on stderr), returned as `subprocess.run(..., capture_output=True, text=True)` would, without a new
    interpreter's seconds of imports. Tests of signals, exit paths and launchers keep their
    subprocesses."""
    import contextlib
    import importlib.util
    import io
    import subprocess

    from engine.cli import is_users_error
    from engine.logs import show_messages

    script = next(p for p in (REPO / "tools" / f"{name}.py", REPO / "bench" / f"{name}.py") if p.is_file())
    spec = importlib.util.spec_from_file_location(f"tools_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err, code = io.StringIO(), io.StringIO(), 0
    reset_accelerate_state()  # each tool run starts its own
    show_messages()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(cwd or Path.cwd()):
        try:
            module.main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except Exception as error:
            if not is_users_error(error):
                raise
            print(f"error: {error}", file=sys.stderr)
            code = 2
    result = subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())
    if check and code:
        raise AssertionError(f"tools/{name}.py exited {code}: {result.stderr[-2000:]}")
    return result


def model_after_each_step(monkeypatch) -> dict:
    """{step: a copy of the model's state_dict after that optimizer step}, filled by the trainings
    this test runs (the Trainer's hook calls wrapped)."""
    from engine.trainer import Trainer

    states, call_hooks = {}, Trainer._call_hooks

    def keep_state(self, point):
        if point == "after_step":
            states[self.step] = {k: v.clone() for k, v in self.unwrapped_model().state_dict().items()}
        call_hooks(self, point)

    monkeypatch.setattr(Trainer, "_call_hooks", keep_state)
    return states
