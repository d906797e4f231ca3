"""Metrics to a JSON-lines file (one record per log step and per evaluation), and TensorBoard
when it is installed. Only the main process writes."""

import json
import math
from pathlib import Path


class MetricsLogger:
    def __init__(self, output_dir: str | Path, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except ImportError:
                pass

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "iteration" and math.isfinite(value):
                    self._tb.add_scalar(key, value, record.get("iteration", 0))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_after(output_dir: str | Path, iteration: int) -> None:
    """Drop records past `iteration`: on resume they are logged again from the checkpoint on."""
    path = Path(output_dir) / "metrics.jsonl"
    if path.is_file():
        kept = [r for r in read_metrics(output_dir) if r.get("iteration", 0) <= iteration]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def format_metrics(metrics: dict) -> str:
    """One line of key=value, floats to 4 significant digits."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
