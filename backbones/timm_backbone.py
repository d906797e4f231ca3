"""`timm/<model>`: any timm model behind the registry's contract.

By default the whole timm model is kept (its own `forward` gives the logits, its state dict loads
unchanged) and features come from `forward_intermediates`. `features_only=True` builds timm's
lighter `features_only` model instead, without a classifier, for detection.
Feature levels are picked by their undilated stride and named c2..c5 (stride 4..32); with timm's
own `output_stride` (8 or 16: the last stages dilated) the names stay and `feature_info` reports
the real strides, as the registry's ResNets do.
"""

from collections import OrderedDict

import torch
from torch import nn

from .base import Backbone
from .errors import InvalidOptionError
from .metadata import IMAGENET_INPUT

STRIDE_TO_NAME = {4: "c2", 8: "c3", 16: "c4", 32: "c5"}


def _pick_levels(feature_info: list[dict]) -> list[int]:
    """Index of the last level at each stride 4..32 (the deepest map at that resolution)."""
    by_stride = {info["reduction"]: index for index, info in enumerate(feature_info)}
    return [by_stride[s] for s in STRIDE_TO_NAME if s in by_stride]


class TimmBackbone(Backbone):
    def __init__(self, model_name: str, *, num_classes=1000, features_only=False,
                 pretrained_file: str | None = None, **timm_options):
        super().__init__()
        import timm
        from timm.models import get_pretrained_cfg_value

        self.config = dict(model_name=model_name, features_only=features_only, **timm_options)
        undilated = {k: v for k, v in timm_options.items() if k != "output_stride"}
        try:
            probe = timm.create_model(model_name, pretrained=False, features_only=True, **undilated)
            levels = _pick_levels([dict(i) for i in probe.feature_info.info])
            names = [STRIDE_TO_NAME[probe.feature_info.info[i]["reduction"]] for i in levels]
            if undilated != timm_options:  # the real strides of the dilated levels
                probe = timm.create_model(model_name, pretrained=False, features_only=True,
                                          **timm_options)
            # timm's own loading of its published file (classifier and input adaptation), local
            weights = dict(pretrained=True, pretrained_cfg_overlay={"file": str(pretrained_file)}) \
                if pretrained_file else {}
            if features_only:
                self.model = timm.create_model(model_name, features_only=True, out_indices=levels,
                                               **weights, **timm_options)
            else:
                self.model = timm.create_model(model_name, num_classes=num_classes, **weights,
                                               **timm_options)
        except TypeError as error:  # timm raises TypeError for a keyword a model does not take
            raise InvalidOptionError(f"timm model {model_name!r} rejected an option: {error}") from error
        classifier = get_pretrained_cfg_value(model_name, "classifier") or "fc"
        self.classifier_patterns = (f"model.{classifier}.*",)
        infos = [dict(probe.feature_info.info[i]) for i in levels]
        self._levels = levels
        self._modules_of_levels = [info["module"] for info in infos]
        self.feature_info = [{"name": name, "channels": i["num_chs"], "stride": i["reduction"]}
                             for name, i in zip(names, infos)]
        # A plain dict is not an nn.Module attribute: no duplicate state keys, built once.
        self._views = {"stages": nn.ModuleList(self._find(m) for m in self._modules_of_levels),
                       "stem": nn.Sequential(*self._stem_modules())}

    def _find(self, module_name: str) -> nn.Module:
        """A level's module; timm's features_only models flatten `stages.0` to `stages_0`."""
        try:
            return self.model.get_submodule(module_name)
        except AttributeError:
            return self.model.get_submodule(module_name.replace(".", "_"))

    def _stem_modules(self) -> tuple[nn.Module, ...]:
        """Top-level modules before the first feature level."""
        first = self._modules_of_levels[0]
        stop = {first.split(".")[0], first.replace(".", "_")}
        stem = []
        for name, module in self.model.named_children():
            if name in stop:
                break
            stem.append(module)
        return tuple(stem)

    @property
    def stages(self) -> nn.ModuleList:
        """The modules that end each feature level (views into `model`, not registered again)."""
        return self._views["stages"]

    @property
    def stem(self) -> nn.Sequential:
        """Top-level modules before the first feature level."""
        return self._views["stem"]

    def forward_features(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        if self.config["features_only"]:
            maps = self.model(x)
        else:
            maps = self.model.forward_intermediates(x, indices=self._levels, intermediates_only=True)
        return OrderedDict((info["name"], m) for info, m in zip(self.feature_info, maps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config["features_only"]:
            raise RuntimeError("built with features_only=True: there is no classifier; "
                               "use forward_features")
        return self.model(x)

    def pretrained_input(self) -> dict:
        """The input timm's pretrained weights expect: its pretrained_cfg's mean and std."""
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        return {"mean": list(cfg.get("mean", IMAGENET_INPUT["mean"])),
                "std": list(cfg.get("std", IMAGENET_INPUT["std"]))}

    def remap_state_dict(self, state_dict: dict) -> dict:
        """A plain timm state dict (no `model.` prefix) to this wrapper's names. With
        features_only, timm's feature wrapper flattens the first level of names (`stages.0` ->
        `stages_0`) and holds no module after the last feature level (the head): such keys of a
        whole-model file (what timm's hub and trainers save) are left out; any other key that
        does not fit stays, for `load_weights` to report."""
        own = set(self.state_dict())
        roots = {name for name, _ in self.model.named_children()}
        mapped = {}
        for key, value in state_dict.items():
            key = key.removeprefix("model.")
            if self.config["features_only"] and f"model.{key}" not in own:
                flat = key.replace(".", "_", 1)
                if f"model.{flat}" in own:
                    key = flat
                elif key.split(".")[0] not in roots and flat.split(".")[0] not in roots:
                    continue  # after the last feature level
            mapped[f"model.{key}"] = value
        return mapped
