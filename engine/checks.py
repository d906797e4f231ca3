"""Checks of a run config's values, at load, in the user's terms: the key, the value, what is
allowed. Every problem is listed in one ConfigError, before anything is built."""

from .config import RESUME_CHANGES, ConfigError
from .optim import NO_DECAY, optimizer_names
from .precision import PRECISIONS as PRECISION_NAMES

# named where a shortened schedule is refused: the one override a quick try of a config needs
SHORT_RUN = ("; to try a config briefly, keep its schedule and stop early: train.stop_at=N (checkpoint "
             "and evaluation at iteration N; run again without it to continue)")
SCHEDULE_KINDS, SCHEDULE_UNITS, WARMUP_KINDS = ("step", "cosine", "poly", "constant", "plateau"), \
    ("iter", "epoch"), ("constant", "linear")


def _optimizer_problems(o) -> list[str]:
    names = optimizer_names()
    problems = [] if o.name in names else [f"optim.name={o.name!r}: must be one of {', '.join(names)}"]
    if list(o.no_decay) not in ([], NO_DECAY):
        problems.append(f"optim.no_decay={list(o.no_decay)}: must be [] or {NO_DECAY} (timm's groups "
                        f"exempt every 1-D parameter: norms and biases together)")
    if o.layer_decay is not None and not 0 < o.layer_decay <= 1:
        problems.append(f"optim.layer_decay={o.layer_decay!r}: must be null or 0 < layer_decay <= 1")
    return problems


def _problems(cfg) -> list[str]:
    t, o, s = cfg.train, cfg.optim, cfg.schedule
    rules = [
        ("resume_changes", cfg.resume_changes, cfg.resume_changes in RESUME_CHANGES,
         " | ".join(RESUME_CHANGES)),
        ("train.batch_size", t.batch_size, t.batch_size >= 1, "an integer >= 1"),
        ("train.grad_accum", t.grad_accum, t.grad_accum >= 1, "an integer >= 1"),
        ("train.log_every", t.log_every, t.log_every >= 1, "an integer >= 1 (iterations)"),
        ("train.ckpt_every", t.ckpt_every, t.ckpt_every >= 1, "an integer >= 1 (iterations)"),
        ("train.eval_every", t.eval_every, t.eval_every >= 0, "an integer >= 0 (0: every epoch)"),
        ("train.stop_at", t.stop_at, t.stop_at >= 0, "an integer >= 0 (0: train to the end)"),
        ("train.num_workers", t.num_workers, t.num_workers >= 0, "an integer >= 0"),
        ("train.probe_every", t.probe_every, t.probe_every >= 0, "an integer >= 0 (0: off)"),
        ("train.nonfinite_skips", t.nonfinite_skips, t.nonfinite_skips >= 0, "an integer >= 0"),
        ("train.check_finite_every", t.check_finite_every, t.check_finite_every >= 1, "an integer >= 1"),
        ("train.check_finite_every", t.check_finite_every, t.check_finite_every == 1 or not t.nonfinite_skips,
         "1 with train.nonfinite_skips > 0 (a skipped step must be looked at before its update)"),
        ("train.precision", t.precision, t.precision in PRECISION_NAMES, " | ".join(PRECISION_NAMES)),
        ("optim.lr", o.lr, o.lr > 0, "a number > 0"),
        ("optim.lr_batch", o.lr_batch, o.lr_batch >= 1, "an integer >= 1"),
        ("optim.momentum", o.momentum, 0 <= o.momentum < 1, "0 <= momentum < 1"),
        ("optim.weight_decay", o.weight_decay, o.weight_decay >= 0, "a number >= 0"),
        ("schedule.kind", s.kind, s.kind in SCHEDULE_KINDS, " | ".join(SCHEDULE_KINDS)),
        ("schedule.unit", s.unit, s.unit in SCHEDULE_UNITS, " | ".join(SCHEDULE_UNITS)),
        ("schedule.total", s.total, s.total > 0, f"a number > 0 ({s.unit}s)"),
        ("schedule.gamma", s.gamma, 0 < s.gamma <= 1, "0 < gamma <= 1 (the lr is multiplied by it)"),
        ("schedule.warmup", s.warmup, 0 <= s.warmup < max(s.total, 1e-9),
         f"0 <= warmup < schedule.total{SHORT_RUN}"),
        ("schedule.warmup_factor", s.warmup_factor, 0 < s.warmup_factor <= 1, "0 < factor <= 1"),
        ("schedule.floor", s.floor, 0 <= s.floor < 1, "0 <= floor < 1 (a fraction of the lr)"),
        ("train.ema.decay", t.ema.decay, 0 <= t.ema.decay < 1, "0 (off) or 0 < decay < 1"),
        ("train.ema.every", t.ema.every, t.ema.every >= 1, "an integer >= 1 (steps)"),
        ("train.clip_grad.norm", t.clip_grad.norm, t.clip_grad.norm >= 0, "a number >= 0 (0: off)"),
        ("schedule.patience", s.patience, s.patience >= 1, "an integer >= 1 (evaluations)"),
        ("schedule.warmup_kind", s.warmup_kind, s.warmup_kind in WARMUP_KINDS, " | ".join(WARMUP_KINDS)),
    ]
    problems = [f"{key}={value!r}: must be {allowed}" for key, value, ok, allowed in rules if not ok]
    problems += _optimizer_problems(o)
    if t.batch_size >= 1 and t.grad_accum >= 1 and t.batch_size % t.grad_accum:
        problems.append(f"train.batch_size={t.batch_size}: must split evenly into "
                        f"train.grad_accum={t.grad_accum} micro-batches")
    milestones = list(s.milestones)
    out_of_range = any(not 0 < m < s.total for m in milestones)
    if s.kind == "step" and (out_of_range or milestones != sorted(milestones)):
        problems.append(f"schedule.milestones={milestones}: must be ascending, each between 0 and "
                        f"schedule.total={s.total:g} ({s.unit}s); a later one would never take effect"
                        + SHORT_RUN)
    return problems


SCRATCH = "scratch"  # model.backbone_weights: random weights, deliberately


def _start_problems(model) -> list[str]:
    """A fine-tuning recipe (detection, segmentation) names the backbone it starts from."""
    if model.get("weights"):  # a whole trained model: the backbone comes with it
        return []
    if model.backbone_weights is None:
        return ["model.backbone_weights is not set: this recipe starts from an ImageNet-pretrained "
                "backbone: set model.backbone_weights=<file> (or model.backbone_weights=scratch to "
                "train from random weights deliberately)"]
    if model.backbone_weights == SCRATCH and model.norm == "frozen_bn":
        return ["model.backbone_weights=scratch with model.norm=frozen_bn: the frozen statistics of "
                "an untrained net are meaningless; use model.norm=gn, bn or syncbn"]
    return []


def backbone_weights(model):
    """The `backbone_weights` a builder takes: a file, or None for `scratch`."""
    return None if model.backbone_weights == SCRATCH else model.backbone_weights


def check_run_values(cfg, task_problems: list[str] = ()) -> None:
    """Raise ConfigError listing every out-of-range value of `cfg`'s train, optim and schedule,
    with those the task found in its own sections (`task_problems`)."""
    _raise_if(_problems(cfg) + list(task_problems))


def check_fine_tuning_values(cfg) -> None:
    """`check_run_values`, and a named starting point for the backbone (`_start_problems`)."""
    _raise_if(_problems(cfg) + _start_problems(cfg.model))


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid config values:\n  " + "\n  ".join(problems))
