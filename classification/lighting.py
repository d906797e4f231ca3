"""The paper's colour augmentation (Sec. 3.4: "the standard color augmentation in [21]").

AlexNet (Krizhevsky et al., 2012, Sec. 4.1) runs PCA over the RGB values of the *whole* ImageNet
training set once, then adds to every pixel of an image `eigvec @ (alpha * eigval)` with one
`alpha ~ N(0, 0.1)` triple drawn per image. The constants are that data set-wide decomposition as
fb.resnet.torch ships it (`datasets/imagenet.lua`, RGB in [0, 1]; columns of EIGVEC are the
eigenvectors). albumentations' `FancyPCA` computes a PCA of each image instead: another method.
They live here rather than in `experiments.paper` because training needs them and the library
never imports the experiments; `experiments.paper` lists them with the paper's numbers.
"""

import numpy as np
import torch

EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
ALPHA_STD = 0.1


def draw_alpha(rng: np.random.Generator, std: float = ALPHA_STD) -> torch.Tensor:
    """One image's three PCA weights."""
    return torch.tensor(rng.normal(0.0, std, 3), dtype=torch.float32)


def lighting_shift(alphas: torch.Tensor) -> torch.Tensor:
    """(B, 3) alphas -> (B, 3) RGB offsets in [0, 1] pixel units: eigvec @ (alpha * eigval)."""
    eigvec = torch.tensor(EIGVEC, dtype=torch.float32, device=alphas.device)
    eigval = torch.tensor(EIGVAL, dtype=torch.float32, device=alphas.device)
    return (alphas.float() * eigval) @ eigvec.T
