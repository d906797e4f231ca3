"""Config loading: YAML inheritance, overrides, and errors that name the key at fault."""

import pytest

from classification.config import ClassificationConfig
from classification.pretrain import load_pretrain_config
from engine.accelerator import ACCELERATE_PRECISION, run_precision
from engine.config import ConfigError, TrainConfig, load_config
from engine.precision import cpu_has_bf16, resolve_precision
from helpers import REPO, SMOKE


def test_overrides_and_inheritance():
    cfg = load_pretrain_config(REPO / "configs/classification/cifar10_resnet110_short.yaml",
                               ["optim.lr=0.05", "model.options={shortcut: B}"])
    assert cfg.model.name == "cifar_resnet110" and cfg.optim.lr == 0.05
    assert cfg.model.options.shortcut == "B"
    assert cfg.schedule.unit == "epoch" and cfg.optim.weight_decay == 0.0001  # from the base


def test_unknown_key_names_it_and_the_valid_keys():
    with pytest.raises(ConfigError, match="'optim.learning_rate'") as info:
        load_pretrain_config(SMOKE, ["optim.learning_rate=0.1"])
    assert "lr, lr_batch, lr_multipliers, momentum" in str(info.value)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml") as info:
        load_config(ClassificationConfig, path)
    assert "train.epochs" in str(info.value)


def test_bad_value_type_names_the_key():
    with pytest.raises(ConfigError, match="optim.lr"):
        load_pretrain_config(SMOKE, ["optim.lr=fast"])


def test_malformed_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_pretrain_config(SMOKE, ["optim.lr"])
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_pretrain_config(tmp_path / "nothere.yaml")


def test_inheritance_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(ClassificationConfig, tmp_path / "a.yaml")


def test_precision_names():
    assert ACCELERATE_PRECISION["fp32"] == "no"
    with pytest.raises(ValueError, match="train.precision"):
        run_precision(TrainConfig(precision="no"))


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "fma"}, "fp32"),  # no bf16 units: emulated bf16 is ~10x slower
    ({"avx512f", "avx512bw", "avx512_vnni"}, "fp32"),  # AVX-512 alone does not compute bf16
    ({"avx512f", "avx512_bf16"}, "bf16"),  # Zen 4, Cooper Lake
    ({"amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids
])
def test_auto_precision_follows_the_cpus_bf16_units(flags, expected):
    assert resolve_precision("auto", "cpu", cpu_bf16=cpu_has_bf16(flags)) == expected


def test_auto_precision_on_gpus_and_explicit_choices():
    assert resolve_precision("auto", "cuda", cuda_bf16=True) == "bf16"
    assert resolve_precision("auto", "cuda", cuda_bf16=False) == "fp32"
    assert resolve_precision("fp32", "cpu", cpu_bf16=True) == "fp32"  # an explicit choice stands
    assert resolve_precision("bf16", "cpu", cpu_bf16=False) == "bf16"


def test_every_shipped_config_loads():
    from detection import load_detection_config

    for path in sorted((REPO / "configs/classification").rglob("*.yaml")):
        load_pretrain_config(path)
    weights = ["model.backbone_weights=imagenet.safetensors"]  # fine-tuning recipes need one
    for path in sorted((REPO / "configs/detection").rglob("*.yaml")):
        load_detection_config(path, weights)
    from segmentation import load_segmentation_config

    coco = load_segmentation_config(REPO / "configs/segmentation/coco_voc_deeplabv3_r50.yaml", weights)
    assert (coco.data.kind, coco.model.head, coco.data.val_split) == ("coco", "deeplabv3", "val2017")
    for path in sorted((REPO / "configs/segmentation").glob("*.yaml")):
        load_segmentation_config(path, weights)
    from experiments.demo import load_demo_config

    for path in sorted((REPO / "configs/demo").glob("*.yaml")):
        if path.name not in ("pretrain.yaml", "detect.yaml"):  # those two are the steps' configs
            demo = load_demo_config(path)
            load_pretrain_config(path.parent / demo.pretrain, demo.pretrain_overrides)


@pytest.mark.parametrize("name, kind, head, min_size", [
    ("d2_1x/coco_mask_rcnn_r50_fpn_1x", "MaskRCNN", "RoIHeads", (640, 672, 704, 736, 768, 800)),
    ("d2_1x/coco_mask_rcnn_r101_c4", "MaskRCNN", "Res5RoIHeads", (640, 672, 704, 736, 768, 800)),
    ("d2_1x/coco_faster_rcnn_r101_c4", "FasterRCNN", "RoIHeads", (600,)),
    ("paper/coco2014_r101_c4", "FasterRCNN", "RoIHeads", (600,)),
])
def test_detection_configs_build_their_detector(name, kind, head, min_size):
    """Multi-scale training (a list of shorter sides) and the 81 COCO classes, as configured."""
    from detection import build_detector, load_detection_config

    cfg = load_detection_config(REPO / "configs/detection" / f"{name}.yaml",
                                ["model.backbone_weights=scratch", "model.norm=gn"])
    model = build_detector(cfg, num_classes=81)
    assert type(model).__name__ == kind and type(model.roi_heads).__name__ == head
    assert model.roi_heads.box_predictor.cls_score.out_features == 81
    assert tuple(model.transform.min_size) == min_size


def test_short_schedule_is_one_layer_composed_onto_each_net():
    """Every *_short config is its net's config plus schedules/cifar10_short.yaml, nothing copied."""
    shorts = sorted((REPO / "configs/classification").glob("cifar10_*_short.yaml"))
    assert len(shorts) == 10
    for path in shorts:
        net = load_pretrain_config(path.with_name(path.name.replace("_short", "")))
        short = load_pretrain_config(path)
        assert short.model == net.model and short.data == net.data and short.optim == net.optim
        assert (short.schedule.unit, short.schedule.total, list(short.schedule.milestones)) == \
            ("epoch", 10, [5, 7.5])
        assert short.train.channels_last and short.name == net.name + "_short"


def test_the_old_bad_input_keys_are_read_as_the_one_new_key_with_a_note(tmp_path, caplog):
    """data.on_bad_record (detection) and data.on_bad_image (classification, segmentation) became
    data.on_bad_sample: files and overrides that use them still load, and say the new name."""
    from detection import load_detection_config
    from segmentation import load_segmentation_config

    old = tmp_path / "old.yaml"
    old.write_text(f"_base_: {REPO / 'configs/detection/smoke.yaml'}\ndata:\n  on_bad_record: skip\n")
    with caplog.at_level("WARNING", logger="engine"):
        assert load_detection_config(old).data.on_bad_sample == "skip"
        assert load_pretrain_config(SMOKE, ["data.on_bad_image=error"]).data.on_bad_sample == "error"
        cfg = load_segmentation_config(REPO / "configs/segmentation/smoke.yaml", ["data.on_bad_image=skip"])
    assert cfg.data.on_bad_sample == "skip"
    notes = [r.getMessage() for r in caplog.records]
    assert f"data.on_bad_record is now data.on_bad_sample: read as data.on_bad_sample=skip ({old})" in notes
    assert sum("data.on_bad_image is now data.on_bad_sample" in n for n in notes) == 2
    from engine.config import save_config
    from engine.resume import trajectory_changes

    save_config(load_pretrain_config(REPO / "configs/classification/cifar10_resnet20_short.yaml"),
                tmp_path / "config.yaml")
    before_the_rename = (tmp_path / "config.yaml").read_text().replace("on_bad_sample:", "on_bad_image:")
    assert "on_bad_image: skip" in before_the_rename  # a run folder written before it
    (tmp_path / "config.yaml").write_text(before_the_rename)
    cfg = load_pretrain_config(tmp_path / "config.yaml")
    with caplog.at_level("WARNING", logger="engine"):
        assert cfg.data.on_bad_sample == "skip" and trajectory_changes(before_the_rename, cfg) == {}
    assert caplog.records[-1].getMessage() == ("data.on_bad_image is now data.on_bad_sample: read as "
                                               "data.on_bad_sample=skip (the checkpoint's config)")


def test_resume_compares_interpolated_values_as_resolved(tmp_path):
    """A run whose config ties one key to another (`${...}`, saved as written) resumes unchanged,
    and a change to the key it reads is reported with the values both sides resolve to."""
    from engine.config import save_config
    from engine.resume import trajectory_changes

    tied = load_pretrain_config(SMOKE, ["train.batch_size=8", "optim.lr_batch=${train.batch_size}"])
    save_config(tied, tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text()
    assert "${train.batch_size}" in saved and trajectory_changes(saved, tied) == {}
    wider = load_pretrain_config(SMOKE, ["train.batch_size=16", "optim.lr_batch=${train.batch_size}"])
    assert trajectory_changes(saved, wider) == {"train.batch_size": (8, 16), "optim.lr_batch": (8, 16)}


def test_resume_sees_a_key_only_one_side_has_and_passes_over_evaluation_keys(tmp_path):
    """An architecture option the run did not set is a change; `eval.*` keys are free to change."""
    from engine.config import save_config
    from engine.resume import trajectory_changes

    save_config(load_pretrain_config(SMOKE), tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text()
    assert trajectory_changes(saved, load_pretrain_config(SMOKE, ["model.options.shortcut=B"])) == {
        "model.options.shortcut": (None, "B")}
    assert trajectory_changes(saved, load_pretrain_config(SMOKE, ["eval.tta.flip=true"])) == {}


def test_resume_refusals_list_each_change_on_a_line_of_its_own():
    from omegaconf import OmegaConf

    from engine.errors import ResumeMismatch
    from engine.resume import check_changes

    changes = {"optim.lr": (0.1, 0.01), "schedule.total": (8, 10)}
    with pytest.raises(ResumeMismatch) as refused:
        check_changes(changes, OmegaConf.create({"resume_changes": "error"}), "last.pth")
    assert str(refused.value) == (
        "the config differs from the one last.pth was trained with:\n  optim.lr: 0.1 -> 0.01\n"
        "  schedule.total: 8 -> 10\nresume with the checkpoint's values, pass resume_changes=allow "
        "to apply the new ones from here on, or choose another output_dir")
    allowed = OmegaConf.create({"resume_changes": "allow"})
    check_changes(changes, allowed, "last.pth")
    fixed = {"optim.name": ("sgd", "adamw"), "optim.no_decay": ([], ["bias"])}
    listed = r"\n  optim\.name: 'sgd' -> 'adamw'\n  optim\.no_decay: \[\] -> \['bias'\]\nresume with"
    with pytest.raises(ResumeMismatch, match=r"not even with resume_changes=allow\):" + listed):
        check_changes({**changes, **fixed}, allowed, "last.pth")
