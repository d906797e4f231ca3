"""Optimizers: the paper's momentum SGD (weight decay on every parameter) by default; any of timm's
by name (`timm.optim.create_optimizer_v2`: adamw, lamb, lars, ...); parameter groups from timm's
helpers: no weight decay on norms and biases (`optim.no_decay: [norm, bias]`), layer-wise lr
decay (`optim.layer_decay`, for models that define layer groups); lr multipliers by module
(`optim.lr_multipliers: {aux_classifier: 10}`).

Each group's lr is the base lr times its `lr_scale` (layer decay, multipliers), so the trainer's
schedule, which multiplies every group's initial lr, keeps the scales.
"""

import torch
from torch import nn

OWN = ("sgd",)  # momentum SGD as the paper: torch's, exactly (timm's "sgd" is Nesterov's)
NO_DECAY = ["norm", "bias"]  # timm's rule: 1-D parameters, i.e. every norm's affine and every bias


def optimizer_names() -> list[str]:
    import timm.optim

    return sorted(set(OWN) | set(timm.optim.list_optimizers()))


def build_optimizer(model: nn.Module, cfg, lr: float) -> torch.optim.Optimizer:
    """The optimizer `cfg` (a config's `optim`) names, over `model`'s trainable parameters."""
    groups = with_multipliers(model, param_groups(model, cfg), dict(cfg.get("lr_multipliers") or {}))
    if cfg.name in OWN:
        optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    else:
        from timm.optim import create_optimizer_v2

        optimizer = create_optimizer_v2(groups, opt=cfg.name, lr=lr, weight_decay=cfg.weight_decay,
                                        momentum=cfg.momentum)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
        group["no_decay"] = group["weight_decay"] == 0 and cfg.weight_decay > 0
    return optimizer


def param_groups(model: nn.Module, cfg) -> list:
    """Trainable parameters, grouped by timm's helpers when `no_decay` or `layer_decay` asks."""
    if cfg.layer_decay:
        from timm.optim import param_groups_layer_decay

        return param_groups_layer_decay(_layer_grouped(model), weight_decay=cfg.weight_decay,
                                        layer_decay=cfg.layer_decay,
                                        weight_decay_exclude_1d=bool(cfg.no_decay))
    if cfg.no_decay:
        from timm.optim import param_groups_weight_decay

        return param_groups_weight_decay(model, weight_decay=cfg.weight_decay)
    return [p for p in model.parameters() if p.requires_grad]


def with_multipliers(model: nn.Module, groups: list, multipliers: dict) -> list:
    """`groups` (parameters, or dicts of them) with the parameters under each module named in
    `multipliers` split into groups of their own, their `lr_scale` multiplied; a name that is no
    module of the model, or holds no trainable parameter, is an error."""
    if not multipliers:
        return groups
    modules = dict(model.named_modules())
    owner = {}
    for name in multipliers:
        if name not in modules:
            raise ValueError(f"optim.lr_multipliers names {name!r}, no module of this model; its top-level "
                             f"modules: {', '.join(n for n, _ in model.named_children())}")
        found = [p for p in modules[name].parameters() if p.requires_grad]
        if not found:
            raise ValueError(f"optim.lr_multipliers names {name!r}, which has no trainable parameter")
        owner.update({id(p): name for p in found})
    groups = groups if groups and isinstance(groups[0], dict) else [{"params": list(groups)}]
    split = []
    for group in groups:
        params = list(group["params"])
        for name in [None, *multipliers]:
            chosen = [p for p in params if owner.get(id(p)) == name]
            if chosen:
                scale = group.get("lr_scale", 1.0) * (multipliers[name] if name else 1.0)
                split.append({**group, "params": chosen, "lr_scale": scale})
    return split


def _layer_grouped(model: nn.Module) -> nn.Module:
    """The module whose `group_matcher` (timm's layer groups) covers the trained parameters."""
    inner = getattr(model, "model", None)  # a `timm/<model>` backbone wraps the timm model
    for candidate in (model, inner):
        if candidate is not None and hasattr(candidate, "group_matcher"):
            return candidate
    raise ValueError(f"optim.layer_decay needs a model that defines layer groups (timm's "
                     f"group_matcher); {type(model).__name__} has none: set optim.layer_decay=null")
