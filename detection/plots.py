"""Precision/recall curves per class (COCO's at IoU 0.5, all areas, 100 detections per image),
for the classes a detector does best and worst on."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .evaluation import RECALLS  # noqa: E402


def draw_pr_curves(curves: dict, per_class: dict, path: Path, count: int = 5) -> Path:
    """The `count` best and worst classes by AP50 (classes without ground truth left out), each
    curve labelled with its AP50."""
    ranked = sorted((name for name in curves if (per_class.get(name) or {}).get("AP50") is not None),
                    key=lambda name: per_class[name]["AP50"], reverse=True)
    panels = [("best", ranked[:count]), ("worst", ranked[::-1][:count])]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for axis, (title, names) in zip(axes, panels):
        for name in names:
            axis.plot(RECALLS, curves[name], label=f"{name} (AP50 {100 * per_class[name]['AP50']:.1f})")
        axis.set(title=f"{title} {len(names)} classes", xlabel="recall", xlim=(0, 1), ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("precision (IoU 0.5)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
