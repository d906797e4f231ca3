"""The paper's networks, registered by name: Table 1, Table 2's plain nets, Section 4.2, VGG."""

from .registry import register_backbone
from .resnet import ResNet
from .vgg import VGG, VGG_CONVS_PER_STAGE

# Table 1: block type and blocks per stage for conv2_x..conv5_x.
TABLE1 = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS, IMAGENET_STRIDES = (64, 128, 256, 512), (1, 2, 2, 2)
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS, CIFAR_STRIDES = (16, 32, 64), (1, 2, 2)


def imagenet_stages(depth: int) -> list[tuple[int, int, int]]:
    return list(zip(TABLE1[depth][1], IMAGENET_WIDTHS, IMAGENET_STRIDES))


def cifar_stages(depth: int) -> list[tuple[int, int, int]]:
    """6n+2 layers: n two-conv blocks in each of three stages."""
    n, remainder = divmod(depth - 2, 6)
    if remainder:
        raise ValueError(f"CIFAR nets have 6n+2 layers; {depth} is not of that form")
    return [(n, w, s) for w, s in zip(CIFAR_WIDTHS, CIFAR_STRIDES)]


def _register_imagenet(depth: int) -> None:
    block = TABLE1[depth][0]
    stages = imagenet_stages(depth)

    if block == "bottleneck":

        def resnet(*, num_classes=1000, shortcut="B", stride_in_1x1=False,
                   zero_init_residual=False, norm="bn", output_stride=None):
            return ResNet(block, stages, num_classes=num_classes, shortcut=shortcut, norm=norm,
                          stride_in_1x1=stride_in_1x1, zero_init_residual=zero_init_residual,
                          output_stride=output_stride)

        def plain(*, num_classes=1000, stride_in_1x1=False, norm="bn", output_stride=None):
            return ResNet(block, stages, num_classes=num_classes, shortcut=None, norm=norm,
                          stride_in_1x1=stride_in_1x1, output_stride=output_stride)
    else:

        def resnet(*, num_classes=1000, shortcut="B", zero_init_residual=False, norm="bn",
                   output_stride=None):
            return ResNet(block, stages, num_classes=num_classes, shortcut=shortcut, norm=norm,
                          zero_init_residual=zero_init_residual, output_stride=output_stride)

        def plain(*, num_classes=1000, norm="bn", output_stride=None):
            return ResNet(block, stages, num_classes=num_classes, shortcut=None, norm=norm,
                          output_stride=output_stride)

    register_backbone(resnet, name=f"resnet{depth}", family="resnet")
    register_backbone(plain, name=f"plain{depth}", family="plain")


def _register_cifar(depth: int) -> None:
    stages = cifar_stages(depth)

    def resnet(*, num_classes=10, shortcut="A", zero_init_residual=False, norm="bn", output_stride=None):
        return ResNet("basic", stages, stem="cifar", num_classes=num_classes, shortcut=shortcut,
                      norm=norm, zero_init_residual=zero_init_residual, output_stride=output_stride)

    def plain(*, num_classes=10, norm="bn", output_stride=None):
        return ResNet("basic", stages, stem="cifar", num_classes=num_classes, shortcut=None,
                      norm=norm, output_stride=output_stride)

    register_backbone(resnet, name=f"cifar_resnet{depth}", family="resnet", input_size=32)
    if depth != 1202:  # the paper trains no plain-1202
        register_backbone(plain, name=f"cifar_plain{depth}", family="plain", input_size=32)


def _register_vgg(name: str) -> None:
    convs = VGG_CONVS_PER_STAGE[name]

    def vgg(*, num_classes=1000, dropout=0.5):
        return VGG(convs, num_classes=num_classes, norm=None, dropout=dropout)

    def vgg_bn(*, num_classes=1000, dropout=0.5, norm="bn"):
        return VGG(convs, num_classes=num_classes, norm=norm, dropout=dropout)

    register_backbone(vgg, name=name, family="vgg")
    register_backbone(vgg_bn, name=f"{name}_bn", family="vgg")


for _depth in TABLE1:
    _register_imagenet(_depth)
for _depth in CIFAR_DEPTHS:
    _register_cifar(_depth)
for _name in VGG_CONVS_PER_STAGE:
    _register_vgg(_name)
