"""The paper's analysis as figures and sentences: Fig. 7 (layer responses by index and sorted) and
the gradient figure (Sec. 4.1), from the measurements of `classification.analysis`, with what they
say computed from the numbers (the demo's and the depth study's reports use the same sentences).

Measurements are kept as JSON lists, one entry per net (`responses.json`, `gradients.json`); a
later call into the same folder replaces the entries of the nets it measures and redraws all.
"""

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from classification.analysis import (  # noqa: E402
    from_run,
    from_weights,
    measure_gradients,
    measure_responses,
)
from engine.checkpoint import atomic_write_text  # noqa: E402


def merge_into(path: Path, entries: list[dict]) -> list[dict]:
    """The entries already in `path` (other nets) followed by `entries`, written back."""
    path = Path(path)
    kept = json.loads(path.read_text()) if path.is_file() else []
    names = {e["net"] for e in entries}
    merged = [e for e in kept if e["net"] not in names] + entries
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(merged, indent=1))
    return merged


def _style(index: int, net: str) -> dict:
    """Plain nets dashed, residual solid (the paper's Fig. 7 tells them apart by colour alone)."""
    return {"color": f"C{index}", "linestyle": "--" if "plain" in net.lower() else "-", "linewidth": 1.4}


def plot_responses(entries: list[dict], out: Path) -> Path:
    """Fig. 7: each net's response stds by layer index (top) and sorted descending (bottom)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7))
    for index, entry in enumerate(entries):
        stds = [layer["std"] for layer in entry["layers"]]
        top.plot(range(1, len(stds) + 1), stds, label=entry["net"], **_style(index, entry["net"]))
        bottom.plot(range(1, len(stds) + 1), sorted(stds, reverse=True), **_style(index, entry["net"]))
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for axes in (top, bottom):
        axes.set_ylabel("std")
        axes.grid(alpha=0.3)
    top.legend(fontsize=8)
    top.set_title("Responses of the 3x3 layers after BN, before ReLU / addition (Fig. 7)", fontsize=10)
    return _save(fig, out)


def plot_gradients(entries: list[dict], out: Path) -> Path:
    """Gradient norms by depth: each layer's weights (left), each block's output per element (right),
    with each net's first-to-last stage ratio in its label."""
    fig, (weights, blocks) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, entry in enumerate(entries):
        style = _style(index, entry["net"])
        norms = [layer["weight_grad_norm"] for layer in entry["layers"]]
        weights.plot(range(1, len(norms) + 1), norms, label=entry["net"], **style)
        rms = [block["grad_rms"] for block in entry["blocks"]]
        blocks.plot(range(len(rms)), rms, label=f"{entry['net']} (stage 1 / last: "
                                                f"{entry['stage_ratio']:.2f})", **style)
    weights.set_xlabel("layer index")
    weights.set_ylabel("|dL/dW|")
    blocks.set_xlabel("block index (0: stem)")
    blocks.set_ylabel("RMS of dL/d(block output)")
    for axes in (weights, blocks):
        axes.set_yscale("log")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    fig.suptitle("Backward signals (Sec. 4.1): gradient norms by depth", fontsize=10)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def stds(entry: dict) -> list[float]:
    return [layer["std"] for layer in entry["layers"]]


def compare_responses(residual: dict, plain: dict) -> str:
    """Fig. 7's first claim on one pair of equal depth: are the residual net's responses smaller,
    layer by layer and in median?"""
    res, pla = stds(residual), stds(plain)
    if len(res) != len(pla):
        raise ValueError(f"{residual['net']} has {len(res)} layers, {plain['net']} {len(pla)}: "
                         f"compare nets of equal depth")
    smaller = sum(r < p for r, p in zip(res, pla))
    med_r, med_p = statistics.median(res), statistics.median(pla)
    holds = smaller > len(res) / 2 and med_r < med_p
    return (f"{residual['net']}'s responses are smaller than {plain['net']}'s at {smaller} of "
            f"{len(res)} layers (median std {med_r:.3f} vs {med_p:.3f}): the paper's \"ResNets have "
            f"generally smaller responses than their plain counterparts\" "
            f"{'holds' if holds else 'does NOT hold'} here.")


def compare_depths(shallow: dict, deep: dict) -> str:
    """Fig. 7's second claim: the deeper ResNet's responses are smaller (sorted curves compared
    on the shallower net's number of layers, and in median)."""
    a, b = sorted(stds(shallow), reverse=True), sorted(stds(deep), reverse=True)
    med_a, med_b = statistics.median(a), statistics.median(b)
    return (f"{deep['net']}'s median response std is {med_b:.3f} against {shallow['net']}'s "
            f"{med_a:.3f} (largest {b[0]:.3f} vs {a[0]:.3f}): the paper's \"the deeper ResNet has "
            f"smaller magnitudes of responses\" {'holds' if med_b < med_a else 'does NOT hold'} here.")


VANISHING_RATIO, EXPLODING_RATIO = 0.01, 100.0  # first stage / last, per element


def gradient_sentence(plain: dict, train_error: float | None = None) -> str:
    """Sec. 4.1 on one deep plain net: do its gradients vanish toward the input (the stage ratio),
    while its training error stays high? (Or grow: BN's gradient explosion at initialisation.)"""
    ratio = plain["stage_ratio"]
    error = f" while its training error is {train_error:.1f}%" if train_error is not None else ""
    if ratio < VANISHING_RATIO:
        verdict = "they vanish: NOT the paper's \"healthy norms\""
    elif ratio > EXPLODING_RATIO:
        verdict = ("they do not vanish but grow toward the input (over 100x): not a vanishing-gradient "
                   "problem, though not the paper's \"healthy norms\" either")
    else:
        verdict = ("they do not vanish, as the paper says (\"healthy norms\"): its degradation is not a "
                   "vanishing-gradient problem")
    return (f"{plain['net']}'s backward signal at its first stage is {ratio:.2f}x its last stage's "
            f"(per element; 'vanished' would be under {VANISHING_RATIO}){error}: {verdict}.")


def analyze(kind: str, subjects, out: Path, *, state, **options) -> list[dict]:
    """Measure `kind` ("responses" or "gradients") of each subject, merge into
    `<out>/<kind>.json` and redraw `<out>/<kind>.png` with every net there (main process)."""
    measure = measure_responses if kind == "responses" else measure_gradients
    entries = [measure(subject, state=state, **options) for subject in subjects]
    if not state.is_main_process:
        return entries
    out = Path(out)
    merged = merge_into(out / f"{kind}.json", entries)
    (plot_responses if kind == "responses" else plot_gradients)(merged, out / f"{kind}.png")
    return merged


def subjects(configs, checkpoints, backbones, weights, data, names) -> list:
    """The nets a command names, as `tools/analyze.py` takes them: runs (`configs[i]` with
    `checkpoints[i]`) or weights files (`backbones[i]` with `weights[i]`, `data` once for all or
    once each); `names` optional, one per net."""
    configs, checkpoints, backbones = configs or [], checkpoints or [], backbones or []
    weights, data = weights or [], data or []
    if bool(configs) == bool(backbones):
        raise ValueError("give --config with --checkpoint (a run), or --backbone with --weights and "
                         "--data (a weights file), one or more times")
    if configs and len(checkpoints) != len(configs):
        raise ValueError(f"{len(configs)} --config but {len(checkpoints)} --checkpoint: one each")
    if backbones and (len(weights) != len(backbones) or len(data) not in (1, len(backbones))):
        raise ValueError("each --backbone needs its --weights, and --data once (for all) or once each")
    count = len(configs) or len(backbones)
    names = names or [None] * count
    if len(names) != count:
        raise ValueError(f"{len(names)} --name for {count} nets")
    if configs:
        return [from_run(c, k, n) for c, k, n in zip(configs, checkpoints, names)]
    data = data * count if len(data) == 1 else data
    return [from_weights(b, w, d, n) for b, w, d, n in zip(backbones, weights, data, names)]
