"""Test-time augmentation: the views a task evaluates an image in (scales, mirrored or not), and
the config that names them (`eval.tta`). Each task combines its views' outputs its own way."""

from dataclasses import dataclass, field

from .config import ConfigError

OFF = {"flip": False, "scales": [1.0]}  # each key's value when it asks for nothing


@dataclass
class TTAConfig:
    flip: bool = False  # add every view mirrored left-right
    scales: list = field(default_factory=lambda: [1.0])  # image scale factors (dense tasks)


def views(cfg: TTAConfig) -> tuple[tuple[float, bool], ...]:
    """(scale, mirrored) of every view; ((1.0, False),) is no test-time augmentation."""
    return tuple((float(s), f) for s in cfg.scales for f in ((False, True) if cfg.flip else (False,)))


def refuse_unsupported(cfg: TTAConfig, supported: tuple[str, ...], task: str, hint: str = "") -> None:
    """A ConfigError naming the first `eval.tta` key set that `task` does not take."""
    for key, off in OFF.items():
        if key not in supported and key in cfg and cfg[key] != off:
            raise ConfigError(f"eval.tta.{key} is not test-time augmentation that {task} takes (it "
                              f"takes {', '.join(supported)}){hint}")
