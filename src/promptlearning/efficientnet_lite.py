"""EfficientNet-Lite0 as a plain torch module, named as the packaged ImageNet state dict names it.

Why not timm: its efficientnet_lite0 is the intended builder, but timm imports torchvision at
import time, and torchvision's PyPI wheels link against CUDA builds of torch; with the CPU build
of torch this project pins, ``import torchvision`` fails (``torchvision::nms does not exist``).
The network is small and fixed (Tan & Le 2019, "lite": no squeeze-excitation, ReLU6, fixed stem
and head), so it is spelled out here from its published configuration, with module names equal
to the keys of ``efficientnet-lite0-57934424.pth`` so the state dict loads strictly (every key,
every shape) with no renaming.
"""

from __future__ import annotations

import torch
from torch import nn

#: (expansion, kernel, stride, output channels, repeats) of each stage of EfficientNet-B0/Lite0
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_CHANNELS = 32
FEATURES = 1280
BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    # momentum only matters when the network is fine-tuned: PyTorch's 0.1, so a short few-shot fine-tuning
    # moves the running statistics to the new images (the TF port's 0.01 would keep ~2/3 ImageNet's after 40 steps)
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.1)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion (when > 1), depthwise k x k, 1x1 projection."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self._bn0(self._expand_conv(x))) if self.expands else x
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """The network: ``features`` (B, 1280) pooled, ``forward`` (B, num_classes) logits."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, 2, padding=1, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        cin = STEM_CHANNELS
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, FEATURES, 1, bias=False)
        self._bn1 = _bn(FEATURES)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURES, num_classes)
        self.act = nn.ReLU6(inplace=False)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, 1280) of normalised images (B, 3, S, S)."""
        x = self.act(self._bn0(self._conv_stem(pixels)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))  # (B, 1280)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000) from pooled features."""
        return self._fc(self._dropout(features))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(pixels))
