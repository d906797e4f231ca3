"""Modern recipes' training machinery: timm's optimizers and parameter groups, cosine with warm-up
and a floor, gradient clipping, weight EMA; the paper's SGD unchanged."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from backbones import create_backbone
from classification.pretrain import load_pretrain_config
from engine.config import ConfigError
from engine.optim import build_optimizer
from engine.resume import ResumeMismatch
from engine.schedule import ScheduleConfig, lr_factor
from helpers import REPO, SMOKE, coco_overrides, model_after_each_step, write_coco_dataset
from test_pretrain import run


def optim_cfg(*overrides):
    return load_pretrain_config(SMOKE, list(overrides)).optim


def test_sgd_is_torchs_momentum_sgd_on_every_trainable_parameter_bit_for_bit():
    torch.manual_seed(0)
    ours, reference = create_backbone("cifar_resnet20"), create_backbone("cifar_resnet20")
    reference.load_state_dict(ours.state_dict())
    ours.stem.conv.weight.requires_grad_(False)
    reference.stem.conv.weight.requires_grad_(False)
    cfg = optim_cfg()
    optimizers = (build_optimizer(ours, cfg, 0.1),
                  torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=0.1,
                                  momentum=cfg.momentum, weight_decay=cfg.weight_decay))
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for _ in range(3):
        for model, optimizer in zip((ours, reference), optimizers):
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(optimizers[0].param_groups) == 1 and type(optimizers[0]) is torch.optim.SGD


def test_adamw_puts_norms_and_biases_at_zero_decay():
    model = create_backbone("cifar_resnet20")
    optimizer = build_optimizer(model, optim_cfg("optim.name=adamw", "optim.no_decay=[norm,bias]",
                                                 "optim.weight_decay=0.05"), 1e-3)
    assert type(optimizer).__name__ == "AdamW"
    groups = {g["weight_decay"]: g for g in optimizer.param_groups}
    one_d = [p for p in model.parameters() if p.ndim <= 1]  # BN weights and biases, the fc bias
    assert len(groups[0.0]["params"]) == len(one_d) == 2 * 19 + 1
    assert len(groups[0.05]["params"]) == sum(p.ndim > 1 for p in model.parameters()) == 19 + 1
    assert groups[0.0]["no_decay"] and not groups[0.05]["no_decay"]


@pytest.mark.parametrize("name", ["lamb", "lars", "sgdw"])
def test_any_timm_optimizer_by_name(name):
    optimizer = build_optimizer(create_backbone("cifar_resnet20"), optim_cfg(f"optim.name={name}"), 0.01)
    assert type(optimizer).__name__.lower().startswith(name[:4])


def test_layer_decay_through_timm_groups_scales_each_groups_lr():
    model = create_backbone("timm/resnet18", num_classes=10)
    optimizer = build_optimizer(model, optim_cfg("optim.name=adamw", "optim.layer_decay=0.5"), 1e-3)
    scales = sorted({g["lr_scale"] for g in optimizer.param_groups})
    assert scales[-1] == 1.0 and scales[0] < 0.1 and len(scales) > 3
    assert all(g["lr"] == pytest.approx(1e-3 * g["lr_scale"]) for g in optimizer.param_groups)
    with pytest.raises(ValueError, match="ResNet has none"):
        build_optimizer(create_backbone("cifar_resnet20"), optim_cfg("optim.layer_decay=0.5"), 0.1)


def test_bad_optimizer_settings_are_refused_at_load():
    with pytest.raises(ConfigError, match="optim.name='adamx'.*adamw"):
        load_pretrain_config(SMOKE, ["optim.name=adamx"])
    with pytest.raises(ConfigError, match=r"optim.no_decay=\['norm'\]"):
        load_pretrain_config(SMOKE, ["optim.no_decay=[norm]"])
    with pytest.raises(ConfigError, match="optim.layer_decay=1.5"):
        load_pretrain_config(SMOKE, ["optim.layer_decay=1.5"])


def test_cosine_with_linear_warmup_and_floor_is_the_closed_form():
    cfg = ScheduleConfig(kind="cosine", unit="epoch", total=10, milestones=[], warmup=1,
                         warmup_factor=0.01, warmup_kind="linear", floor=0.05)
    for step in (0, 5, 10, 37, 50, 99, 100):
        cosine = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / 100))
        warm = 0.01 + 0.99 * step / 10 if step < 10 else 1.0
        assert lr_factor(step, cfg, 10) == pytest.approx(cosine * warm, abs=1e-12), step
    assert lr_factor(100, cfg, 10) == pytest.approx(0.05)


def test_adamw_run_resumes_exactly_and_refuses_another_optimizer(tmp_path):
    common = ["optim.name=adamw", "optim.no_decay=[norm,bias]", "optim.lr=0.001", "train.ckpt_every=2"]
    straight, _ = run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=4", name="paused")
    paused, _ = run(tmp_path, *common, name="paused")
    a, b = (load_file(f"{c.output_dir}/final.safetensors") for c in (straight, paused))
    assert all(torch.equal(a[k], b[k]) for k in a)
    run(tmp_path, *common, "train.stop_at=4", name="switch")
    with pytest.raises(ResumeMismatch, match="optim.name: 'adamw' -> 'sgd'"):
        run(tmp_path, "train.ckpt_every=2", "optim.lr=0.001", "resume_changes=allow", name="switch")


def test_gradient_clipping_bounds_the_first_sgd_step(tmp_path):
    """First SGD step without decay: w1 = w0 - lr * g (clipped: g * c / |g|). Runs at lr and 2 lr
    give w0 and g; the clipped run must have moved exactly lr * c."""
    common = ["schedule.total=1", "schedule.milestones=[]", "optim.weight_decay=0", "optim.lr=0.1"]
    weights = {}
    for name, extra in (("plain", []), ("double", ["optim.lr=0.2"]),
                        ("clipped", ["train.clip_grad.norm=0.01"])):
        cfg, _ = run(tmp_path, *common, *extra, name=name)
        state = load_file(f"{cfg.output_dir}/final.safetensors")
        weights[name] = torch.cat([v.flatten().double() for k, v in sorted(state.items())
                                   if "running" not in k and "num_batches" not in k])
    lr = 0.1 * cfg.train.batch_size / cfg.optim.lr_batch  # scaled to the batch, as the trainer does
    step = weights["plain"] - weights["double"]  # lr * g
    start = weights["plain"] + step
    assert step.norm() > lr * 0.01  # clipping binds
    assert (weights["clipped"] - start).norm() == pytest.approx(lr * 0.01, rel=1e-3)


def test_ema_is_evaluated_beside_the_model_and_the_better_is_kept(tmp_path):
    cfg, metrics = run(tmp_path, "train.ema.decay=0.9", "train.ema.warmup=false", "schedule.total=8")
    out = Path(cfg.output_dir)
    assert {"val_top1_error", "ema_val_top1_error"} <= metrics.keys()
    which = "ema" if metrics["ema_val_top1_error"] < metrics["val_top1_error"] else "model"
    with safe_open(str(out / "final.safetensors"), "pt") as f:
        assert f.metadata()["weights"] == which
    assert json.loads((out / "eval/metrics.json").read_text())["weights"] == which
    last = torch.load(out / "checkpoints/last.pth", weights_only=True)
    ema, model = last["ema"], last["model"]
    assert ema.keys() == model.keys() and not torch.equal(ema["fc.weight"], model["fc.weight"])
    assert torch.equal(ema["stem.bn.num_batches_tracked"], model["stem.bn.num_batches_tracked"])
    best = torch.load(out / "checkpoints/best.pth", weights_only=True)
    assert best["weights"] in ("ema", "model")


def test_ema_resumes_bit_exactly(tmp_path):
    common = ["train.ema.decay=0.9", "train.ema.every=2", "train.ckpt_every=2"]
    straight, _ = run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=3", name="paused")
    paused, _ = run(tmp_path, *common, name="paused")
    a, b = (torch.load(f"{c.output_dir}/checkpoints/last.pth", weights_only=True) for c in (straight, paused))
    for part in ("ema", "model"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_the_ema_is_updated_every_train_ema_every_steps(tmp_path):
    """decay 1e-6: each update makes the EMA the model of that step (to 1e-6 of the change); with
    every=3 of 8 steps the last update is step 6's, so the EMA is the model a run stopped at 6 has."""
    common = ["train.ema.decay=1e-6", "train.ema.warmup=false", "train.ema.every=3", "schedule.total=8",
              "train.ckpt_every=100"]
    whole, _ = run(tmp_path, *common, name="whole")
    at_six, _ = run(tmp_path, *common, "train.stop_at=6", name="at_six")
    last, six = (torch.load(f"{c.output_dir}/checkpoints/last.pth", weights_only=True)
                 for c in (whole, at_six))
    assert six["step"] == 6
    for key, value in six["model"].items():
        if value.is_floating_point():
            torch.testing.assert_close(last["ema"][key], value, atol=1e-5, rtol=1e-5, msg=key)
    assert not torch.allclose(last["ema"]["fc.weight"], last["model"]["fc.weight"], atol=1e-4)


def test_the_ema_warms_up_with_the_trainers_step(tmp_path, monkeypatch):
    """timm's warm-up decay at the trainer's step s is 1 - s**(-2/3) (0 at the first update: the
    EMA starts as the model), under train.ema.decay: after two steps the EMA is
    d * (model after step 1) + (1 - d) * (model after step 2), d = 1 - 2**(-2/3)."""
    states = model_after_each_step(monkeypatch)
    cfg, _ = run(tmp_path, "train.ema.decay=0.9998", "train.ema.warmup=true", "schedule.total=2",
                 "schedule.milestones=[]")
    ema = torch.load(f"{cfg.output_dir}/checkpoints/last.pth", weights_only=True)["ema"]["fc.weight"]
    d = 1 - 2 ** (-2 / 3)
    weights = [states[step]["fc.weight"] for step in (1, 2)]
    torch.testing.assert_close(ema, d * weights[0] + (1 - d) * weights[1], atol=1e-6, rtol=1e-5)


def test_ema_decay_outside_0_1_is_refused_at_load():
    with pytest.raises(ConfigError, match="train.ema.decay=1.5"):
        load_pretrain_config(SMOKE, ["train.ema.decay=1.5"])


@pytest.mark.parametrize("name", ["coco_faster_rcnn_convnext_tiny_fpn", "coco_mask_rcnn_convnext_tiny_fpn"])
def test_convnext_recipes_build_and_train_one_step(name, tmp_path):
    from detection import load_detection_config, train_detector

    ann = write_coco_dataset(tmp_path, num_images=2, size=64)
    cfg = load_detection_config(REPO / f"configs/detection/{name}.yaml", [
        *coco_overrides(ann, tmp_path / "images"), f"output_dir={tmp_path / 'run'}",
        "model.backbone_weights=scratch", "model.options.min_size=64", "model.options.max_size=64",
        "model.options.anchor_sizes=[16,32,64,128,256]", "schedule.total=1", "schedule.milestones=[]",
        "schedule.warmup=0", "train.batch_size=2", "train.num_workers=0", "train.precision=fp32"])
    assert (cfg.optim.name, cfg.optim.weight_decay) == ("adamw", 0.05)
    assert list(cfg.optim.no_decay) == ["norm", "bias"]
    metrics = train_detector(cfg)
    assert "val_AP" in metrics and (tmp_path / "run/done.json").exists()
    last = torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)
    decays = sorted(g["weight_decay"] for g in last["optimizer"]["param_groups"])
    assert decays == [0.0, 0.05]


def test_a_resume_with_allowed_changes_applies_them_to_every_group():
    """The new lr (times each group's layer-decay scale, times the schedule's factor at the resumed
    step), weight decay (none in no-decay groups), momentum and nesterov: in the groups the next
    step uses and in the scheduler's bases."""
    from omegaconf import OmegaConf

    from engine.resume import apply_optimizer_settings

    weights = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
    sgd = torch.optim.SGD([{"params": [weights[0]]}, {"params": [weights[1]], "lr_scale": 0.5},
                           {"params": [weights[2]], "no_decay": True, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: 0.1 if step >= 2 else 1.0)
    for _ in range(3):
        sgd.step()
        scheduler.step()
    cfg = OmegaConf.create({"optim": {"weight_decay": 1e-3, "momentum": 0.8, "nesterov": True}})
    apply_optimizer_settings(sgd, scheduler, cfg, lr=0.2)
    bases = [0.2, 0.1, 0.2]
    for group, base, decay in zip(sgd.param_groups, bases, (1e-3, 1e-3, 0.0)):
        assert group["initial_lr"] == pytest.approx(base) and group["lr"] == pytest.approx(base * 0.1)
        assert group["weight_decay"] == decay and group["momentum"] == 0.8 and group["nesterov"] is True
    assert scheduler.base_lrs == pytest.approx(bases)
    assert scheduler.get_last_lr() == pytest.approx([b * 0.1 for b in bases])
    adam = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    apply_optimizer_settings(adam, torch.optim.lr_scheduler.LambdaLR(adam, lambda step: 1.0), cfg, lr=0.2)
    assert "momentum" not in adam.param_groups[0] and adam.param_groups[0]["lr"] == pytest.approx(0.2)
