"""Every figure of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016) that this
project reproduces or sets beside its own measurements; nothing else in the project repeats them.

Errors are in %, FLOPs in multiply-adds (the paper's "FLOPs"), parameters in millions.
"""

# (Sec. 3.4's colour augmentation constants, AlexNet's ImageNet PCA, live with the code that
# trains with them: classification/lighting.py.)

# Table 1: GFLOPs at 224x224. The bottleneck figures hold for the original design (stride in the
# first 1x1 conv); torchvision's v1.5 layout (stride in the 3x3) costs V15_GMACS instead.
TABLE1_GMACS = {
    "resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3,
    "plain18": 1.8, "plain34": 3.6, "vgg19": 19.6,
}
V15_GMACS = {"resnet50": 4.1, "resnet101": 7.8, "resnet152": 11.5}

# Table 2: ImageNet val top-1 error, 10-crop testing (ResNets with option A).
TABLE2_TOP1 = {"plain18": 27.94, "plain34": 28.54, "resnet18": 27.88, "resnet34": 25.03}

# Table 3: ImageNet val (top-1, top-5) error, 10-crop testing.
TABLE3_TOP1_TOP5 = {
    "vgg16": (28.07, 9.33), "plain34": (28.54, 10.02), "resnet34 A": (25.03, 7.76),
    "resnet34 B": (24.52, 7.46), "resnet34 C": (24.19, 7.40), "resnet50": (22.85, 6.71),
    "resnet101": (21.75, 6.05), "resnet152": (21.43, 5.71),
}

# Table 4: single-model (top-1, top-5) error, multi-scale fully-convolutional testing.
TABLE4_TOP1_TOP5 = {
    "resnet34 B": (21.84, 5.71), "resnet34 C": (21.53, 5.60), "resnet50": (20.74, 5.25),
    "resnet101": (19.87, 4.60), "resnet152": (19.38, 4.49),
}

# Table 6: CIFAR-10 ResNets, parameters (M) and test error (%). ResNet-110: best of 5 runs
# (mean 6.61 +/- 0.16).
TABLE6_PARAMS_M = {
    "cifar_resnet20": 0.27, "cifar_resnet32": 0.46, "cifar_resnet44": 0.66,
    "cifar_resnet56": 0.85, "cifar_resnet110": 1.7, "cifar_resnet1202": 19.4,
}
TABLE6_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}

# Table 7: PASCAL VOC mAP@.5 of Faster R-CNN: 2007 test (trained on 07+12), 2012 test (07++12).
TABLE7_VOC_MAP50 = {"vgg16": {"VOC07": 73.2, "VOC12": 70.4}, "resnet101": {"VOC07": 76.4, "VOC12": 73.8}}

# Table 8: COCO val, Faster R-CNN: row label, mAP@.5, mAP@[.5,.95].
TABLE8 = {"vgg16": ("VGG-16", 41.5, 21.2), "resnet101": ("ResNet-101", 48.4, 27.2)}
