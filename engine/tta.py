"""Test-time augmentation: the views a task evaluates an image in (scales, mirrored or not), and
the config that names them (`eval.tta`). Each task combines its views' outputs its own way."""

from dataclasses import dataclass, field


@dataclass
class TTAConfig:
    flip: bool = False  # add every view mirrored left-right
    scales: list = field(default_factory=lambda: [1.0])  # image scale factors (dense tasks)


def views(cfg: TTAConfig) -> tuple[tuple[float, bool], ...]:
    """(scale, mirrored) of every view; ((1.0, False),) is no test-time augmentation."""
    return tuple((float(s), f) for s in cfg.scales for f in ((False, True) if cfg.flip else (False,)))
