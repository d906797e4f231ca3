"""Classification data: ImageFolder, CIFAR-10 python batches, bad images, held-out split."""

import pickle

import numpy as np
import pytest
import torch

from classification.batch_augment import AsStored
from classification.data import (
    BadImageError,
    BadSample,
    ClassificationDataset,
    cifar10_batches,
    decode_all,
    scan_image_folder,
)
from classification.datasets import build_datasets
from classification.pretrain import load_pretrain_config, pretrain
from classification.transforms import build_transform
from engine.metrics import read_metrics
from helpers import SMOKE, Exploit, write_image_folder


def test_image_folder_scan(tmp_path):
    write_image_folder(tmp_path / "train", classes=("b_dog", "a_cat"), per_class=3)
    paths, labels, classes = scan_image_folder(tmp_path / "train")
    assert classes == ["a_cat", "b_dog"] and labels == [0, 0, 0, 1, 1, 1]
    assert paths[0].parent.name == "a_cat"


def test_missing_root_and_empty_class_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_image_folder(tmp_path / "nowhere")
    write_image_folder(tmp_path / "train", per_class=2)
    (tmp_path / "train" / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_class"):
        scan_image_folder(tmp_path / "train")


def test_in_memory_decoding_matches_files(tmp_path):
    write_image_folder(tmp_path / "train", per_class=2)
    paths, labels, classes = scan_image_folder(tmp_path / "train")
    tf = build_transform("cifar", train=True)
    on_disk = ClassificationDataset(paths, labels, classes, tf)
    in_memory = ClassificationDataset(decode_all(paths, "skip"), labels, classes, tf)
    for i in range(len(paths)):
        torch.testing.assert_close(on_disk[i][0], in_memory[i][0])


def _corrupt_one(root):
    bad = root / "train" / "cat" / "0001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return bad


def _folder_config(tmp_path, *overrides):
    return load_pretrain_config(SMOKE, [
        f"output_dir={tmp_path / 'run'}", "data.kind=imagefolder", f"data.root={tmp_path}",
        "data.val_split=train", "train.batch_size=4", "schedule.total=6", "schedule.milestones=[]",
        *overrides,
    ])


def test_corrupt_image_is_skipped_counted_and_named(tmp_path):
    write_image_folder(tmp_path / "train", per_class=6)
    bad = _corrupt_one(tmp_path)
    paths, labels, classes = scan_image_folder(tmp_path / "train")
    sample = ClassificationDataset(paths, labels, classes, uint8_transform=AsStored())[paths.index(bad)]
    assert isinstance(sample, BadSample) and sample.path == str(bad)
    pretrain(_folder_config(tmp_path))
    reports = [r for r in read_metrics(tmp_path / "run") if "skipped" in r]
    assert reports and all(r["skipped"] == 1 and r["skipped_files"] == [str(bad)] for r in reports)


def test_an_image_broken_after_its_header_is_skipped_in_every_epoch_and_reported(tmp_path):
    """A truncated PNG passes the header check before training and fails when its batch is made:
    each of the 2 epochs (3 batches of 4) reports it once, at its end; training goes on."""
    write_image_folder(tmp_path / "train", per_class=6)
    bad = tmp_path / "train" / "cat" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:100])
    pretrain(_folder_config(tmp_path))
    records = read_metrics(tmp_path / "run")
    assert not [r for r in records if r.get("event") == "skipped_before_training"]
    reports = [(r["iteration"], r["epoch"], r["skipped"], r["skipped_files"])
               for r in records if "skipped" in r]
    assert reports == [(3, 0, 1, [str(bad)]), (6, 1, 1, [str(bad)])]


def test_corrupt_image_error_mode_names_the_file(tmp_path):
    write_image_folder(tmp_path / "train", per_class=6)
    bad = _corrupt_one(tmp_path)
    with pytest.raises(BadImageError, match="0001.png"):
        pretrain(_folder_config(tmp_path, "data.on_bad_sample=error", "train.num_workers=0"))
    with pytest.raises(BadImageError, match="0001.png"):
        decode_all([bad], "error")


def _write_cifar_batches(root, per_batch=4, seed=0):
    """The official layout: pickled dicts with bytes keys, rows of 1024 R, 1024 G, 1024 B."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        rows = hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072)
        labels = rng.integers(0, 10, per_batch).tolist()
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": rows,
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
        images[name] = (hwc, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    meta = {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return images


def test_cifar_python_batches(tmp_path):
    written = _write_cifar_batches(tmp_path / "cifar-10-batches-py")
    images, labels, classes = cifar10_batches(tmp_path / "cifar-10-batches-py", train=True)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert classes[0] == "airplane" and len(classes) == 10
    np.testing.assert_array_equal(images[:4], written["data_batch_1"][0])
    assert labels[:4] == written["data_batch_1"][1]
    test_images, test_labels, _ = cifar10_batches(tmp_path / "cifar-10-batches-py", train=False)
    np.testing.assert_array_equal(test_images, written["test_batch"][0])


def test_cifar_reader_refuses_code_and_names_missing_batch(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar_batches(root)

    (root / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(ValueError, match="test_batch"):
        cifar10_batches(root, train=False)
    (root / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        cifar10_batches(root, train=True)


def test_holdout_split_is_disjoint_and_sized(tmp_path):
    _write_cifar_batches(tmp_path / "batches")
    cfg = load_pretrain_config(SMOKE, ["data.kind=cifar10", f"data.root={tmp_path / 'batches'}",
                                       "data.holdout=5"])
    train, val = build_datasets(cfg.data)
    assert (len(train), len(val)) == (15, 5)
    train_images = {t.tobytes() for t in train.images}
    assert not train_images & {v.tobytes() for v in val.images}


def test_val_classes_must_match_train(tmp_path):
    write_image_folder(tmp_path / "train", classes=("cat", "dog", "emu"), per_class=2)
    write_image_folder(tmp_path / "val", classes=("cat", "emu"), per_class=2)
    cfg = load_pretrain_config(SMOKE, ["data.kind=imagefolder", f"data.root={tmp_path}"])
    with pytest.raises(ValueError, match=r"only in train \['dog'\]"):
        build_datasets(cfg.data)
