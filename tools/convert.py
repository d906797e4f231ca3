"""Convert VOC XML or LabelMe annotations to one COCO JSON file (boxes, and polygons).

    python tools/convert.py voc data/raccoon --split train --out data/raccoon/train.json [--classes auto]
    python tools/convert.py labelme data/my_labelme_folder --out data/my.json [--classes cat,dog]

VOC: <root>/Annotations/*.xml listed by <root>/ImageSets/Main/<split>.txt, images in
<root>/JPEGImages/. LabelMe: every *.json under the folder (file names relative to it).
--classes: comma-separated names (their order gives the category ids), or auto (sorted names
found in the annotations). Problems are errors naming the file, or counted with --skip-bad.
"""

import argparse
import json
from pathlib import Path

from detection.convert import labelme_to_coco, voc_to_coco
from engine.cli import run_tool


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("format", choices=("voc", "labelme"))
    parser.add_argument("root", type=Path, help="the VOC folder, or the LabelMe folder")
    parser.add_argument("--split", default="trainval", help="voc: ImageSets/Main/<split>.txt")
    parser.add_argument("--classes", default="auto", help="comma-separated names, or auto")
    parser.add_argument("--out", type=Path, required=True, help="the COCO JSON file to write")
    parser.add_argument("--skip-bad", action="store_true", help="count bad annotations and go on")
    args = parser.parse_args(argv)
    classes = None if args.classes == "auto" else args.classes.split(",")
    mode = "skip" if args.skip_bad else "error"
    coco, problems = (voc_to_coco(args.root, args.split, classes, mode) if args.format == "voc"
                      else labelme_to_coco(args.root, classes, mode))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(coco))
    print(f"written {args.out}: {len(coco['images'])} images, {len(coco['annotations'])} objects, "
          f"classes {[c['name'] for c in coco['categories']]}; problems: {problems.report()}")


if __name__ == "__main__":
    run_tool(main)
