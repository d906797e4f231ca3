"""COCO and VOC readers on tiny generated data, and every bad-input case."""

import json

import numpy as np
import pytest

from detection.data import BadRecordError, DetectionDataset, read_coco, read_voc
from detection.transforms import build_detection_transform
from engine.data import BadImageError, BadSample
from helpers import call_tool, edit_json


def test_coco_labels_are_contiguous_and_mapped_back(coco):
    ann, images = coco
    source = read_coco(ann, images)
    assert source.category_ids == [3, 7] and source.class_names == ["red", "blue"]
    first = json.loads(ann.read_text())["annotations"][0]
    record = source.records[0]
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(record.boxes[0], [x, y, x + w, y + h])
    assert record.labels[0] == 1 and not record.ignore.any()
    assert {int(label) for r in source.records for label in r.labels} == {1, 2}


def test_coco_crowd_clip_zero_area_and_empty_images(coco):
    ann, images = coco

    def change(data):
        anns = data["annotations"]
        anns[0]["iscrowd"] = 1
        anns[1]["bbox"] = [50, 50, 40, 40]  # runs past the 64 px image: clipped
        anns.append({"id": 99, "image_id": 1, "category_id": 3, "bbox": [70, 70, 5, 5],
                     "area": 25, "iscrowd": 0})  # wholly outside: zero area once clipped
        data["images"].append({"id": 50, "file_name": "0001.png", "width": 64, "height": 64})

    edit_json(ann, change)
    source = read_coco(ann, images)
    by_id = {r.image_id: r for r in source.records}
    assert by_id[1].ignore[0] and by_id[1].boxes.shape[0] == 2  # its third, zero-area, dropped
    assert by_id[1].boxes[1].tolist() == [50, 50, 64, 64]
    assert source.problems.counts["zero-area boxes dropped"] == 1
    train = DetectionDataset(source, train=True)
    assert 50 not in {r.image_id for r in train.records}  # no boxes: skipped in training
    image, target = train[0]
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    val = DetectionDataset(source, train=False)
    assert len(val) == 5


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][0].update(category_id=42), "unknown category_id 42"),
    (lambda d: d["annotations"][0].update(image_id=999), "unknown image_id 999"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, -5, 4]), "negative width or height"),
])
def test_coco_bad_records_error_or_skip(coco, change, message):
    ann, images = coco
    edit_json(ann, change)
    with pytest.raises(BadRecordError, match=message) as info:
        read_coco(ann, images, on_bad_record="error")
    assert "annotations.json" in str(info.value)
    source = read_coco(ann, images, on_bad_record="skip")
    assert sum(source.problems.counts.values()) == 1 and message in source.problems.examples[0]


def test_missing_or_corrupt_image(coco):
    ann, images = coco
    (images / "0002.png").unlink()
    (images / "0003.png").write_bytes(b"not a png")
    skip = DetectionDataset(read_coco(ann, images), train=False, on_bad_record="skip")
    bad = [skip[i] for i in range(len(skip)) if isinstance(skip[i], BadSample)]
    assert sorted(b.path.rsplit("/", 1)[1] for b in bad) == ["0002.png", "0003.png"]
    strict = DetectionDataset(read_coco(ann, images), train=False, on_bad_record="error")
    with pytest.raises(BadImageError, match="0002.png"):
        strict[1]


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        read_coco(tmp_path / "nothere.json", tmp_path)


def write_voc(root, objects_by_image, size=(80, 60)):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for name, objects in objects_by_image.items():
        parts = "".join(
            f"<object><name>{cls}</name><difficult>{int(diff)}</difficult><bndbox>"
            f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
            f"</bndbox></object>" for cls, b, diff in objects)
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{parts}</annotation>")
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(objects_by_image))


def test_voc_reader_difficult_and_pixel_convention(tmp_path):
    write_voc(tmp_path / "VOC2007", {"000001": [("dog", (11, 21, 40, 50), False),
                                                ("cat", (1, 1, 10, 10), True)]})
    source = read_voc(tmp_path / "VOC2007", "trainval")
    record = source.records[0]
    assert record.boxes[0].tolist() == [10, 20, 40, 50]  # 1-based xmin/ymin -> 0-based
    assert [source.class_names[label - 1] for label in record.labels] == ["dog", "cat"]
    assert record.ignore.tolist() == [False, True]
    assert source.ground_truth["annotations"][1]["iscrowd"] == 1


def test_voc_malformed_xml_and_unknown_class(tmp_path):
    root = tmp_path / "VOC2007"
    write_voc(root, {"000001": [("dog", (1, 1, 9, 9), False)],
                     "000002": [("unicorn", (1, 1, 9, 9), False)]})
    (root / "Annotations" / "000001.xml").write_text("<annotation><size>")
    with pytest.raises(BadRecordError, match="000001.xml"):
        read_voc(root, "trainval")
    source = read_voc(root, "trainval", on_bad_record="skip")
    assert source.problems.counts == {"unreadable annotation files": 1,
                                      "objects of unknown classes": 1}
    with pytest.raises(FileNotFoundError, match="test.txt"):
        read_voc(root, "test")


def test_flip_moves_boxes(coco):
    ann, images = coco
    source = read_coco(ann, images)
    flip = build_detection_transform(train=True)
    flip.transforms[0].p = 1.0
    dataset = DetectionDataset(source, flip, train=True)
    plain = DetectionDataset(source, None, train=True)
    (image, target), (raw, raw_target) = dataset[0], plain[0]
    x0, y0, x1, y1 = raw_target["boxes"][0].tolist()
    assert target["boxes"][0].tolist() == pytest.approx([64 - x1, y0, 64 - x0, y1])
    assert (image == raw.flip(-1)).all()


def test_aspect_ratio_grouped_batches():
    from engine.data import EpochSampler, GroupedBatchSampler

    groups = [0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1]  # 5 landscape, 6 portrait
    batches = list(GroupedBatchSampler(EpochSampler(len(groups), seed=1), groups, 2))
    assert len(batches) == len(GroupedBatchSampler(EpochSampler(11), groups, 2)) == 2 + 3
    assert all(len({groups[i] for i in batch}) == 1 and len(batch) == 2 for batch in batches)
    assert len({i for b in batches for i in b}) == 10  # no index twice


def test_grouped_batches_on_two_processes_give_each_image_once_per_epoch():
    """Each global batch (one aspect-ratio group) split over 2 processes as the trainer's loader
    is (Accelerate, split_batches): every image of the epoch once, on one process, whatever the
    epoch; the same batches as one process draws."""
    from accelerate.data_loader import BatchSamplerShard

    from engine.data import EpochSampler, GroupedBatchSampler

    groups = [0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1]  # 8 landscape, 8 portrait
    for epoch in range(3):
        sampler = EpochSampler(len(groups), seed=3)
        sampler.set_epoch(epoch)
        whole = list(GroupedBatchSampler(sampler, groups, 4))
        shards = [list(BatchSamplerShard(GroupedBatchSampler(sampler, groups, 4), num_processes=2,
                                         process_index=rank, split_batches=True)) for rank in (0, 1)]
        seen = [i for shard in shards for batch in shard for i in batch]
        assert sorted(seen) == sorted(i for batch in whole for i in batch) and len(seen) == len(set(seen))
        assert [a + b for a, b in zip(*shards)] == whole


def voc_config(root, *overrides):
    from detection import load_detection_config

    return load_detection_config(None, ["data.kind=voc", f"data.voc_root={root}", "data.voc_train=[train]",
                                        "data.voc_val=[train]", *overrides], training=False)


def test_voc_folder_of_your_own_classes(tmp_path):
    """A LabelImg-style folder (no devkit years): a bare split reads voc_root itself; the classes
    are given, or read from the XML files (sorted, the same numbering for train and val)."""
    from detection.train import read_source

    write_voc(tmp_path, {"a": [("raccoon", (1, 1, 20, 20), False)],
                         "b": [("fox", (5, 5, 30, 30), False), ("raccoon", (40, 10, 60, 50), False)]})
    (tmp_path / "ImageSets/Main/trainval.txt").rename(tmp_path / "ImageSets/Main/train.txt")
    given = read_source(voc_config(tmp_path, "data.classes=[raccoon,fox]").data, "train")
    assert given.class_names == ["raccoon", "fox"] and given.records[1].labels.tolist() == [2, 1]
    auto = read_source(voc_config(tmp_path, "data.classes=auto").data, "train")
    assert auto.class_names == ["fox", "raccoon"] and auto.records[1].labels.tolist() == [1, 2]
    assert [c["name"] for c in auto.ground_truth["categories"]] == ["fox", "raccoon"]
    with pytest.raises(BadRecordError, match=r"b\.xml: unknown class 'fox'"):
        read_source(voc_config(tmp_path, "data.classes=[raccoon]").data, "train")
    skipped = read_source(voc_config(tmp_path, "data.classes=[raccoon]", "data.on_bad_sample=skip").data,
                          "train")
    assert skipped.problems.counts == {"objects of unknown classes": 1}
    with pytest.raises(ValueError, match="give a list of class names or 'auto'"):
        read_source(voc_config(tmp_path, "data.classes=raccoon").data, "train")


def test_voc_xml_without_filename_or_with_a_foreign_path(tmp_path):
    write_voc(tmp_path, {"img1": [("dog", (1, 1, 9, 9), False)], "img2": [("dog", (1, 1, 9, 9), False)]})
    first = tmp_path / "Annotations/img1.xml"
    first.write_text(first.read_text().replace("<filename>img1.jpg</filename>", ""))
    second = tmp_path / "Annotations/img2.xml"
    second.write_text(second.read_text().replace("<filename>img2.jpg", r"<filename>C:\labels\img2.jpg"))
    source = read_voc(tmp_path, "trainval", classes=("dog",))
    assert [r.file.name for r in source.records] == ["img1.jpg", "img2.jpg"]


def test_convert_voc_to_coco_reads_back_the_same_boxes(tmp_path):


    write_voc(tmp_path / "voc", {"a": [("raccoon", (1, 1, 20, 20), False)],
                                 "b": [("fox", (5, 5, 30, 30), True), ("raccoon", (40, 10, 60, 50), False)]})
    out = tmp_path / "coco.json"
    call_tool("convert", "voc", str(tmp_path / "voc"), "--out",
              str(out), check=True)
    (tmp_path / "voc/JPEGImages").mkdir(exist_ok=True)
    coco = read_coco(out, tmp_path / "voc/JPEGImages")
    voc = read_voc(tmp_path / "voc", "trainval", classes=("fox", "raccoon"))
    assert coco.class_names == ["fox", "raccoon"]
    for a, b in zip(coco.records, voc.records):
        assert a.file == b.file and np.allclose(a.boxes, b.boxes) and (a.labels == b.labels).all()
        assert (a.ignore == b.ignore).all()  # difficult -> iscrowd -> ignored, as VOC's evaluation


def test_convert_labelme_polygons_and_rectangles(tmp_path):
    from detection.convert import labelme_to_coco
    from detection.data import decode_masks

    folder = tmp_path / "labelme"
    folder.mkdir()
    shapes = [{"label": "leaf", "shape_type": "polygon", "points": [[10, 10], [40, 12], [25, 40]]},
              {"label": "stone", "shape_type": "rectangle", "points": [[50, 30], [5, 50]]},
              {"label": "leaf", "shape_type": "circle", "points": [[5, 5], [9, 9]]}]
    (folder / "one.json").write_text(json.dumps({"imagePath": "..\\\\photos\\\\one.jpg", "imageHeight": 60,
                                                 "imageWidth": 64, "shapes": shapes}))
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(BadRecordError, match="broken.json"):
        labelme_to_coco(folder)
    coco, problems = labelme_to_coco(folder, on_bad_record="skip")
    assert problems.counts == {"unreadable annotation files": 1, "circle shapes skipped": 1}
    assert [c["name"] for c in coco["categories"]] == ["leaf", "stone"]
    assert coco["images"] == [{"id": 1, "file_name": "one.jpg", "width": 64, "height": 60}]
    leaf, stone = coco["annotations"]
    assert leaf["bbox"] == [10, 10, 30, 30]
    assert leaf["area"] == pytest.approx(0.5 * abs(10 * (12 - 40) + 40 * (40 - 10) + 25 * (10 - 12)))
    assert stone["bbox"] == [5, 30, 45, 20] and stone["category_id"] == 2
    masks = decode_masks([leaf["segmentation"], stone["segmentation"]], 60, 64)
    assert masks[0, 20, 25] and not masks[0, 45, 25] and masks[1, 40, 30]
    (folder / "broken.json").unlink()
    with pytest.raises(BadRecordError, match="one.json: unknown class 'stone'"):
        labelme_to_coco(folder, classes=["leaf"], on_bad_record="error")
