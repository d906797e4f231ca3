"""Metrics to a JSON-lines file (one strict-JSON record per log step, evaluation and event), and
TensorBoard when it is installed. Only the main process writes."""

import json
import math
import warnings
from pathlib import Path


def _strict(value):
    """JSON has no NaN or infinity: they are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def to_json_line(record: dict) -> str:
    return json.dumps(_strict(record), allow_nan=False) + "\n"


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
            f.write(to_json_line(record))
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "iteration" and math.isfinite(value):
                    self._tb.add_scalar(key, value, record.get("iteration", 0))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(output_dir: str | Path, *, drop_partial_last: bool = False) -> list[dict]:
    """The records of <output_dir>/metrics.jsonl. A malformed line is an error naming the file and
    line, except a last line cut short (power loss mid-write) with `drop_partial_last`."""
    path = Path(output_dir) / "metrics.jsonl"
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if drop_partial_last and number == len(lines):
                warnings.warn(f"{path}: dropped a partial last line ({len(line)} characters)",
                              stacklevel=2)
                break
            raise ValueError(f"{path} line {number} is not JSON: {error}") from error
    return records


def truncate_after(output_dir: str | Path, iteration: int) -> None:
    """Drop records past `iteration`: on resume they are logged again from the checkpoint on."""
    path = Path(output_dir) / "metrics.jsonl"
    if path.is_file():
        kept = [r for r in read_metrics(output_dir, drop_partial_last=True)
                if r.get("iteration", 0) <= iteration]
        path.write_text("".join(to_json_line(r) for r in kept))


def format_metrics(metrics: dict) -> str:
    """One line of key=value, floats to 4 significant digits."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
