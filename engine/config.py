"""Experiment configs: a dataclass schema, YAML files (with `_base_` inheritance), `key=value`
overrides, all merged by OmegaConf. Unknown keys and ill-typed values are errors naming them."""

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

BASE_KEY = "_base_"


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


def load_config(schema: type, path: str | Path | None = None, overrides=(), check=None) -> DictConfig:
    """Merge schema defaults <- YAML chain <- `a.b=value` overrides into a typed, read-only config;
    `check(config)` then raises ConfigError for values out of range."""
    base = OmegaConf.structured(schema)
    layers = _read_chain(Path(path)) if path else []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    source = f" in {path}" if path else ""
    try:
        config = OmegaConf.merge(base, *layers)
    except ConfigKeyError as error:
        raise ConfigError(
            f"unknown config key {error.full_key!r}{source} or overrides; "
            f"valid keys there: {_valid_keys(base, error.full_key)}"
        ) from None
    except ValidationError as error:
        raise ConfigError(f"bad value for {error.full_key!r}{source}: {error.msg}") from None
    OmegaConf.set_readonly(config, True)
    if "task" in config:
        check_task(config, base.task, path)
    if check is not None:
        check(config)
    return config


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


def plain(node):
    """A config node as plain dicts and lists: libraries test `isinstance(x, (list, tuple))`
    (torchvision's min_size), which an OmegaConf ListConfig fails."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
