"""Published weights by name (`weights="torchvision"` / `"timm"`), from the local cache first.

torchvision keeps its files in `$TORCH_HOME/hub/checkpoints/` and timm its in the Hugging Face
cache (`$HF_HOME/hub`). A file already there loads with no network. A missing one is downloaded
only where its host answers within a few seconds; elsewhere (an offline cluster node) the error is
one line naming the file, where to put it, and the `weights=<path>` alternative, instead of
urllib's traceback or huggingface_hub's minute of retries.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import BackboneError

CONNECT_TIMEOUT_S = 3.0


class WeightsUnavailableError(BackboneError):
    """Published weights neither in the local cache nor downloadable from here."""


def unreachable(url: str) -> str | None:
    """Why `url`'s host cannot be reached now (None: it answered), within CONNECT_TIMEOUT_S."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def torchvision_cached(name: str) -> tuple[str, Path]:
    """(url, cache path) of torchvision's DEFAULT ImageNet weights of `name`: where torch.hub keeps
    them ($TORCH_HOME/hub/checkpoints/)."""
    import torch
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def torchvision_file(name: str) -> Path:
    """torchvision's DEFAULT ImageNet weights of `name`: the cached file, downloaded if need be."""
    import torch

    url, cached = torchvision_cached(name)
    if cached.is_file():
        return cached
    reason = unreachable(url)
    if reason is not None:
        raise WeightsUnavailableError(
            f"torchvision's {name} weights are not cached and {urlparse(url).hostname} cannot be reached "
            f"({reason}): download {url} elsewhere and put it at {cached} ($TORCH_HOME/hub/checkpoints), "
            f"or pass the file itself as the weights (weights=<path>, model.backbone_weights=<path>)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(cached), progress=True)
    return cached


def timm_file(model_name: str) -> Path:
    """timm's default pretrained weights of `model_name` (a timm name, tag allowed): the file in
    the Hugging Face cache, downloaded (no retries) if need be."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise WeightsUnavailableError(f"timm publishes no Hugging Face weights for {model_name!r}: "
                                      f"pass a weights file (weights=<path>)")
    names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else \
        ["model.safetensors", "pytorch_model.bin"]
    for filename in names:
        cached = try_to_load_from_cache(repo, filename)
        if isinstance(cached, str):
            return Path(cached)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    reason = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else unreachable(endpoint)
    if reason is not None:
        raise WeightsUnavailableError(
            f"timm's {model_name} weights ({repo}/{names[0]}) are not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and {urlparse(endpoint).hostname} cannot be reached ({reason}): "
            f"on a machine with network run `hf download {repo} {names[0]}` with the same HF_HOME and "
            f"copy that cache here, or pass the file itself as the weights (weights=<path>)")
    return Path(hf_hub_download(repo, names[0]))
