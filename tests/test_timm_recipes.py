"""timm's training recipes behind config keys: its ImageNet input with RandAugment, Mixup / CutMix,
BCE, and the ResNet Strikes Back A3 config that uses them all."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.transforms_factory import transforms_imagenet_eval

from classification.config import LossConfig, MixupConfig, TimmInputConfig
from classification.loss import BatchMixing, build_loss
from classification.pretrain import load_pretrain_config, pretrain
from classification.timm_input import TimmCrop, eval_pipeline, train_pipeline
from engine.config import ConfigError
from tests.helpers import REPO, SMOKE

A3 = REPO / "configs/classification/imagenet_resnet50_a3.yaml"


def photo(seed=0, size=(90, 120)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_timm_crop_is_a_function_of_the_sample_seed_and_leaves_global_generators_alone():
    crop = TimmCrop(train_pipeline(TimmInputConfig(train_size=48, auto_augment="rand-m9-mstd0.5-inc1")))
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a, _ = crop(photo(), seed=5)
    assert a.shape == (48, 48, 3) and a.dtype == torch.uint8
    assert torch.equal(a, crop(photo(), seed=5)[0])
    assert not torch.equal(a, crop(photo(), seed=6)[0])
    after = random.getstate(), np.random.get_state()[1], torch.get_rng_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])


def test_rand_augment_changes_the_crops_that_the_same_seeds_give_without_it():
    plain = TimmCrop(train_pipeline(TimmInputConfig(train_size=48, color_jitter=0.0)))
    augmented = TimmCrop(train_pipeline(TimmInputConfig(train_size=48, color_jitter=0.0,
                                                        auto_augment="rand-m9-mstd0.5-inc1")))
    differ = sum(not torch.equal(plain(photo(), s)[0], augmented(photo(), s)[0]) for s in range(8))
    assert differ >= 6  # RandAugment's 2 ops apply with probability 0.5 each: rarely neither


def test_test_crop_is_timms_eval_transform():
    cfg = TimmInputConfig(test_size=64, crop_pct=0.95, interpolation="bicubic")
    ours, _ = TimmCrop(eval_pipeline(cfg))(photo(), seed=0)
    theirs = transforms_imagenet_eval(64, crop_pct=0.95, interpolation="bicubic", use_prefetcher=True)
    assert torch.equal(ours, theirs(Image.fromarray(photo())).permute(1, 2, 0))


def test_mixup_mixes_each_image_with_the_reversed_batch_in_the_targets_proportion():
    images, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    mixing = BatchMixing(MixupConfig(mixup_alpha=1.0), smoothing=0.0, num_classes=4)
    np.random.seed(0)
    mixed, targets = mixing(images.clone(), labels)
    lam = targets[0, 0].item()  # sample 0 (class 0) mixed with sample 5 (class 1)
    assert 0 < lam < 1 and torch.allclose(targets.sum(1), torch.ones(6))
    expected = lam * F.one_hot(labels, 4) + (1 - lam) * F.one_hot(labels.flip(0), 4)
    assert torch.allclose(targets, expected.float(), atol=1e-6)
    assert torch.allclose(mixed, lam * images + (1 - lam) * images.flip(0), atol=1e-5)


def test_an_odd_batch_mixes_all_but_its_last_image():
    images, labels = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 3, 2])
    mixing = BatchMixing(MixupConfig(mixup_alpha=1.0, cutmix_alpha=1.0), smoothing=0.1, num_classes=4)
    mixed, targets = mixing(images.clone(), labels)
    assert mixed.shape == images.shape and torch.equal(mixed[4], images[4])
    assert torch.allclose(targets[4], torch.tensor([0.025, 0.025, 0.925, 0.025]))


def test_bce_binarises_soft_targets_above_the_threshold():
    logits, soft = torch.randn(4, 5), torch.softmax(torch.randn(4, 5), 1)
    loss = build_loss(LossConfig(name="bce", bce_target_thresh=0.2), mixing=True)(logits, soft)
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, (soft > 0.2).float()))
    labels = torch.tensor([0, 4, 2, 1])  # index targets, smoothed as timm: 1 - s + s / C and s / C
    smoothed = build_loss(LossConfig(name="bce", smoothing=0.1), mixing=False)(logits, labels)
    target = F.one_hot(labels, 5) * 0.9 + 0.02
    assert torch.allclose(smoothed, F.binary_cross_entropy_with_logits(logits, target))


def test_the_default_loss_is_the_papers_cross_entropy():
    assert build_loss(LossConfig(), mixing=False) is F.cross_entropy


def test_a3_recipe_builds_and_trains_one_step(tmp_path):
    cfg = load_pretrain_config(A3, [
        f"output_dir={tmp_path / 'run'}", "data.kind=synthetic", "data.num_train=8", "data.num_val=4",
        "data.image_size=80", "data.num_classes=4", "data.timm.train_size=64", "data.timm.test_size=64",
        "schedule.unit=iter", "schedule.total=1", "schedule.warmup=0", "train.batch_size=8",
        "train.num_workers=0", "train.precision=fp32", "train.channels_last=false"])
    assert (cfg.optim.name, cfg.loss.name) == ("lamb", "bce")
    assert cfg.data.timm.auto_augment == "rand-m6-mstd0.5-inc1"
    assert (cfg.data.mixup.mixup_alpha, cfg.data.mixup.cutmix_alpha) == (0.1, 1.0)
    metrics = pretrain(cfg)
    assert np.isfinite(metrics["val_loss"]) and metrics["val_images"] == 4
    last = torch.load(tmp_path / "run/checkpoints/last.pth", weights_only=True)
    assert last["step"] == 1
    assert sorted(g["weight_decay"] for g in last["optimizer"]["param_groups"]) == [0.0, 0.02]


@pytest.mark.parametrize("override, message", [
    ("loss.name=focal", "loss.name='focal': must be ce | bce"),
    ("loss.bce_target_thresh=0.2", "with loss.name=bce"),
    ("data.mixup.cutmix_alpha=-1", "data.mixup.cutmix_alpha=-1"),
    ("data.mixup.mode=row", "data.mixup.mode='row'"),
    ("data.timm.auto_augment=rand-q1", "data.timm.auto_augment='rand-q1' is not a policy"),
    ("data.timm.train_size=96", "data.timm is set but data.preset='cifar'"),
    ("data.ten_crop=true", "data.ten_crop=true is the paper's ImageNet test"),
])
def test_bad_recipe_values_are_refused_at_load(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_pretrain_config(SMOKE, [override])


def test_mixup_and_bce_resume_bit_exactly(tmp_path):
    """Mixup draws from NumPy's global generator, which the checkpoint keeps."""
    from tests.test_pretrain import run

    common = ["data.mixup.mixup_alpha=0.2", "data.mixup.cutmix_alpha=1.0", "loss.name=bce",
              "train.ckpt_every=2"]
    straight, _ = run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=3", name="paused")
    paused, _ = run(tmp_path, *common, name="paused")
    a, b = (torch.load(f"{c.output_dir}/checkpoints/last.pth", weights_only=True)["model"]
            for c in (straight, paused))
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain, _ = run(tmp_path, "train.ckpt_every=2", name="plain")
    c = torch.load(f"{plain.output_dir}/checkpoints/last.pth", weights_only=True)["model"]
    assert not all(torch.equal(a[k], c[k]) for k in a)  # mixing and BCE did change the training


def test_a_run_from_before_the_new_keys_resumes_without_reported_changes():
    """Keys are added with the old behaviour as their default: absent from an older run's
    config.yaml, they are not changes; set otherwise, they are."""
    from omegaconf import OmegaConf

    from engine.resume import trajectory_changes

    cfg = load_pretrain_config(SMOKE)
    older = OmegaConf.to_container(cfg)
    del older["loss"], older["data"]["mixup"], older["data"]["timm"]
    assert trajectory_changes(OmegaConf.to_yaml(older), cfg) == {}
    changed = load_pretrain_config(SMOKE, ["loss.name=bce"])
    assert trajectory_changes(OmegaConf.to_yaml(older), changed) == {"loss.name": ("ce", "bce")}
