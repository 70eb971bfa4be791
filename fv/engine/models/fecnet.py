"""fv's FECNet-style expression embedder (thesis 2.5.1; Vemulapalli & Agarwala 2019): a face -> a point on
the unit sphere where faces with similar expressions lie close, whoever makes them.

FECNet itself is an Inception-ResNet trunk + DenseNet head (ImageNet-pretrained, 224 px, trained on the FEC
triplets), whose weights fv cannot have offline. This is a compact CNN on fv's 64 px face crops, trained by
`fv train embedder` (fv.trainer.embedder_step) with FECNet's triplet loss:

    frames [B, 3, S, S] in [-1, 1]
      -> stem: conv3x3 stride 2 (3 -> c_0), GroupNorm, ReLU                [B, c_0, S/2, S/2]
      -> stage i = 0..3: conv3x3 stride 2 (c_{i-1} -> c_i), GN, ReLU,
                         conv3x3 (c_i -> c_i), GN, ReLU                       [B, c_i, S/2^(i+2), S/2^(i+2)]
      -> global average pool -> Linear (c_3 -> D) -> e / ||e||_2            [B, D], ||e|| = 1

D = 16 as FECNet. 215k parameters at the default widths (16, 32, 64, 96): 0.4 MB in float16. GroupNorm, not
BatchNorm: the output of a frame does not depend on its batch, so the bank's codes are the same whatever the
chunking, and there are no running statistics to keep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int, stride: int, groups: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(min(groups, c_out), c_out),
            nn.ReLU(inplace=True)]


class ExpressionEmbedder(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96), dim: int = 16, groups: int = 8):
        super().__init__()
        layers = _conv(3, channels[0], 2, groups)
        c_prev = channels[0]
        for c in channels:
            layers += _conv(c_prev, c, 2, groups) + _conv(c, c, 1, groups)
            c_prev = c
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(c_prev, dim)
        self.dim = dim

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames [B, 3, S, S] in [-1, 1] -> embedding [B, D], unit L2 norm
        h = self.trunk(frames).mean(dim=(2, 3))                                # [B, c_3]
        return F.normalize(self.head(h), dim=1)
