"""Fig. 7's responses and Sec. 4.1's gradient norms (`backbones.probes`, `classification.analysis`,
`tools/analyze.py`): equal to a hand computation on a net whose weights are set by hand, the layers
found are exactly the 3x3 convolutions, unsupported nets and bad input get one-line errors.

Hand computation: on 1x1 images a padded 3x3 convolution is its centre tap, a matrix; the net is
then a few matrix products, BNs and ReLUs written out below in float64, independent of the modules
and hooks. The model runs in float32: agreement to 1e-5 relative (a few float32 roundings of
16-term sums, ~1e-7 each, through three layers)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from backbones import create_backbone, save_weights
from backbones.metadata import describe
from backbones.probes import NotProbeableError, block_outputs, check_probeable, response_layers
from backbones.resnet import ResNet
from classification.analysis import Subject, measure_gradients, measure_responses, pick
from classification.batch_augment import AsStored
from classification.data import ClassificationDataset
from classification.pretrain import load_pretrain_config, pretrain
from classification.task import ClassificationTask
from engine.metrics import read_metrics
from helpers import SMOKE, call_tool, write_image_folder

RTOL = 1e-5
EPS = 1e-5  # BatchNorm2d's


def hand_net(seed=0):
    """cifar stem (3 -> 16) and one basic block (16 -> 16, identity shortcut), 3 classes; every
    convolution's centre tap, BN and classifier set from a seeded generator."""
    torch.manual_seed(seed)
    net = ResNet("basic", [(1, 16, 1)], stem="cifar", num_classes=3, shortcut="A")
    params = {}
    with torch.no_grad():
        for name, conv, bn in (("stem", net.stem.conv, net.stem.bn),
                               ("conv1", net.stages[0][0].conv1, net.stages[0][0].bn1),
                               ("conv2", net.stages[0][0].conv2, net.stages[0][0].bn2)):
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = torch.randn(conv.out_channels, conv.in_channels)
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
            params[name] = {k: v.double().clone() for k, v in (
                ("A", conv.weight[:, :, 1, 1]), ("gamma", bn.weight), ("beta", bn.bias),
                ("mean", bn.running_mean), ("var", bn.running_var))}
        net.fc.weight.normal_()
        params["fc"] = (net.fc.weight.double().clone(), net.fc.bias.double().clone())
    return net, params


def hand_forward(params, x, train: bool):
    """The net by hand: (the three responses, the stem's output, the block's output, logits)."""
    def bn(z, p):
        mean, var = (z.mean(0), z.var(0, unbiased=False)) if train else (p["mean"], p["var"])
        return p["gamma"] * (z - mean) / torch.sqrt(var + EPS) + p["beta"]

    r0 = bn(x @ params["stem"]["A"].T, params["stem"])
    h0 = torch.relu(r0)
    r1 = bn(h0 @ params["conv1"]["A"].T, params["conv1"])
    r2 = bn(torch.relu(r1) @ params["conv2"]["A"].T, params["conv2"])
    out = torch.relu(r2 + h0)
    weight, bias = params["fc"]
    return (r0, r1, r2), h0, out, out @ weight.T + bias


def hand_subject(net, count=12, seed=1):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 1, 1, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, count).tolist()
    dataset = ClassificationDataset(list(pixels), labels, ["a", "b", "c"], uint8_transform=AsStored())
    task = ClassificationTask(mean_std=((0.0,) * 3, (1.0,) * 3))  # the input: pixels / 255
    x = torch.from_numpy(pixels.reshape(count, 3)).double() / 255
    return Subject("hand", net, dataset, dataset, task), x, torch.tensor(labels)


def test_response_stds_equal_a_hand_computation():
    net, params = hand_net()
    subject, x, _ = hand_subject(net)
    measured = measure_responses(subject, batch_size=5)  # 5 + 5 + 2: sums over batches
    responses, *_ = hand_forward(params, x, train=False)
    expected = [float(r.std(unbiased=False)) for r in responses]  # over images and channels
    assert [layer["name"] for layer in measured["layers"]] == [
        "stem.conv", "stages.0.0.conv1", "stages.0.0.conv2"]
    assert [layer["std"] for layer in measured["layers"]] == pytest.approx(expected, rel=RTOL)
    assert measured["images"] == 12
    capped = measure_responses(subject, images=5)
    chosen = pick(12, 5)
    responses, *_ = hand_forward(params, x[chosen], train=False)
    assert [layer["std"] for layer in capped["layers"]] == pytest.approx(
        [float(r.std(unbiased=False)) for r in responses], rel=RTOL)


def test_gradient_norms_equal_a_hand_computation():
    net, params = hand_net()
    subject, x, labels = hand_subject(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    measured = measure_gradients(subject, batches=1, batch_size=12)  # the whole set: one batch
    for key, value in net.state_dict().items():  # a copy was measured: BN statistics untouched
        assert torch.equal(value, before[key]), key
    leaves = {name: params[name]["A"].clone().requires_grad_() for name in ("stem", "conv1", "conv2")}
    hand = {name: {**params[name], "A": leaves[name]} for name in leaves} | {"fc": params["fc"]}
    _, h0, out, logits = hand_forward(hand, x, train=True)
    h0.retain_grad()
    out.retain_grad()
    F.cross_entropy(logits, labels).backward()
    weight_norms = [float(leaves[n].grad.norm()) for n in ("stem", "conv1", "conv2")]
    measured_norms = [layer["weight_grad_norm"] for layer in measured["layers"]]
    assert measured_norms == pytest.approx(weight_norms, rel=RTOL)
    block_norms = [float(h0.grad.norm()), float(out.grad.norm())]
    assert [b["grad_norm"] for b in measured["blocks"]] == pytest.approx(block_norms, rel=RTOL)
    assert [b["grad_rms"] for b in measured["blocks"]] == pytest.approx(
        [n / (12 * 16) ** 0.5 for n in block_norms], rel=RTOL)
    assert measured["stage_ratio"] == pytest.approx(1.0)  # one stage: first and last


@pytest.mark.parametrize("name, threes, blocks", [
    ("cifar_resnet20", 19, 9), ("cifar_resnet56", 55, 27), ("cifar_resnet110", 109, 54),
    ("cifar_plain20", 19, 9), ("resnet18", 16, 8), ("resnet50", 16, 16), ("plain34", 32, 16)])
def test_the_layers_found_are_exactly_the_3x3_convolutions(name, threes, blocks):
    net = create_backbone(name)
    layers = response_layers(net)
    every_3x3 = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(layers) == threes
    assert [layer.conv for layer in layers] == every_3x3  # the same modules, in forward order
    for layer in layers:  # each paired with the norm that follows it
        assert layer.norm.num_features == layer.conv.out_channels
    assert len(block_outputs(net)) == blocks + 1  # and the stem
    every_conv = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [layer.conv for layer in response_layers(net, all_convs=True)] == every_conv


def test_bottleneck_layers_are_the_middle_3x3_in_forward_order():
    layers = response_layers(create_backbone("resnet50"))
    assert [layer.name for layer in layers[:4]] == [
        "stages.0.0.conv2", "stages.0.1.conv2", "stages.0.2.conv2", "stages.1.0.conv2"]
    assert [layer.stage for layer in layers] == [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3


@pytest.mark.parametrize("name, why", [("timm/resnet18", "timm"), ("vgg16", "no BN")])
def test_nets_without_the_papers_structure_are_refused_with_the_reason(name, why):
    with pytest.raises(NotProbeableError, match=f"not supported: {name}: .*{why}"):
        check_probeable(create_backbone(name))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "run"
    pretrain(load_pretrain_config(SMOKE, [f"output_dir={out}", "data.num_val=31", "schedule.total=4",
                                          "schedule.milestones=[2]"]))
    return out


def test_the_tool_draws_several_runs_and_adds_later_ones(smoke_run, tmp_path):
    run = ["--config", str(smoke_run / "config.yaml"), "--checkpoint", str(smoke_run / "final.safetensors")]
    out = tmp_path / "fig"
    done = call_tool("analyze", "responses", *run, "--name", "one", *run, "--name", "two",
                     "--out", str(out))
    assert done.returncode == 0, done.stderr
    entries = json.loads((out / "responses.json").read_text())
    assert [e["net"] for e in entries] == ["one", "two"]
    assert entries[0]["layers"] == entries[1]["layers"] and len(entries[0]["layers"]) == 19
    assert entries[0]["images"] == 31
    call_tool("analyze", "responses", *run, "--name", "three", "--images", "7", "--out", str(out), check=True)
    entries = json.loads((out / "responses.json").read_text())
    assert [e["net"] for e in entries] == ["one", "two", "three"] and entries[2]["images"] == 7
    assert (out / "responses.png").stat().st_size > 10_000
    init = ["--config", str(smoke_run / "config.yaml"), "--checkpoint", "init"]
    grads = call_tool("analyze", "gradients", *run, *init, "--batches", "2", "--batch-size", "16",
                      "--out", str(out), check=True)
    assert "stage 1 / last" in grads.stdout
    trained, initial = json.loads((out / "gradients.json").read_text())
    assert initial["net"] == "cifar_resnet20 (init)"
    assert trained["batches"] == 2 and len(trained["blocks"]) == 10 and trained["stage_ratio"] > 0
    assert initial["layers"][0]["weight_grad_norm"] != trained["layers"][0]["weight_grad_norm"]
    assert (out / "gradients.png").is_file()


def test_a_weights_file_is_read_with_its_recorded_input(tmp_path):
    """A community CIFAR file (no metadata): ImageNet's mean and std, as its trainer normalised;
    the same net saved by us with the CIFAR preset's convention gives other responses."""
    net = create_backbone("cifar_resnet20")
    net.eval()
    data = write_image_folder(tmp_path / "data" / "test", classes=("a", "b", "c"), per_class=4)
    community = {k.replace("stem.conv", "conv1").replace("stem.bn", "bn1").replace("fc.", "linear."): v
                 for k, v in net.state_dict().items()}
    community = {(f"layer{int(k.split('.')[1]) + 1}." + k.split(".", 2)[2]) if k.startswith("stages.")
                 else k: v for k, v in community.items()}
    torch.save(community, tmp_path / "community.th")
    done = call_tool("analyze", "responses", "--backbone", "cifar_resnet20", "--weights",
                     str(tmp_path / "community.th"), "--data", str(data), "--out", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    ours = tmp_path / "ours.safetensors"
    save_weights(net, ours, description=describe(net, task="classification",
                                                 input_convention={"mean": [0.5] * 3, "std": [0.25] * 3}))
    call_tool("analyze", "responses", "--backbone", "cifar_resnet20", "--weights", str(ours),
              "--data", str(data), "--out", str(tmp_path / "b"), check=True)
    first, second = (json.loads((tmp_path / d / "responses.json").read_text())[0] for d in "ab")
    assert first["images"] == second["images"] == 12
    stem = [e["layers"][0]["std"] for e in (first, second)]
    assert stem[0] != pytest.approx(stem[1], rel=1e-3)


def test_bad_input_gets_a_one_line_error(smoke_run, tmp_path):
    run = ["--config", str(smoke_run / "config.yaml")]
    net = create_backbone("cifar_resnet20")
    detector_file = tmp_path / "detector.safetensors"
    save_weights(net, detector_file, description=describe(net, task="detection"))
    cases = {
        "a detection run's weights": (run + ["--checkpoint", str(detector_file)], "detection run"),
        "an empty split": (["--backbone", "cifar_resnet20", "--weights", str(smoke_run / "final.safetensors"),
                            "--data", str(tmp_path / "empty")], "holds no images"),
        "no images": (run + ["--checkpoint", str(smoke_run / "final.safetensors"), "--images", "0"],
                      "at least 1"),
        "a timm net": (["--backbone", "timm/resnet18", "--weights", str(tmp_path / "t.safetensors"),
                        "--data", str(tmp_path)], "not supported"),
    }
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    timm_net = create_backbone("timm/resnet18", num_classes=3)
    save_weights(timm_net, tmp_path / "t.safetensors", description=describe(timm_net, task="classification"))
    for what, (args, message) in cases.items():
        done = call_tool("analyze", "responses", *args, "--out", str(tmp_path / "out"))
        assert done.returncode == 2, (what, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, (what, done.stderr)


def probe_records(run) -> list[dict]:
    return [r for r in read_metrics(run) if "grad_norm_stage1" in r]


def test_training_probes_log_every_n_steps_and_change_nothing(tmp_path):
    common = ["schedule.total=4", "schedule.milestones=[2]", "train.grad_accum=2"]
    pretrain(load_pretrain_config(SMOKE, [f"output_dir={tmp_path / 'plain'}", *common]))
    pretrain(load_pretrain_config(SMOKE, [f"output_dir={tmp_path / 'probed'}", *common,
                                          "train.probe_every=2"]))
    assert probe_records(tmp_path / "plain") == []
    records = probe_records(tmp_path / "probed")
    assert [r["iteration"] for r in records] == [2, 4]
    stages = ("stem", "stage1", "stage2", "stage3")
    keys = {f"{k}_{s}" for k in ("grad_norm", "response_std") for s in stages}
    assert set(records[0]) == {"iteration"} | keys
    assert all(r[k] > 0 for r in records for k in r)
    plain, probed = (load_file(str(tmp_path / run / "final.safetensors")) for run in ("plain", "probed"))
    for key, value in plain.items():  # the probes only look: the same weights, bit for bit
        assert torch.equal(probed[key], value), key


def test_training_probes_refuse_a_net_they_cannot_read(tmp_path):
    cfg = load_pretrain_config(SMOKE, [f"output_dir={tmp_path}", "model.name=vgg11_bn", "data.image_size=32",
                                       "train.probe_every=1", "schedule.total=1", "schedule.milestones=[]"])
    with pytest.raises(NotProbeableError, match="not supported: vgg11_bn"):
        pretrain(cfg)
