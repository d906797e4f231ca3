"""The CIFAR ResNet checkpoints the community shares load into cifar_resnet{20..110} and give
exactly their original predictions (symmetric option-A padding permuted onto ours)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backbones import create_backbone, load_weights


class CommunityBlock(nn.Module):
    """The community's BasicBlock (akamaster/pytorch_resnet_cifar10 layout), option A: the new
    channels padded with zeros, a quarter of the output's before the identity, a quarter after."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if stride != 1 or in_planes != planes else None

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + shortcut)


class CommunityResNet(nn.Module):
    def __init__(self, n, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths, planes = (16, 32, 64), 16
        for index, width in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(CommunityBlock(planes, width, 2 if b == 0 and index > 0 else 1))
                planes = width
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.avg_pool2d(out, out.size()[3]).flatten(1))


def randomised(model):
    """Random weights and BN statistics, so every channel's place matters."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.2, generator=generator)
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


@pytest.mark.parametrize("depth", [20, 32, 110])
def test_community_checkpoint_gives_its_original_predictions(depth, tmp_path):
    torch.manual_seed(depth)
    reference = randomised(CommunityResNet((depth - 2) // 6))
    wrapped = nn.DataParallel(reference)  # the checkpoints were saved through DataParallel
    state = {k: v for k, v in wrapped.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet.th"  # older PyTorch: no num_batches_tracked; other entries beside
    torch.save({"state_dict": state, "best_prec1": 91.25, "epoch": 200}, path)
    assert next(iter(state)).startswith("module.")

    ours = load_weights(create_backbone(f"cifar_resnet{depth}"), path).eval()
    images = torch.randn(64, 3, 32, 32)
    with torch.no_grad():
        expected, got = reference(images), ours(images)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_names_alone_would_not_do():
    """Loading the renamed tensors without the permutation changes the outputs: the test above
    checks the permutation, not a layout where it happens not to matter."""
    from backbones.community import _rename

    torch.manual_seed(0)
    reference = randomised(CommunityResNet(3))
    ours = create_backbone("cifar_resnet20").eval()
    ours.load_state_dict({_rename(k): v for k, v in reference.state_dict().items()})
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(ours(images), reference(images), atol=1e-3)


def test_projection_shortcuts_in_the_community_layout_are_renamed():
    """Option-B checkpoints of the same layout (shortcut.0 conv, shortcut.1 BN) load unpermuted."""
    ours = create_backbone("cifar_resnet20", shortcut="B")
    theirs = {}
    for key, value in ours.state_dict().items():
        key = key.replace("stem.conv.", "conv1.").replace("stem.bn.", "bn1.").replace("fc.", "linear.")
        key = key.replace(".shortcut.conv.", ".shortcut.0.").replace(".shortcut.bn.", ".shortcut.1.")
        for s in range(3):
            key = key.replace(f"stages.{s}.", f"layer{s + 1}.")
        theirs[key] = value.clone()
    fresh = load_weights(create_backbone("cifar_resnet20", shortcut="B"), theirs)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), ours.state_dict().values()))
