"""The paper's architecture figures (He et al., 2016), to set beside what we count.

Table 1 gives FLOPs as multiply-adds at 224x224; the bottleneck figures hold for the original
design (stride in the first 1x1), and torchvision's v1.5 layout costs 4.1/7.8/11.5 G instead.
Table 6 gives the CIFAR nets' parameters.
"""

TABLE1_GMACS = {
    "resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3,
    "plain18": 1.8, "plain34": 3.6, "vgg19": 19.6,
}
V15_GMACS = {"resnet50": 4.1, "resnet101": 7.8, "resnet152": 11.5}
TABLE6_PARAMS_M = {
    "cifar_resnet20": 0.27, "cifar_resnet32": 0.46, "cifar_resnet44": 0.66,
    "cifar_resnet56": 0.85, "cifar_resnet110": 1.7, "cifar_resnet1202": 19.4,
}
