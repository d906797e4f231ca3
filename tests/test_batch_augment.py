"""Batch augmentation (`data.batch_augment`): the same crops, flips and normalisation as the
albumentations pipeline, and training on it resumes exactly."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from classification.batch_augment import crop_flip, draw_crop_flip, normalize
from classification.transforms import CIFAR_MEAN, CIFAR_STD, build_transform
from test_pretrain import build_trainer, run


def test_crop_flip_equals_pad_slice_and_mirror_per_image():
    images = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8)
    params = torch.stack([draw_crop_flip(seed) for seed in range(6)])
    out = crop_flip(images, params)
    for image, (top, left, flip), got in zip(images.numpy(), params.tolist(), out.numpy()):
        expected = np.pad(image, ((4, 4), (4, 4), (0, 0)))[top:top + 32, left:left + 32]
        np.testing.assert_array_equal(got, expected[:, ::-1] if flip else expected)


def test_draws_cover_every_offset_and_both_flips():
    params = torch.stack([draw_crop_flip(seed) for seed in range(2000)])
    assert set(params[:, 0].tolist()) == set(range(9)) == set(params[:, 1].tolist())
    assert 0.45 < params[:, 2].float().mean() < 0.55


def test_the_cifar_samples_draws_are_what_the_task_crops_and_flips_with():
    """A silently ignored draw (a key the task does not read) would train without augmentation."""
    from classification.batch_augment import CifarCropFlip
    from classification.task import ClassificationTask

    stored = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    samples = [CifarCropFlip()(image, seed) for seed, image in enumerate(stored)]
    batch = {"image": torch.stack([image for image, _ in samples]),
             **{name: torch.stack([drawn[name] for _, drawn in samples]) for name in samples[0][1]}}
    got = ClassificationTask(mean_std=((0.0,) * 3, (1.0,) * 3)).images(batch)
    drawn = torch.stack([draw_crop_flip(seed) for seed in range(6)])
    expected = crop_flip(torch.from_numpy(stored), drawn).permute(0, 3, 1, 2).float() / 255
    assert not torch.equal(expected, torch.from_numpy(stored).permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_the_batch_is_augmented_on_the_images_device():
    """Crop, flip and normalisation made where the images are (the training device): a meta
    tensor stands in for a GPU's, and a CPU tensor beside it is an error."""
    images = torch.zeros(2, 32, 32, 3, dtype=torch.uint8, device="meta")
    drawn = torch.stack([draw_crop_flip(1), draw_crop_flip(2)])  # in the loader, on the CPU
    assert crop_flip(images, drawn).device.type == "meta"
    shift = torch.zeros(2, 3)  # the lighting offsets, drawn in the loader too
    assert normalize(images, CIFAR_MEAN, CIFAR_STD, channels_last=False, shift=shift).device.type == "meta"


def test_normalize_gives_the_memory_format_asked_for():
    images = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    assert normalize(images, CIFAR_MEAN, CIFAR_STD, channels_last=False).is_contiguous()
    last = normalize(images, CIFAR_MEAN, CIFAR_STD, channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()


def test_normalize_matches_the_albumentations_test_transform():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = build_transform("cifar", train=False)(image=image)["image"]
    got = normalize(torch.from_numpy(image)[None], CIFAR_MEAN, CIFAR_STD, channels_last=True)
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=0)
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("resident", [False, True], ids=["loader", "resident"])
def test_training_on_batch_augmented_data_learns_and_resumes_exactly(tmp_path, resident):
    """On the loader path and with the set resident on the device (`data.resident`)."""
    common = ["data.batch_augment=true", f"data.resident={str(resident).lower()}", "schedule.total=12",
              "schedule.milestones=[6,9]", "train.ckpt_every=100", "train.channels_last=true"]
    _, final = run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=5", name="paused")
    run(tmp_path, *common, name="paused")
    straight = load_file(str(tmp_path / "straight/backbone.safetensors"))
    resumed = load_file(str(tmp_path / "paused/backbone.safetensors"))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, atol=0, rtol=0, msg=key)
    assert final["val_top1_error"] < 0.75  # 4 classes: chance is 0.75


def test_resident_batches_are_the_samplers_order_split_over_processes_and_resume_mid_epoch():
    """data.resident: each global batch is the next slice of the epoch's permutation, dealt in
    contiguous shares to the processes; every sample's crop and flip depends on (seed, epoch,
    index) only; a resumed epoch starts at its `skip`-th batch."""
    from classification.resident import ResidentBatches
    from engine.data import EpochSampler

    images = torch.arange(40, dtype=torch.uint8)[:, None, None, None].expand(40, 4, 4, 3).contiguous()
    labels = torch.arange(40)

    def process(rank, processes=2):
        return ResidentBatches(images, labels, EpochSampler(40, seed=3), 8, seed=3,
                               process_index=rank, num_processes=processes)

    one, first, second = process(0, 1), process(0), process(1)
    for loader in (one, first, second):
        loader.set_epoch(1)
    sampler = EpochSampler(40, seed=3)
    sampler.set_epoch(1)
    order = list(iter(sampler))
    whole = list(one)
    assert len(one) == 5 and torch.cat([b["label"] for b in whole]).tolist() == order
    for batch, a, b in zip(whole, first, second):
        assert torch.equal(torch.cat([a["label"], b["label"]]), batch["label"])
        assert torch.equal(torch.cat([a["crop_flip"], b["crop_flip"]]), batch["crop_flip"])
        assert torch.equal(batch["image"][:, 0, 0, 0].long(), batch["label"])
    assert [b["label"].tolist() for b in one.batches(skip=3)] == [b["label"].tolist() for b in whole[3:]]
    params = one.crop_flip()
    one.set_epoch(2)
    assert not torch.equal(one.crop_flip(), params)  # new draws each epoch
    assert set(params[:, 0].tolist()) <= set(range(9)) and set(params[:, 2].tolist()) == {0, 1}



def test_the_trainer_takes_a_resident_sets_batches_in_the_epochs_order_and_resumes_mid_epoch(tmp_path):
    """With `data.resident` the trainer trains on the set's own batches (no DataLoader), each epoch
    in `train.seed`'s permutation for that epoch, a resumed epoch from the step it stopped at."""
    from classification.resident import ResidentBatches
    from engine.data import EpochSampler

    trainer = build_trainer(tmp_path, "data.batch_augment=true", "data.resident=true", "train.seed=5")
    assert isinstance(trainer.train_loader, ResidentBatches) and trainer.iters_per_epoch == 4
    labels = trainer.train_loader.labels
    for epoch, step in ((1, 4), (2, 10)):  # 10: epoch 2, its first two batches already trained
        reference = EpochSampler(128, seed=5)
        reference.set_epoch(epoch)
        trainer.step = step
        taken = torch.cat([batch["label"] for batch in trainer._epoch_batches(epoch)])
        assert taken.tolist() == labels[list(reference)[32 * (step % 4):]].tolist()


def test_the_resident_set_needs_the_cifar_batch_augmentation(tmp_path):
    with pytest.raises(ValueError, match="needs data.preset=cifar and data.batch_augment=true"):
        run(tmp_path, "data.resident=true")
