"""Curves from metrics.jsonl files (two tiny fake runs)."""

import json

from helpers import call_tool
from PIL import Image

from experiments.plots import error_curves, run_label


def fake_run(root, name, model, final_error):
    root.mkdir()
    (root / "config.yaml").write_text(f"model:\n  name: {model}\n")
    lines = []
    for it in range(100, 1100, 100):
        lines.append({"iteration": it, "train_error": 0.9 - it / 2000, "train_loss": 1.0})
        if it % 500 == 0:
            lines.append({"iteration": it, "val_top1_error": final_error + (1000 - it) / 5000})
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def test_curves_read_and_plot(tmp_path):
    a = fake_run(tmp_path / "a", "a", "cifar_plain20", 0.3)
    b = fake_run(tmp_path / "b", "b", "cifar_resnet20", 0.2)
    train_x, train_y, test_x, test_y = error_curves(a)
    assert list(test_x) == [500, 1000] and test_y[-1] == 30.0
    assert train_y[0] == 85.0 and len(train_x) == 10
    assert run_label(b) == "cifar_resnet20"
    out = tmp_path / "fig.png"
    call_tool("plot_curves", str(a), str(b), "--out",
              str(out), check=True)
    assert Image.open(out).size[0] > 300
