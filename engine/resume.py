"""Resuming with a changed config: what changed is an error unless the user allows it, and then
the new values really apply (not the restored optimizer's)."""

from omegaconf import OmegaConf

from .config import rename_keys
from .errors import ResumeMismatch

# Keys that do not change the training trajectory: they may differ freely on resume.
FREE_KEYS = ("name", "output_dir", "resume", "resume_changes", "train.log_every",
             "train.eval_every", "train.ckpt_every", "train.num_workers", "train.stop_at",
             "train.dist_timeout_s", "train.compile", "train.check_finite_every", "train.probe_every",
             "eval.")


def flat(node, prefix: str = "") -> dict:
    """A nested config as {"train.batch_size": 128, ...}."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def trajectory_changes(saved_yaml: str, cfg) -> dict[str, tuple]:
    """key -> (checkpoint's value, config's value) for every trajectory-changing difference. A key
    the checkpoint's config lacks (a run from before the key existed) had its default: keys are
    added with the old behaviour as their default; a key renamed since is read by its new name."""
    schema = OmegaConf.get_type(cfg)
    defaults = flat(OmegaConf.to_container(OmegaConf.structured(schema)))
    saved = OmegaConf.create(saved_yaml)
    rename_keys(saved, schema.RENAMED, "the checkpoint's config")  # every task's schema is a RunConfig
    old = {**defaults, **flat(OmegaConf.to_container(saved, resolve=True))}
    new = flat(OmegaConf.to_container(cfg, resolve=True))
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k), new.get(k)) for k in keys
            if old.get(k) != new.get(k) and not any(k == f or (f.endswith(".") and k.startswith(f))
                                                   for f in FREE_KEYS)}


# What a restored optimizer cannot take: another optimizer class, other parameter groups.
FIXED_KEYS = ("optim.name", "optim.no_decay", "optim.layer_decay")


def check_changes(changes: dict, cfg, checkpoint) -> None:
    fixed = {k: v for k, v in changes.items() if k in FIXED_KEYS}
    if fixed:
        listed = "\n  ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in fixed.items())
        raise ResumeMismatch(
            f"the optimizer of {checkpoint} cannot be resumed as another (not even with "
            f"resume_changes=allow):\n  {listed}\nresume with its values or choose another output_dir")
    if changes and cfg.resume_changes != "allow":
        listed = "\n  ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise ResumeMismatch(
            f"the config differs from the one {checkpoint} was trained with:\n  {listed}\n"
            f"resume with the checkpoint's values, pass resume_changes=allow to apply the new "
            f"ones from here on, or choose another output_dir")


def apply_optimizer_settings(optimizer, scheduler, cfg, lr: float) -> None:
    """The config's lr (batch-scaled), momentum, weight decay and nesterov, in a restored optimizer
    and scheduler: the schedule's factor at the current step times the new base lr (times each
    group's layer-decay scale); no-decay groups keep no decay."""
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in optimizer.param_groups:
        base = lr * group.get("lr_scale", 1.0)
        group.update(initial_lr=base, lr=base * factor,
                     weight_decay=0.0 if group.get("no_decay") else cfg.optim.weight_decay)
        for key in ("momentum", "nesterov"):  # SGD's; adaptive optimizers have none
            if key in group:
                group[key] = cfg.optim[key]
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
