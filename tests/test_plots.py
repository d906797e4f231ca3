"""Curves from metrics.jsonl files (two tiny fake runs)."""

import json

from PIL import Image

from experiments.plots import error_curves, plot_error_curves, run_label
from helpers import call_tool


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


def test_a_run_in_two_panels_keeps_its_colour(tmp_path):
    """The demo's deep plain net is in both panels (against the shallow one, against its residual
    twin): the same colour in each, as the legend promises; without colours, one per place."""
    import matplotlib.pyplot as plt

    shallow, deep, residual = (fake_run(tmp_path / n, n, f"cifar_{n}", 0.2)
                               for n in ("plain20", "plain56", "resnet56"))
    colours = {shallow: "C0", deep: "C1", residual: "C2"}
    fig, (left, right) = plt.subplots(1, 2)
    plot_error_curves(left, [shallow, deep], colours=colours)
    plot_error_curves(right, [deep, residual], colours=colours)
    legend = {ax: {label: line.get_color() for line, label in zip(*ax.get_legend_handles_labels())}
              for ax in (left, right)}
    assert legend[left]["cifar_plain56"] == legend[right]["cifar_plain56"] == "C1"
    assert legend[right]["cifar_resnet56"] == "C2"
    plot_error_curves(right, [residual])
    assert right.get_lines()[-1].get_color() == "C0"
    plt.close(fig)
