"""The demo report's sentences, computed from fabricated results: the paper's effects present,
absent, and present on average but inside the spread across seeds."""

from experiments import demo_report
from experiments.demo import DemoDetector
from experiments.demo_report import claims, detection_table, pretrain_table

ROLES = {"shallow plain": "plain-20", "deep plain": "plain-56", "deep residual": "ResNet-56"}
DETECTORS = [DemoDetector("plain-56 (VGG-style)", "plain-56", "vgg16"),
             DemoDetector("ResNet-56", "ResNet-56", "resnet101")]


def seed(train: tuple, val: tuple, ap50: tuple, ap: tuple, found: tuple = (0, 60)) -> dict:
    nets = ("plain-20", "plain-56", "ResNet-56")
    return {"pretrain": {n: {"train_error": t, "val_error": v, "params_m": 0.27, "minutes": 1.0,
                             "images_per_s": 300.0} for n, t, v in zip(nets, train, val)},
            "detect": {d.label: {"AP50": a50, "AP": a, "found": f}
                       for d, a50, a, f in zip(DETECTORS, ap50, ap, found)}}


def test_effects_present_beyond_the_seed_spread():
    seeds = [seed((8, 75, 15), (6, 75, 10), (5, 30), (2, 12), (1, 58)),
             seed((9, 77, 17), (7, 76, 12), (6, 33), (2, 13), (2, 61)),
             seed((8, 74, 16), (6, 74, 11), (4, 31), (3, 12), (0, 64))]
    lines = claims(seeds, ROLES, DETECTORS, 0.5)
    assert lines[0].startswith("Training error of plain-56 vs plain-20 (%): 75.3 ± 1.5 vs 8.3 ± 0.5")
    assert "The deeper plain net trains worse, as in the paper" in lines[0]
    assert "ResNet-56, the residual twin, trains better, as in the paper" in lines[1]
    assert "+26.3 points; seed spread 3.0). The residual backbone detects better" in lines[2]
    assert "The residual backbone detects better, as in the paper" in lines[3]
    assert lines[4] == ("Validation shapes the ResNet-56 detector finds at score >= 0.5 (a box of the "
                        "right class, IoU >= 0.5): 61.0 ± 3.0%; most shapes carry a box in its pictures.")
    assert lines[5] == ("Best validation error 6.3% (at most 20% wanted): the pretraining task is "
                        "learnable.")
    assert "| plain-56 | 0.27 | 75.3 ± 1.5 | 75.0 ± 1.0 |" in pretrain_table(seeds)
    row = "| ResNet-56 | 31.3 ± 1.5 | 12.3 ± 0.5 | 61.0 ± 3.0 | ResNet-101: 48.4 | 27.2 |"
    assert row in detection_table(seeds, DETECTORS, 0.5)
    assert "shapes found at score >= 0.5 (%)" in detection_table(seeds, DETECTORS, 0.5)


def test_effects_absent_are_said_to_be_absent():
    lines = claims([seed((70, 65, 72), (75, 70, 76), (14, 11), (5, 4), (3, 20))], ROLES, DETECTORS, 0.5)
    assert "NOT the deeper plain net trains worse: the paper's result" in lines[0]
    assert "one seed: `--seeds 3` measures the spread" in lines[0]
    assert "NOT ResNet-56, the residual twin, trains better" in lines[1]
    assert "NOT the residual backbone detects better" in lines[2] and "NOT the residual" in lines[3]
    assert lines[4].endswith("20.0%; NOT most: its pictures leave most shapes without a box.")
    assert "the pretraining task is NOT learned well enough" in lines[5]


def test_an_average_gap_inside_the_seed_spread_is_not_a_result():
    seeds = [seed((20, 30, 10), (20, 30, 10), (10, 14), (4, 5)),
             seed((20, 18, 10), (20, 18, 10), (10, 9), (4, 4))]
    lines = claims(seeds, ROLES, DETECTORS, 0.5)
    assert "on average, but NOT by more than the spread across seeds: not shown" in lines[0]
    assert "on average, but NOT by more than the spread across seeds: not shown" in lines[2]


def _entry(net, stds, ratio=1.0):
    return {"net": net, "layers": [{"name": f"l{i}", "std": s} for i, s in enumerate(stds)],
            "stage_ratio": ratio}


def test_fig7_and_gradient_sentences_follow_the_numbers():
    roles = {"deep plain": "plain-56", "deep residual": "ResNet-56"}
    seed = {"pretrain": {"plain-56": {"train_error": 40.0}},
            "analysis": {"responses": {"plain-56": _entry("plain-56", [2.0, 2.0, 1.0]),
                                       "ResNet-56": _entry("ResNet-56", [1.0, 3.0, 0.5])},
                         "gradients": {"plain-56": _entry("plain-56", [], ratio=0.5)}}}
    responses, gradients = demo_report.analysis_claims(seed, roles)
    assert "smaller than plain-56's at 2 of 3 layers (median std 1.000 vs 2.000)" in responses
    assert "holds here" in responses and "NOT" not in responses
    assert "0.50x its last stage's" in gradients
    assert "while its training error is 40.0%: they do not vanish, as the paper says" in gradients
    seed["analysis"]["responses"]["ResNet-56"] = _entry("ResNet-56", [3.0, 3.0, 0.5])
    seed["analysis"]["gradients"]["plain-56"]["stage_ratio"] = 0.001
    responses, gradients = demo_report.analysis_claims(seed, roles)
    assert "does NOT hold here" in responses
    assert "they vanish: NOT the paper's" in gradients
    seed["analysis"]["gradients"]["plain-56"]["stage_ratio"] = 267.0  # BN at initialisation
    assert "grow toward the input (over 100x)" in demo_report.analysis_claims(seed, roles)[1]
