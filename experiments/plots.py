"""Training curves in the paper's Figure 4/6 style: training error dashed, test error bold,
against iterations, one colour per run."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from engine.metrics import read_metrics  # noqa: E402


def run_label(run_dir: Path) -> str:
    """The model's name from the run's saved config, else the folder's name."""
    config = Path(run_dir) / "config.yaml"
    if config.is_file():
        return str(OmegaConf.load(config).model.name)
    return Path(run_dir).name


def error_curves(run_dir: Path) -> tuple[list, list, list, list]:
    """(train iterations, train error %, eval iterations, test error %) from metrics.jsonl."""
    records = read_metrics(run_dir)
    train = [(r["iteration"], 100 * r["train_error"]) for r in records if "train_error" in r]
    test = [(r["iteration"], 100 * r["val_top1_error"]) for r in records if "val_top1_error" in r]
    return (*zip(*train), *zip(*test)) if train and test else ([], [], [], [])


def plot_error_curves(axes, run_dirs, title: str | None = None, colours: dict | None = None) -> None:
    """Each run in `colours[run_dir]`, else in the colour of its place (Figure 6: one per depth)."""
    for index, run_dir in enumerate(run_dirs):
        colour = (colours or {}).get(run_dir, f"C{index}")
        train_x, train_y, test_x, test_y = error_curves(Path(run_dir))
        label = run_label(Path(run_dir))
        axes.plot(train_x, train_y, "--", color=colour, linewidth=0.8, alpha=0.8)
        axes.plot(test_x, test_y, "-", color=colour, linewidth=2.2, label=label)
    axes.set_xlabel("iterations")
    axes.set_ylabel("error (%)")
    axes.grid(alpha=0.3)
    axes.legend(title="bold: test, dashed: train", fontsize=8, title_fontsize=8)
    if title:
        axes.set_title(title)


def save_curves(run_dirs, out: str | Path, panels: list[tuple[str, list]] | None = None,
                colours: dict | None = None) -> Path:
    """One panel of all runs, or several titled panels (e.g. plain left, residual right);
    `colours` (run folder: colour) keeps a run shown in two panels in one colour."""
    panels = panels or [(None, list(run_dirs))]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels):
        plot_error_curves(ax, runs, title, colours)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def side_by_side(columns: dict[str, list[Path]], out: str | Path, rows: int = 3) -> Path:
    """The same images as drawn for each titled column (plain vs residual detector), one row per
    image, so a difference is seen at a glance."""
    titles = list(columns)
    rows = min(rows, *(len(files) for files in columns.values()))
    fig, axes = plt.subplots(rows, len(titles), figsize=(3.2 * len(titles), 3.2 * rows), squeeze=False)
    for col, title in enumerate(titles):
        for row, path in enumerate(columns[title][:rows]):
            axes[row][col].imshow(plt.imread(path))
            axes[row][col].set_axis_off()
        axes[0][col].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
