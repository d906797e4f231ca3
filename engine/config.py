"""Experiment configs: a dataclass schema, YAML files (with `_base_` inheritance), `key=value`
overrides, all merged by OmegaConf. Unknown keys and ill-typed values are errors naming them.

`RunConfig` holds what every task's run has (its name and folder, resume, optimizer, schedule,
training loop); a task's schema extends it with its model, data and evaluation sections."""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from .ema import EmaConfig
from .schedule import ScheduleConfig

BASE_KEY = "_base_"
RESUME_CHANGES = ("error", "allow")
log = logging.getLogger("engine")


@dataclass
class ClipGradConfig:
    norm: float = 0.0  # clip the global gradient norm to this (Accelerate's clip_grad_norm_); 0: off


@dataclass
class TrainConfig:
    batch_size: int = 128  # global: across processes and accumulation steps
    grad_accum: int = 1
    precision: str = "auto"  # auto (bf16 where the CPU/GPU has bf16 units, else fp32) | fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (off: slower than eager for CIFAR nets on a CPU)
    seed: int = 0
    num_workers: int = 2
    log_every: int = 50  # iterations
    eval_every: int = 0  # iterations; 0 = at the end of every epoch
    ckpt_every: int = 500  # iterations
    # stop at this iteration with the schedule as shipped: checkpoint, evaluate, return; run again
    # without it (resume=auto) to continue to the end. The quick try of any config. 0: to the end
    stop_at: int = 0
    cpu: bool = False  # stay on the CPU even where a GPU is present
    dist_timeout_s: float = 600.0  # on N processes: how long any of them waits for the others
    nonfinite_skips: int = 0  # non-finite steps skipped (not applied) before training stops
    # iterations between the divergence guard's looks at the loss and gradients (each look waits
    # for the device); >1 lets a GPU queue steps ahead: a non-finite step is then caught up to
    # N-1 iterations later, always before a log, evaluation or save (needs nonfinite_skips=0)
    check_finite_every: int = 1
    # every N steps, per-stage gradient norms and layer-response stds into metrics.jsonl
    # (engine.probe_hook; ResNet and plain backbones); 0: off
    probe_every: int = 0
    clip_grad: ClipGradConfig = field(default_factory=ClipGradConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)


@dataclass
class OptimConfig:
    name: str = "sgd"  # the paper's momentum SGD | any name timm.optim.create_optimizer_v2 takes
    lr: float = 0.1
    lr_batch: int = 256  # the global batch `lr` is given for; other batches scale it linearly
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    no_decay: list = field(default_factory=list)  # [] (decay on every parameter) | [norm, bias]
    layer_decay: float | None = None  # timm's layer-wise lr decay (models with layer groups)
    # lr multipliers by module name (the parameters under that module of the model), e.g.
    # {aux_classifier: 10}: torchvision's segmentation reference trains the aux head at 10x
    lr_multipliers: dict = field(default_factory=dict)


@dataclass
class RunConfig:
    """The sections every task's config has; a task's schema subclasses it (and may change the
    defaults: its own name, learning rate, schedule)."""

    # keys renamed since configs used them: still read, with a note naming the new one
    RENAMED: ClassVar[dict] = {"data.on_bad_record": "data.on_bad_sample",
                               "data.on_bad_image": "data.on_bad_sample"}

    task: str = ""  # what the config is for (tools read it; another task is an error)
    name: str = "run"
    output_dir: str = "outputs/run"
    resume: str = "auto"  # auto | none | <path to a checkpoint>
    resume_changes: str = "error"  # error | allow: settings that differ from the checkpoint's
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A config file or override with an unknown key or a value of the wrong type."""


def _read_chain(path: Path, seen: tuple = ()) -> list[DictConfig]:
    """The YAML at `path` preceded by the files it names in `_base_` (relative to it)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"config {path} inherits from itself through {BASE_KEY}")
    layer = OmegaConf.load(path)
    bases = layer.pop(BASE_KEY, None) or []
    chain = []
    for base in [bases] if isinstance(bases, str) else bases:
        chain += _read_chain(path.parent / base, seen + (path.resolve(),))
    return chain + [layer]


def _valid_keys(schema: DictConfig, full_key: str) -> str:
    parent = full_key.rpartition(".")[0]
    node = OmegaConf.select(schema, parent) if parent else schema
    return ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "(none)"


def load_config(schema: type, path: str | Path | DictConfig | None = None, overrides=(),
                check=None) -> DictConfig:
    """Merge schema defaults <- YAML chain (or a config already read) <- `a.b=value` overrides into
    a typed, read-only config; `check(config)` then raises ConfigError for values out of range."""
    base = OmegaConf.structured(schema)
    if isinstance(path, DictConfig):
        layers, path = [path], "the weights' recorded config"
    else:
        layers = _read_chain(Path(path)) if path else []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    source = f" in {path}" if path else ""
    for layer in layers:
        rename_keys(layer, getattr(schema, "RENAMED", {}), path)
    declared = OmegaConf.merge(*layers).get("task")  # before the keys: another task's are unknown here
    if declared is not None and "task" in base:
        check_task(OmegaConf.create({"task": declared}), base.task, path)
    try:
        config = OmegaConf.merge(base, *layers)
    except ConfigKeyError as error:
        raise ConfigError(
            f"unknown config key {error.full_key!r}{source} or overrides; "
            f"valid keys there: {_valid_keys(base, error.full_key)}"
        ) from None
    except ValidationError as error:
        given = OmegaConf.select(layers[-1], error.full_key, default=None)  # the overrides' layer
        where = f" on the command line ({error.full_key}={given})" if given is not None else source
        raise ConfigError(f"bad value for {error.full_key!r}{where}: {error.msg}") from None
    OmegaConf.set_readonly(config, True)
    if check is not None:
        check(config)
    return config


def rename_keys(layer: DictConfig, renamed: dict, path) -> None:
    """Move each renamed key's value to its new name in `layer`, saying so once."""
    for old, new in renamed.items():
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(layer, parent) if parent else layer
        if not isinstance(node, DictConfig) or leaf not in node:
            continue
        value = node.pop(leaf)
        OmegaConf.update(layer, new, value, force_add=True)
        log.warning(f"{old} is now {new}: read as {new}={value}" + (f" ({path})" if path else ""))


def config_from_description(description: dict | None, loader, source) -> DictConfig:
    """The run config a weights file records (`description["config"]`, as the trainer writes it),
    read by the task's `loader`; a file without one is an error naming it."""
    text = (description or {}).get("config")
    if not text:
        raise ConfigError(f"{source} records no run config (a file written before weights carried "
                          f"theirs, or not by this toolkit's trainer): give the run's config.yaml")
    return loader(OmegaConf.create(text), training=False)


def declared_task(path: str | Path) -> str | None:
    """The `task:` a config file (with its `_base_` chain) names; None for files without one
    (run folders written before configs named their task)."""
    merged = OmegaConf.merge(*_read_chain(Path(path)))
    return merged.get("task")


def check_task(config: DictConfig, task: str, source) -> None:
    """A config of another task loaded as this one: an error naming both."""
    if config.task != task:
        where = f" {source}" if source else ""
        raise ConfigError(f"config{where} is a {config.task!r} config (task: {config.task}), "
                          f"not a {task} one: use that task's tool")


def save_config(config: DictConfig, path: str | Path) -> None:
    Path(path).write_text(OmegaConf.to_yaml(config))


def check_choice(key: str, value, valid) -> None:
    """Raise ConfigError naming the config `key` and its valid values unless `value` is one."""
    if value not in valid:
        raise ConfigError(f"invalid value {value!r} for {key!r}; valid values: "
                          + ", ".join(repr(v) for v in valid))


def to_builtin(node):
    """A config node as plain dicts and lists: libraries test `isinstance(x, (list, tuple))`
    (torchvision's min_size), which an OmegaConf ListConfig fails."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
