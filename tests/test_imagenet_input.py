"""The ImageNet input path (Sec. 3.4): AlexNet's lighting against its formula, the crops' geometry
against resize-then-crop, the augmentation's distribution, awkward files, and training on it."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from classification.batch_augment import normalize
from classification.data import BadSample, ClassificationDataset
from classification.decode import decode_rgb
from classification.imagenet_input import ImageNetTestCrop, ImageNetTrainCrop, resized_crop
from classification.lighting import EIGVAL, EIGVEC, draw_alpha, lighting_shift
from classification.task import ClassificationTask
from classification.transforms import IMAGENET_MEAN, IMAGENET_STD
from engine.data import BadImageError
from test_pretrain import run

DRAWS = 20000


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like image whose neighbouring pixels differ by at most ~8 levels."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (h // 32 + 2, w // 32 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)


def save_jpeg(path, pixels: np.ndarray, mode: str = "RGB", quality: int = 95):
    Image.fromarray(pixels).convert(mode).save(path, "JPEG", quality=quality)
    return path


def test_lighting_and_normalisation_follow_alexnets_formula():
    """I_xy + [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T per pixel (RGB in [0, 1]), then (x - mean) / std."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 9, 3), dtype=np.uint8)
    alphas = rng.normal(0, 0.1, (3, 3))
    task = ClassificationTask(mean_std=(IMAGENET_MEAN, IMAGENET_STD))
    got = task.images({"image": torch.from_numpy(images), "lighting": torch.tensor(alphas)})
    p, lam = np.array(EIGVEC), np.array(EIGVAL)
    for image, alpha, out in zip(images, alphas, got):
        noise = sum(p[:, i] * alpha[i] * lam[i] for i in range(3))  # the eigenvectors are columns
        expected = (image / 255.0 + noise - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=2e-5, rtol=0)


def test_the_eigenvectors_are_orthonormal_columns():
    p = np.array(EIGVEC)
    np.testing.assert_allclose(p.T @ p, np.eye(3), atol=2e-3)  # four decimals as published


def test_lighting_is_float32_and_made_on_the_alphas_device():
    """float32 alphas (numpy draws float64, which MPS cannot hold); the shift's constants on the
    alphas' device: a meta tensor stands in for a GPU one, and a CPU constant beside it is an error."""
    alpha = draw_alpha(np.random.default_rng(0))
    assert alpha.dtype == torch.float32 and alpha.shape == (3,)
    shift = lighting_shift(torch.zeros(4, 3, device="meta"))
    assert shift.device.type == "meta" and shift.shape == (4, 3)


def test_each_sample_draws_its_own_lighting_from_its_seed():
    crop = ImageNetTrainCrop()
    image = smooth_image(300, 400)
    alphas = torch.stack([crop(image, seed)[1]["lighting"] for seed in range(2000)]).double()
    assert abs(alphas.mean()) < 0.01 and abs(alphas.std() - 0.1) < 0.006  # 4 standard errors
    torch.testing.assert_close(crop(image, 7)[1]["lighting"], crop(image, 7)[1]["lighting"])


def test_scale_crop_and_flip_are_distributed_as_in_the_paper():
    crop, rng = ImageNetTrainCrop(), np.random.default_rng(0)
    scales = np.array([crop.draw_scale(rng) for _ in range(DRAWS)])
    assert scales.min() == 256 and scales.max() == 480 and len(set(scales)) == 225
    assert abs(scales.mean() - 368) < 2  # uniform: sd 65, standard error 0.46
    draws = [crop.draw_crop(rng, (372, 473), int(s)) for s in scales[:4000]]
    tops = np.array([top / (h - 224) for h, w, top, left, size, flip in draws])
    lefts = np.array([left / (w - 224) for h, w, top, left, size, flip in draws])
    flips = np.array([flip for *_, flip in draws])
    for position in (tops, lefts):  # uniform over the valid range, both ends reached
        assert position.min() == 0 and position.max() == 1 and abs(position.mean() - 0.5) < 0.02
    assert abs(flips.mean() - 0.5) < 0.032  # 4 standard errors of 4000 fair flips
    assert all(min(h, w) == s for (h, w, *_), s in zip(draws, scales))


def test_resized_crop_equals_resize_then_slice_and_mirror():
    image = smooth_image(372, 473)
    for out_h, out_w, top, left, flip in [(256, 326, 10, 50, False), (480, 610, 200, 3, True),
                                          (301, 383, 77, 159, True)]:
        resized = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        expected = resized[top:top + 224, left:left + 224]
        expected = expected[:, ::-1] if flip else expected
        got = resized_crop(image, out_h, out_w, top, left, 224, flip)
        # Both are bilinear with the same mapping; warpAffine rounds source positions to 1/32
        # pixel (<= 1/64 px off: <= 8/64 level here) and each rounds its result: <= 2 levels.
        assert np.abs(got.astype(int) - expected).max() <= 2
    same = resized_crop(image, 372, 473, 5, 9, 224, flip=True)  # scale 1: integer positions, exact
    np.testing.assert_array_equal(same, image[5:229, 9:233][:, ::-1])


def test_test_crop_is_the_centre_of_the_256_resize():
    image = smooth_image(300, 420)
    resized = cv2.resize(image, (358, 256), interpolation=cv2.INTER_LINEAR)  # 420 * 256 / 300 = 358.4
    for size in (224, 256):
        got, params = ImageNetTestCrop(size)(image, seed=0)
        top, left = (256 - size) // 2, (358 - size) // 2
        assert params == {} and got.shape == (size, size, 3)
        assert np.abs(got.numpy().astype(int) - resized[top:top + size, left:left + size]).max() <= 2


def test_the_sample_replays_its_draws(tmp_path):
    path = save_jpeg(tmp_path / "a.jpg", smooth_image(372, 473))
    crop, decoded = ImageNetTrainCrop(), decode_rgb(path)
    for seed in range(5):
        got, params = crop(path, seed)
        rng = np.random.default_rng(seed)
        short = crop.draw_scale(rng)
        expected = resized_crop(decoded, *crop.draw_crop(rng, (372, 473), short))
        np.testing.assert_array_equal(got.numpy(), expected)
        assert got.dtype == torch.uint8 and got.shape == (224, 224, 3)


def test_large_jpegs_decode_at_reduced_size_and_give_the_same_crop(tmp_path):
    pixels = smooth_image(1800, 2400)
    path = save_jpeg(tmp_path / "big.jpg", pixels)
    assert decode_rgb(path, min_side=256).shape == (450, 600, 3)  # 1/4: 1800 / 8 < 256 <= 1800 / 4
    assert decode_rgb(path, min_side=480).shape == (900, 1200, 3)
    assert decode_rgb(path).shape == (1800, 2400, 3)
    reduced, _ = ImageNetTestCrop()(path, seed=0)
    full, _ = ImageNetTestCrop()(pixels, seed=0)
    assert np.abs(reduced.numpy().astype(int) - full.numpy()).mean() < 2


def test_cmyk_grey_png_named_jpeg_and_16_bit_files_decode(tmp_path):
    pixels = smooth_image(120, 160)
    cmyk = decode_rgb(save_jpeg(tmp_path / "cmyk.jpg", pixels, mode="CMYK"))
    assert cmyk.shape == pixels.shape and np.abs(cmyk.astype(int) - pixels).mean() < 3  # not inverted
    grey = decode_rgb(save_jpeg(tmp_path / "grey.jpg", pixels, mode="L"))
    assert grey.shape == pixels.shape and (grey[..., 0] == grey[..., 2]).all()
    Image.fromarray(pixels).save(tmp_path / "png.jpg", "PNG")
    np.testing.assert_array_equal(decode_rgb(tmp_path / "png.jpg"), pixels)
    deep = (pixels[..., 0].astype(np.uint16) * 257)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(decode_rgb(tmp_path / "deep.png")[..., 1], pixels[..., 0])


def test_broken_files_are_bad_samples_naming_the_file(tmp_path):
    good = save_jpeg(tmp_path / "good.jpg", smooth_image(300, 300))
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_bytes(b"not an image")
    for name in ("cut.jpg", "text.jpg", "missing.jpg"):
        with pytest.raises(BadImageError, match=name):
            decode_rgb(tmp_path / name)
    paths = [good, tmp_path / "cut.jpg"]
    dataset = ClassificationDataset(paths, [0, 1], ["a", "b"], uint8_transform=ImageNetTrainCrop())
    assert isinstance(dataset[1], BadSample) and dataset[1].path == str(paths[1])
    assert dataset[0][0].shape == (224, 224, 3)


def write_jpeg_folder(root, per_class=6):
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = smooth_image(64 + 8 * i, 80, seed=10 * c + i)
            pixels[..., c] = 255 - pixels[..., c] // 4  # a colour per class
            save_jpeg(root / name / f"{i:04d}.jpg", pixels)


@pytest.mark.parametrize("on_device", [False, True], ids=["decoded_by_workers", "decoded_on_device"])
def test_imagenet_preset_trains_and_resumes_exactly(tmp_path, on_device):
    write_jpeg_folder(tmp_path / "data/train")
    common = ["data.kind=imagefolder", f"data.root={tmp_path / 'data'}", "data.preset=imagenet",
              f"data.decode_on_device={str(on_device).lower()}",
              "data.val_split=train", "train.batch_size=4", "schedule.total=6",
              "schedule.milestones=[]", "train.ckpt_every=100", "train.channels_last=true"]
    run(tmp_path, *common, name="straight")
    run(tmp_path, *common, "train.stop_at=3", name="paused")
    _, final = run(tmp_path, *common, name="paused")
    straight = load_file(str(tmp_path / "straight/backbone.safetensors"))
    resumed = load_file(str(tmp_path / "paused/backbone.safetensors"))
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, atol=0, rtol=0, msg=key)
    assert final["val_images"] == 12


def test_ten_crop_testing_on_the_imagenet_path(tmp_path):
    write_jpeg_folder(tmp_path / "data/train", per_class=2)
    _, final = run(tmp_path, "data.kind=imagefolder", f"data.root={tmp_path / 'data'}",
                   "data.preset=imagenet", "data.val_split=train", "data.ten_crop=true",
                   "train.batch_size=2", "schedule.total=2", "schedule.milestones=[]")
    assert final["val_images"] == 4 and 0 <= final["val_top1_error"] <= 1


def test_normalize_with_shift_zero_is_plain_normalisation():
    images = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
    torch.testing.assert_close(normalize(images, IMAGENET_MEAN, IMAGENET_STD, False, torch.zeros(2, 3)),
                               normalize(images, IMAGENET_MEAN, IMAGENET_STD, False))


def test_jpegs_decoded_on_the_device_give_the_cpu_paths_draws_and_crops(tmp_path):
    """data.decode_on_device (here the CPU stands in for the GPU): the same S, crop, flip and
    lighting from the same seed; the pixels agree to resampling round-off (a smooth image, whose
    neighbours differ by <= 8 levels: a source offset under half a pixel moves them < 4); a file
    that is not a JPEG is decoded by the worker exactly as the CPU path does."""
    from classification.device_decode import ImageNetTrainJpeg, JpegFile, device_crops

    path = save_jpeg(tmp_path / "photo.jpg", smooth_image(300, 400))  # decoded at full size by both
    Image.fromarray(smooth_image(300, 400, seed=1)).save(tmp_path / "png.jpg", "PNG")
    for seed in range(6):
        cpu, cpu_params = ImageNetTrainCrop()(path, seed)
        file, params = ImageNetTrainJpeg()(path, seed)
        assert isinstance(file, JpegFile) and torch.equal(params["lighting"], cpu_params["lighting"])
        crop = device_crops([file], params["crop"][None])[0]
        assert crop.shape == (224, 224, 3) and crop.dtype == torch.uint8
        assert (crop.int() - cpu.int()).abs().float().mean() < 3, seed
        png, png_params = ImageNetTrainJpeg()(tmp_path / "png.jpg", seed)
        batch = device_crops([file, png], torch.stack([params["crop"], png_params["crop"]]))
        assert torch.equal(batch[1], ImageNetTrainCrop()(tmp_path / "png.jpg", seed)[0])


def test_a_jpeg_the_device_cannot_decode_is_an_error_naming_it(tmp_path):
    from classification.device_decode import ImageNetTrainJpeg, device_crops

    data = save_jpeg(tmp_path / "good.jpg", smooth_image(300, 300)).read_bytes()
    start = data.index(b"\xff\xda")  # the scan: its data replaced by bytes no decoder takes
    (tmp_path / "bad.jpg").write_bytes(data[:start] + b"\xff\xda\x00\x02" + b"\xff\xd9")
    samples = [ImageNetTrainJpeg()(tmp_path / name, 0) for name in ("good.jpg", "bad.jpg")]
    with pytest.raises(BadImageError, match="bad.jpg"):
        device_crops([s[0] for s in samples], torch.stack([s[1]["crop"] for s in samples]))


def test_torchcodec_and_torchvision_decode_jpegs_alike(tmp_path):
    """classification.jpeg: TorchCodec's decoder (used where installed) and torchvision's (the
    fallback) on the same files. Both are libjpeg-turbo with its default IDCT and upsampling, so
    within JPEG decoder tolerance (1 level: another IDCT's rounding) and, as built today, equal."""
    import warnings

    from classification.jpeg import DECODER, decode_jpegs

    assert DECODER == "torchcodec"  # the dev extra installs it
    files = [save_jpeg(tmp_path / f"{i}.jpg", smooth_image(240 + 16 * i, 320, seed=i)) for i in range(3)]
    data = [torch.frombuffer(bytearray(f.read_bytes()), dtype=torch.uint8) for f in files]
    ours = decode_jpegs(data, "cpu")
    with warnings.catch_warnings():  # torchvision's decoders are deprecated: called on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        theirs = decode_jpegs(data, "cpu", decoder="torchvision")
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == torch.uint8
        assert (a.int() - b.int()).abs().max() <= 1
