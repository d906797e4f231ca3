"""The demo's report: its tables and the sentences that say whether the paper's results showed,
computed from the measured numbers of one or several seeds.

A result is "shown" when it goes the paper's way by more than the spread across seeds (the larger
of the two figures' max - min); with one seed the report says the spread is unmeasured.
"""

import statistics
from dataclasses import dataclass

from .analysis import compare_responses, gradient_sentence
from .markdown import markdown_table
from .paper import TABLE8

LEARNABLE_VAL_ERROR = 20.0  # %: the best net must reach this for its features to be worth moving


@dataclass
class Figure:
    """One measured quantity over seeds."""

    values: list[float]
    digits: int = 1

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float | None:
        return max(self.values) - min(self.values) if len(self.values) > 1 else None

    def __str__(self) -> str:
        d = self.digits
        return f"{self.mean:.{d}f}" + (f" ± {self.spread / 2:.{d}f}" if self.spread is not None else "")


def figure(seeds: list[dict], *keys, digits: int = 1) -> Figure:
    """The value at `keys` (e.g. "pretrain", "plain-56", "train_error") in every seed's results."""
    values = []
    for result in seeds:
        for key in keys:
            result = result[key]
        values.append(float(result))
    return Figure(values, digits)


def compare(higher: Figure, lower: Figure, what: str, claim: str, paper: str) -> str:
    """One sentence: is `higher` above `lower`, as the paper expects, by more than the seed spread?"""
    margin = higher.mean - lower.mean
    spreads = [s for s in (higher.spread, lower.spread) if s is not None]
    spread = max(spreads) if spreads else None
    if margin > 0 and (spread is None or margin > spread):
        verdict = f"{claim}, as in the paper ({paper})"
    elif margin > 0:
        verdict = f"{claim} on average, but NOT by more than the spread across seeds: not shown"
    else:
        verdict = f"NOT {claim}: the paper's result ({paper}) does not show here"
    noise = (f"seed spread {spread:.1f}" if spread is not None
             else "one seed: `--seeds 3` measures the spread")
    return f"{what}: {higher} vs {lower} ({margin:+.1f} points; {noise}). {verdict[0].upper()}{verdict[1:]}."


def claims(seeds: list[dict], roles: dict, detectors: list, score: float) -> list[str]:
    """The paper's results checked on the numbers: degradation, its cure, better detection,
    whether the pictures show most shapes found, and whether the pretraining task was learned."""
    shallow, deep, residual = roles["shallow plain"], roles["deep plain"], roles["deep residual"]

    def train_error(label):
        return figure(seeds, "pretrain", label, "train_error")

    lines = [
        compare(train_error(deep), train_error(shallow), f"Training error of {deep} vs {shallow} (%)",
                "the deeper plain net trains worse", "the degradation problem, Fig. 6 left"),
        compare(train_error(deep), train_error(residual), f"Training error of {deep} vs {residual} (%)",
                f"{residual}, the residual twin, trains better", "Fig. 6 right"),
    ]
    plain, resnet = (d.label for d in detectors)
    for key, name in (("AP50", "mAP@.5"), ("AP", "mAP@[.5,.95]")):
        lines.append(compare(figure(seeds, "detect", resnet, key), figure(seeds, "detect", plain, key),
                             f"Detector {name} on {resnet} vs on {plain} (%)",
                             "the residual backbone detects better", "Table 8, COCO: +6.9 and +6.0"))
    found = figure(seeds, "detect", resnet, "found")
    verdict = ("most shapes carry a box in its pictures" if found.mean > 50
               else "NOT most: its pictures leave most shapes without a box")
    lines.append(f"Validation shapes the {resnet} detector finds at score >= {score} (a box of the "
                 f"right class, IoU >= 0.5): {found}%; {verdict}.")
    best = min(figure(seeds, "pretrain", label, "val_error").mean for label in seeds[0]["pretrain"])
    learnable = "learnable" if best <= LEARNABLE_VAL_ERROR else "NOT learned well enough"
    lines.append(f"Best validation error {best:.1f}% (at most {LEARNABLE_VAL_ERROR:.0f}% wanted): "
                 f"the pretraining task is {learnable}.")
    return lines


def analysis_claims(seed: dict, roles: dict) -> list[str]:
    """Fig. 7 and Sec. 4.1 on one seed's nets: are the residual net's responses smaller than its
    plain twin's, and do the deep plain net's gradients vanish while it trains worse?"""
    deep, residual = roles["deep plain"], roles["deep residual"]
    responses, gradients = seed["analysis"]["responses"], seed["analysis"]["gradients"]
    return [compare_responses(responses[residual], responses[deep]),
            gradient_sentence(gradients[deep], seed["pretrain"][deep]["train_error"])]


def pretrain_table(seeds: list[dict]) -> str:
    """Measured per net (mean ± half the spread over seeds)."""
    rows = []
    for label, first in seeds[0]["pretrain"].items():
        cells = [str(figure(seeds, "pretrain", label, k)) for k in ("train_error", "val_error")]
        rows.append([label, f"{first['params_m']:.2f}", *cells,
                     str(figure(seeds, "pretrain", label, "minutes")),
                     str(figure(seeds, "pretrain", label, "images_per_s", digits=0))])
    return markdown_table(["net", "params (M)", "train error %", "val error %", "training time (min)",
                           "images/s"], rows)


def found_header(score: float) -> str:
    return f"shapes found at score >= {score} (%)"


def detection_table(seeds: list[dict], detectors: list, score: float) -> str:
    """Measured mAP beside the paper's Table 8 row each detector stands for, and the shapes the
    pictures show found (a box of the right class, IoU >= 0.5, scored >= `score`)."""
    rows = []
    for d in detectors:
        name, ap50, ap = TABLE8[d.paper]
        rows.append([d.label, *(str(figure(seeds, "detect", d.label, k)) for k in ("AP50", "AP", "found")),
                     f"{name}: {ap50:.1f}", f"{ap:.1f}"])
    return markdown_table(["detector (C4)", "mAP@.5", "mAP@[.5,.95]", found_header(score),
                           "paper mAP@.5 (COCO)", "paper mAP@[.5,.95]"], rows)


def mask_table(seeds: list[dict], score: float) -> str:
    """Mask R-CNN's box and mask AP (the paper has no masks; Mask R-CNN's own paper reports COCO
    mask AP about 4 points under box AP with the same C4 backbone)."""
    nets = sorted({seed["masks"]["net"] for seed in seeds})
    cells = [str(figure(seeds, "masks", k)) for k in ("AP50", "AP", "segm_AP50", "segm_AP", "found")]
    return markdown_table(["Mask R-CNN (C4) on", "box mAP@.5", "box mAP@[.5,.95]", "mask mAP@.5",
                           "mask mAP@[.5,.95]", found_header(score)], [[" / ".join(nets), *cells]])
