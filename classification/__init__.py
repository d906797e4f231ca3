"""Pretraining registry backbones on image classification (ImageNet, CIFAR-10): the task
registered as `classification` (`engine.tasks`)."""

from . import spec  # noqa: F401  registers the task
