"""`make test-configs`' machinery (the sweep itself runs outside the suite): every file under
configs/ has a role, the overrides touch only batch, data, weights and the stop, a run's result
is recorded, a failure is reported and the sweep goes on."""

from pathlib import Path

import pytest

import config_sweep
from config_sweep import ALLOWED_KEYS, discover, overrides_for, run_one, summary
from helpers import REPO

CONFIGS = REPO / "configs"


def test_every_yaml_file_has_a_role_and_new_ones_join_by_themselves(tmp_path):
    entries = discover(CONFIGS)
    files = sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml"))
    assert sorted(e.path for e in entries) == files
    roles = {e.path: e.role for e in entries}
    assert roles["detection/paper/coco2014_r101_c4.yaml"] == "run"
    assert roles["detection/paper/faster_rcnn.yaml"] == "base"
    assert roles["demo/demo.yaml"] == "demo settings"
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "new.yaml").write_text("task: classification\nname: new\n")
    assert [(e.path, e.role) for e in discover(tmp_path)] == [("a/new.yaml", "run")]
    (tmp_path / "a" / "stray.yaml").write_text("optim: {lr: 0.1}\n")
    with pytest.raises(ValueError, match="stray.yaml"):
        discover(tmp_path)


def test_overrides_are_batch_data_weights_and_the_stop_only(tmp_path, monkeypatch):
    monkeypatch.setattr(config_sweep, "backbone_file", lambda name, cache: tmp_path / f"{name}.pth")
    cache = config_sweep.DataCache(tmp_path / "data")
    for entry in discover(CONFIGS):
        if entry.role != "run":
            continue
        overrides = overrides_for(CONFIGS / entry.path, entry.task, cache)
        keys = [o.split("=", 1)[0] for o in overrides]
        assert all(k.startswith(ALLOWED_KEYS) for k in keys), (entry.path, keys)
        assert "train.stop_at" in keys and "train.batch_size" in keys
        if entry.task != "classification":
            assert any(k.startswith("data.") for k in keys), entry.path
    voc = overrides_for(CONFIGS / "detection/paper/voc0712_vgg16.yaml", "detection", cache)
    root = Path(next(o for o in voc if o.startswith("data.voc_root=")).split("=", 1)[1])
    for split in ("VOC2007/ImageSets/Main/trainval.txt", "VOC2012/ImageSets/Main/trainval.txt",
                  "VOC2007/ImageSets/Main/test.txt"):
        assert (root / split).is_file()


def test_a_run_records_its_result_and_a_failure_does_not_stop_the_sweep(tmp_path):
    smoke = CONFIGS / "classification/smoke.yaml"
    good = run_one(smoke, "classification", ["train.batch_size=32", "train.stop_at=2"], "fp32",
                   tmp_path / "good", "classification/smoke.yaml")
    assert good.ok and "val_top1_error" in good.metrics and (tmp_path / "good/sweep_result.json").is_file()
    assert (tmp_path / "good/metrics.jsonl").is_file() and not (tmp_path / "good/checkpoints").exists()
    bad = run_one(smoke, "classification", ["train.batch_size=32", "model.name=resnet9000"], "fp32",
                  tmp_path / "bad")
    assert not bad.ok and "resnet9000" in bad.error
    report = {"results": [vars(good), vars(bad)], "entries": [], "note": "bf16 not run: no units",
              "precisions": ["fp32"], "data": str(tmp_path)}
    lines = summary(report)
    assert any("| ok |" in line for line in lines) and any("FAILED fp32: " in line for line in lines)
    assert lines[-1] == "bf16 not run: no units"


def test_precisions_follow_the_cpus_bf16_units():
    assert config_sweep.precisions({"avx512_bf16"}) == (["fp32", "bf16"], "")
    chosen, note = config_sweep.precisions({"avx2"})
    assert chosen == ["fp32"] and "no bf16 units" in note
