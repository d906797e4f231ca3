"""The paper's ImageNet protocol beyond the crops: multi-scale fully-convolutional testing (Table
4), the plateau schedule (Sec. 3.4), BN statistics recomputed over the training set (Appendix A)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from backbones import create_backbone
from classification.bn_statistics import population_statistics
from classification.datasets import training_set_as_tested
from classification.pretrain import load_pretrain_config
from classification.task import ClassificationTask
from engine.schedule import PlateauLR, ScheduleConfig
from helpers import SMOKE, OneProcess, call_tool
from test_imagenet_input import write_jpeg_folder
from test_pretrain import run


def test_multi_scale_scores_are_the_mean_softmax_over_scales_and_flips():
    torch.manual_seed(0)
    model = create_backbone("resnet18", num_classes=5).eval()
    task = ClassificationTask(multi_scale=(32, 48))
    images = [torch.rand(1, 3, 40, 60), torch.rand(1, 3, 50, 30)]  # whole images, any size
    with torch.no_grad():
        scores = task.predict(model, images)
        expected = []
        for image in images:
            views = []
            for side in (32, 48):
                scale = side / min(image.shape[-2:])
                size = [round(image.shape[-2] * scale), round(image.shape[-1] * scale)]
                x = F.interpolate(image, size=size, mode="bilinear", antialias=True)
                views += [model(x).softmax(1), model(x.flip(-1)).softmax(1)]
            expected.append(torch.stack(views).mean(0))
    torch.testing.assert_close(scores, torch.cat(expected), atol=1e-6, rtol=0)
    assert scores.shape == (2, 5) and torch.allclose(scores.sum(1), torch.ones(2))


def test_multi_scale_evaluation_runs_on_the_imagenet_path(tmp_path):
    """Whole images of different sizes, one list per batch; evaluated by the evaluate tool."""
    write_jpeg_folder(tmp_path / "data/train", per_class=2)
    common = ["data.kind=imagefolder", f"data.root={tmp_path / 'data'}", "data.preset=imagenet",
              "data.val_split=train", "train.batch_size=2", "schedule.total=2", "schedule.milestones=[]"]
    out = Path(run(tmp_path, *common)[0].output_dir)
    printed = call_tool("evaluate", "--config", str(out / "config.yaml"),
                        "--checkpoint", str(out / "checkpoints/last.pth"), "--out", str(tmp_path / "ms"),
                        "data.multi_scale_test=[64,80]", "train.num_workers=0", check=True).stdout
    assert "val_top1_error" in printed and (tmp_path / "ms/metrics.json").exists()
    with pytest.raises(ValueError, match="needs data.preset=imagenet"):
        from classification.datasets import build_datasets

        build_datasets(load_pretrain_config(SMOKE, ["data.multi_scale_test=[32]"]).data)


def test_plateau_divides_by_10_after_patience_evaluations_and_resumes_exactly():
    cfg = ScheduleConfig(kind="plateau", total=100, milestones=[], patience=2)
    weights = [torch.nn.Parameter(torch.zeros(1))]
    scheduler = PlateauLR(torch.optim.SGD(weights, lr=0.1), cfg, 10)
    lrs = []
    for error in (0.5, 0.4, 0.41, 0.40, 0.39, 0.39, 0.39):  # new best, best, stale, stale -> /10 ...
        scheduler.optimizer.step()
        scheduler.step()
        scheduler.observe(error)
        scheduler.optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])
    state = scheduler.state_dict()
    restored = PlateauLR(torch.optim.SGD(weights, lr=0.1), ScheduleConfig(kind="plateau", patience=2), 10)
    restored.load_state_dict(state)
    assert (restored.best, restored.stale, restored.reductions) == (0.39, 0, 2)
    restored.observe(0.39)
    restored.observe(0.39)
    assert restored.reductions == 3


def test_plateau_schedule_trains_through_the_trainer_and_resumes_bit_exactly(tmp_path):
    common = ["schedule.kind=plateau", "schedule.patience=1", "schedule.milestones=[]",
              "train.eval_every=2", "schedule.unit=iter", "schedule.total=8"]
    straight = Path(run(tmp_path, *common, name="straight")[0].output_dir)
    run(tmp_path, *common, "train.stop_at=4", name="paused")
    paused = Path(run(tmp_path, *common, name="paused")[0].output_dir)
    last = [torch.load(p / "checkpoints/last.pth", weights_only=True) for p in (straight, paused)]
    assert last[0]["scheduler"]["reductions"] == last[1]["scheduler"]["reductions"]
    for key, value in last[0]["model"].items():
        torch.testing.assert_close(last[1]["model"][key], value, atol=0, rtol=0, msg=key)


class TwoBN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn1, self.conv, self.bn2 = (torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 3),
                                         torch.nn.BatchNorm2d(4))

    def forward(self, x):
        return self.bn2(self.conv(self.bn1(x)))


def test_bn_statistics_are_the_exact_population_values():
    """Batches that differ in mean (sorted data): the population variance includes the spread of
    the batch means, which torch.optim.swa_utils.update_bn's mean of batch variances misses."""
    torch.manual_seed(0)
    batches = [torch.randn(4, 3, 6, 6) * (1 + i) + 3 * i for i in range(5)]
    model = TwoBN().eval()
    seen = []  # bn2's inputs, as the pass (train mode) produces them
    hook = model.bn2.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    assert population_statistics(model, batches) == 20
    hook.remove()
    for layer, values in ((model.bn1, torch.cat(batches)), (model.bn2, torch.cat(seen))):
        flat = values.transpose(0, 1).reshape(values.shape[1], -1).double()
        torch.testing.assert_close(layer.running_mean, flat.mean(1).float(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(layer.running_var, flat.var(1).float(), rtol=1e-6, atol=1e-6)
    assert not model.training  # the pass ran in training mode, as update_bn's; the mode is restored
    reference = TwoBN()
    torch.optim.swa_utils.update_bn(batches, reference)
    exact = torch.cat(batches).transpose(0, 1).reshape(3, -1).var(1)
    assert (reference.bn1.running_var < 0.5 * exact).all()  # why not update_bn


def test_recompute_bn_tool_writes_a_backbone_that_says_so(tmp_path):
    out = Path(run(tmp_path, "model.name=cifar_resnet20")[0].output_dir)
    target = tmp_path / "bn.safetensors"
    printed = call_tool("recompute_bn", "--config", str(out / "config.yaml"), "--checkpoint",
                        str(out / "checkpoints/last.pth"), "--out", str(target), "--workers", "0",
                        check=True).stdout
    cfg = load_pretrain_config(out / "config.yaml")
    assert f"over {cfg.data.num_train} training images" in printed
    with safe_open(str(target), "pt") as f:
        meta = f.metadata()
        stem_var = f.get_tensor("stem.bn.running_var")
        stem_mean = f.get_tensor("stem.bn.running_mean")
    assert meta["backbone"] == "cifar_resnet20" and "population" in meta["bn_statistics"]
    trained = torch.load(out / "checkpoints/last.pth", weights_only=True)["model"]
    assert not torch.equal(stem_var, trained["stem.bn.running_var"])
    # the stem BN's input is the first conv of the (test-transformed) training images: exact values
    dataset = training_set_as_tested(cfg.data, seed=cfg.train.seed)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        conv = F.conv2d(images, trained["stem.conv.weight"], padding=1).transpose(0, 1).reshape(16, -1)
    torch.testing.assert_close(stem_mean, conv.mean(1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stem_var, conv.double().var(1).float(), rtol=1e-4, atol=1e-5)


def test_a_training_step_mixes_the_batch_and_counts_errors_against_the_true_labels():
    """With Mixup / CutMix the loss is the model's on the mixed images against the soft targets;
    the error count stays the argmax per image against the labels."""
    logits = torch.tensor([[2.0, 1, 0], [0, 3, 1], [1, 0, 4], [5, 0, 0]])  # argmax 0, 1, 2, 0
    labels = torch.tensor([0, 2, 1, 1])  # rows 1, 2 and 3 wrong
    images, seen = torch.rand(4, 3, 8, 8), {}

    def mixing(batch_images, targets):
        seen.update(images=batch_images, targets=targets)
        return batch_images * 0.5, F.one_hot(targets, 3).float() * 0.9 + 0.1 / 3

    def model(batch_images):
        seen["model"] = batch_images
        return logits

    loss, stats = ClassificationTask(mixing=mixing).train_step(model, {"image": images, "label": labels})
    soft = F.one_hot(labels, 3).float() * 0.9 + 0.1 / 3
    assert torch.equal(seen["images"], images) and torch.equal(seen["targets"], labels)
    assert torch.equal(seen["model"], images * 0.5)
    torch.testing.assert_close(loss, F.cross_entropy(logits, soft))
    assert stats["error"] == 3 and stats["samples"] == 4
    torch.testing.assert_close(stats["loss"], 4 * F.cross_entropy(logits, soft))


def test_the_tasks_batches_and_weights_say_what_they_hold():
    """Test images of several sizes (multi-scale testing) collate to a list of one-image batches,
    labels apart; the weights' metadata names the task and the normalisation it trained with."""
    from backbones.metadata import parse

    task = ClassificationTask(mean_std=((0.5, 0.4, 0.3), (0.2, 0.25, 0.3)))
    samples = [(torch.rand(3, 32, 40), 1), (torch.rand(3, 48, 32), 0)]
    batch = task.collate(samples)
    assert [tuple(image.shape) for image in batch["image"]] == [(1, 3, 32, 40), (1, 3, 48, 32)]
    assert torch.equal(batch["image"][1][0], samples[1][0]) and batch["label"].tolist() == [1, 0]
    last = ClassificationTask(channels_last=True)  # float batches in the model's memory format
    floats = last.collate([(torch.rand(3, 8, 8), 0), (torch.rand(3, 8, 8), 1)])["image"]
    assert floats.is_contiguous(memory_format=torch.channels_last) and not floats.is_contiguous()
    stored = last.collate([(torch.zeros(8, 8, 3, dtype=torch.uint8), 0)] * 2)["image"]
    assert stored.is_contiguous()  # uint8 (H, W, C) batches are augmented and laid out later
    meta = parse(task.weights_metadata(create_backbone("cifar_resnet20")))
    assert meta["task"] == "classification" and meta["backbone"] == "cifar_resnet20"
    assert meta["input"] == {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def test_validation_loss_is_the_cross_entropy_of_logits_or_of_averaged_probabilities():
    """Plain evaluation: the mean cross-entropy of the logits; averaged views (here the image and
    its mirror, which this model cannot tell apart): the mean NLL of the averaged softmax, the
    same number. Neither the other's formula nor a mean of means."""
    logits, labels = torch.randn(6, 10), torch.tensor([0, 3, 9, 2, 2, 7])
    batch = {"image": logits[:, :, None, None].expand(6, 10, 2, 2).clone(), "label": labels}
    model = lambda images: images.mean((2, 3))  # noqa: E731
    expected = F.cross_entropy(logits, labels).item()
    halves = [{key: value[part] for key, value in batch.items()} for part in (slice(0, 4), slice(4, 6))]
    for task in (ClassificationTask(), ClassificationTask(flip=True)):
        metrics = task.evaluate(model, halves, OneProcess()).metrics  # summed over batches, then / 6
        assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5), task.flip
    one = {key: value[:1] for key, value in batch.items()}
    metrics = ClassificationTask().evaluate(model, [one], OneProcess()).metrics
    assert metrics["val_images"] == 1
    assert metrics["val_loss"] == pytest.approx(F.cross_entropy(logits[:1], labels[:1]).item(), rel=1e-5)


def test_evaluation_passes_over_a_batch_of_unreadable_images_and_goes_on():
    """A batch whose every image was skipped (counted where the loader reports them) is neither an
    error nor the end of the evaluation."""
    from engine.task import SKIPPED

    def good(labels):
        return {"image": torch.eye(3)[labels], "label": torch.tensor(labels), SKIPPED: []}

    model = torch.nn.Identity()  # the one-hot "images" are their own logits: all correct
    batches = [good([0, 1]), {SKIPPED: ["broken.jpg"]}, good([2, 2, 0])]
    metrics = ClassificationTask().evaluate(model, batches, OneProcess()).metrics
    assert metrics["val_images"] == 5 and metrics["val_top1_error"] == 0


def test_uint8_images_of_several_sizes_are_normalised_one_by_one_in_the_memory_format_asked():
    from classification.batch_augment import normalize

    mean_std = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    sizes = [torch.randint(0, 256, shape, dtype=torch.uint8) for shape in ((1, 4, 6, 3), (1, 5, 3, 3))]
    got = ClassificationTask(mean_std=mean_std).images({"image": sizes})
    for one, image in zip(got, sizes):
        torch.testing.assert_close(one, normalize(image, *mean_std, channels_last=False))
        assert one.is_contiguous()  # the default layout
    task = ClassificationTask(mean_std=mean_std, channels_last=True)
    last = task.images({"image": sizes[0].expand(2, -1, -1, -1)})
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
