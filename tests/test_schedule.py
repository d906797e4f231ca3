"""Learning-rate schedules and the compressed CPU schedules."""

import pytest

from classification.pretrain import load_pretrain_config
from engine.schedule import ScheduleConfig, lr_factor
from helpers import REPO


def test_step_schedule_in_iterations():
    cfg = ScheduleConfig()  # the paper's CIFAR protocol
    factors = [lr_factor(s, cfg, 391) for s in (0, 31999, 32000, 47999, 48000, 63999)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_epoch_units_and_warmup():
    cfg = ScheduleConfig(unit="epoch", total=90, milestones=[30, 60], warmup=1, warmup_factor=0.1)
    assert lr_factor(0, cfg, 100) == pytest.approx(0.1)
    assert lr_factor(99, cfg, 100) == pytest.approx(0.1)
    assert lr_factor(100, cfg, 100) == pytest.approx(1)
    assert lr_factor(3000, cfg, 100) == pytest.approx(0.1)
    linear = ScheduleConfig(warmup=10, warmup_factor=0.0, warmup_kind="linear")
    assert [lr_factor(s, linear, 1) for s in (0, 5, 10)] == pytest.approx([0, 0.5, 1])


def test_cosine():
    cfg = ScheduleConfig(kind="cosine", total=100)
    assert [lr_factor(s, cfg, 1) for s in (0, 50, 100)] == pytest.approx([1, 0.5, 0], abs=1e-9)


@pytest.mark.parametrize("net", ["resnet20", "resnet56", "plain20", "plain56"])
def test_short_configs_are_proportional_to_the_paper(net):
    paper = load_pretrain_config(REPO / f"configs/classification/cifar10_{net}.yaml").schedule
    short = load_pretrain_config(REPO / f"configs/classification/cifar10_{net}_short.yaml").schedule
    assert [m / short.total for m in short.milestones] == [m / paper.total for m in paper.milestones]
    assert (paper.kind, paper.gamma) == (short.kind, short.gamma)


def test_poly_cosine_floor_and_warmup_factors_by_hand():
    """Each formula at a step where a changed sign, bound or operator shows: poly (1 - t/T)^0.9
    (torchvision's segmentation reference), cosine down to timm's floor, a one-step schedule at
    its end, and warm-up multiplying the schedule's own factor (constant and linear)."""
    import math

    poly = ScheduleConfig(kind="poly", total=10, milestones=[])
    assert lr_factor(4, poly, 1) == pytest.approx(0.6 ** 0.9) and lr_factor(12, poly, 1) == 0.0
    cosine = ScheduleConfig(kind="cosine", total=10, milestones=[], floor=0.2)
    assert lr_factor(5, cosine, 1) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(10, cosine, 1) == pytest.approx(0.2) and lr_factor(0, cosine, 1) == 1.0
    one_step = ScheduleConfig(kind="cosine", total=1, milestones=[])
    assert lr_factor(1, one_step, 1) == pytest.approx(0.0)
    assert lr_factor(1, ScheduleConfig(kind="poly", total=1, milestones=[]), 1) == 0.0
    constant = ScheduleConfig(kind="poly", total=10, milestones=[], warmup=4, warmup_factor=0.1)
    assert lr_factor(2, constant, 1) == pytest.approx(0.1 * 0.8 ** 0.9)
    linear = ScheduleConfig(kind="poly", total=10, milestones=[], warmup=4, warmup_factor=0.1,
                            warmup_kind="linear")
    assert lr_factor(2, linear, 1) == pytest.approx((0.1 + 0.9 * 2 / 4) * 0.8 ** 0.9)
    assert lr_factor(4, linear, 1) == pytest.approx(0.6 ** 0.9)  # warm-up over


def test_a_unit_or_kind_that_does_not_exist_is_named():
    from engine.schedule import to_iterations

    with pytest.raises(ValueError, match="schedule.unit must be 'iter' or 'epoch', not 'epochs'"):
        to_iterations(3, "epochs", 10)
    with pytest.raises(ValueError, match="not 'linear'"):
        lr_factor(0, ScheduleConfig(kind="linear", milestones=[]), 1)


@pytest.mark.parametrize("kind", ["constant", "plateau"])
def test_constant_and_plateau_leave_the_lr_to_warm_up_and_reductions(kind):
    """constant: the lr throughout; plateau: the same here (PlateauLR multiplies in its own
    reductions), times the warm-up factor during the warm-up."""
    cfg = ScheduleConfig(kind=kind, total=10, milestones=[], warmup=2, warmup_factor=0.1)
    assert [lr_factor(s, cfg, 1) for s in (0, 1, 2, 9, 15)] == [pytest.approx(0.1)] * 2 + [1.0] * 3


def _lrs(scheduler, optimizer, steps: int) -> list[float]:
    """The lr of each of the next `steps` optimizer steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_built_schedules_count_epochs_in_the_runs_iterations():
    """build_scheduler hands the epoch length to the factor: 1 epoch (4 iterations) of constant
    warm-up at 0.1, then step decay at epoch 2 (iteration 8)."""
    import torch

    from engine.schedule import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = ScheduleConfig(unit="epoch", total=3, milestones=[2], warmup=1, warmup_factor=0.1)
    lrs = _lrs(build_scheduler(optimizer, cfg, 4), optimizer, 10)
    assert lrs == pytest.approx([0.1] * 4 + [1] * 4 + [0.1] * 2)


def test_plateau_reduces_after_patience_evaluations_without_a_new_best_on_top_of_its_warmup():
    """PlateauLR (built for `kind: plateau`, epoch units, 10 iterations an epoch): the warm-up's
    linear factor 0.1 + 0.9 step / 10 times gamma**reductions; with patience 2 the lr is divided
    at the second evaluation without a new best, not the first, from the very next step (the lr
    LambdaLR had already set for it is recomputed: it used to apply a step later). Its
    state keeps what it observed, not the patience (a resume takes its config's)."""
    import torch

    from engine.schedule import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = ScheduleConfig(kind="plateau", unit="epoch", total=3, milestones=[], warmup=1, warmup_factor=0.1,
                         warmup_kind="linear", gamma=0.1, patience=2)
    plateau = build_scheduler(optimizer, cfg, 10)
    assert _lrs(plateau, optimizer, 3) == pytest.approx([0.1, 0.19, 0.28])
    plateau.observe(0.5)  # a new best
    plateau.observe(0.6)  # one without
    assert _lrs(plateau, optimizer, 1) == pytest.approx([0.37])
    plateau.observe(0.7)  # two without: divided from the next step
    assert plateau.reductions == 1 and plateau.get_last_lr() == pytest.approx([0.046])
    assert _lrs(plateau, optimizer, 2) == pytest.approx([0.046, 0.055])
    state = plateau.state_dict()
    assert "patience" not in state and (state["best"], state["stale"], state["reductions"]) == (0.5, 0, 1)
