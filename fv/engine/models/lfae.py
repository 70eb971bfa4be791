"""LFDM's latent flow autoencoder (LFAE; Ni et al., CVPR 2023, sec. 3.1; thesis 2.3), fv's own small version.

    encoder          frame [B, 3, S, S] in [-1, 1]           -> latent z [B, C, h, w],  h = S / 2^down
    flow predictor   (x_ref, x_t) [B, 3, S, S] each           -> backward flow [B, 2, h, w] in IMAGE pixels and
                                                                 visibility logits [B, 1, h, w]
    warp             z(p + flow(p)) (bilinear), times visibility in [0, 1] (LFDM's "occlusion map": 1 = frame 0
                     shows this point, 0 = it does not: the decoder must fill it)
    decoder          warped latent [B, C, h, w]               -> frame [B, 3, S, S] in [-1, 1]

Coordinates: flow is OpenCV's backward flow of fv's data layout (fv.data.layout flow64): pixel p of frame t
was at p + flow(p) in frame 0, pixel centres at integers, measured in pixels of the S-pixel frame. The flow
lives on the latent grid: latent cell i is centred on image pixel (i + 0.5) S/h - 0.5, and in grid_sample's
normalised coordinates (align_corners=False) both resolutions put that point at 2 (i + 0.5) / h - 1, so an
image-pixel offset d is a normalised offset 2 d / S at either resolution (`warp`).

Where the paper has MRAA's region-based flow predictor, fv predicts the flow densely with a small hourglass
(no keypoints to learn on a CPU budget); where it has a VGG perceptual loss, fv's trainer uses an L1 image
pyramid (fv.trainer.lfdm_step), which needs no downloaded weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, ch), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with a (1x1 when the width changes) skip."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c_in, groups), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  _norm(c_out, groups), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class LatentEncoder(nn.Module):
    """frame [B, 3, S, S] -> z [B, latent_ch, S / 2^(len(ch) - 1), ...]: a stride-2 conv and a res block per level
    below the first."""

    def __init__(self, ch: tuple[int, ...], latent_ch: int, groups: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]   # no res block at full resolution (cost)
        for a, b in zip(ch, ch[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), ResBlock(b, b, groups)]
        layers += [_norm(ch[-1], groups), nn.SiLU(), nn.Conv2d(ch[-1], latent_ch, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LatentDecoder(nn.Module):
    """warped z [B, latent_ch, h, w] -> frame [B, 3, h 2^(len(ch) - 1), ...] in [-1, 1]."""

    def __init__(self, ch: tuple[int, ...], latent_ch: int, groups: int):
        super().__init__()
        ch = tuple(reversed(ch))
        layers: list[nn.Module] = [nn.Conv2d(latent_ch, ch[0], 3, padding=1), ResBlock(ch[0], ch[0], groups)]
        for i, (a, b) in enumerate(zip(ch, ch[1:])):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1)]
            layers += [ResBlock(b, b, groups)] if i < len(ch) - 2 else []   # none at full resolution (cost)
        layers += [_norm(ch[-1], groups), nn.SiLU(), nn.Conv2d(ch[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z))


class FlowPredictor(nn.Module):
    """(x_ref, x_t) -> (backward flow [B, 2, h, w] in image pixels, visibility logits [B, 1, h, w]).

    An hourglass over the two frames stacked: down to the latent grid (len(ch) - 1 halvings), two more levels
    below it for context, and back up to the latent grid with skips. The last layer starts at zero, so an
    untrained predictor says "no motion, everything visible" (logit 0 -> 0.5 would halve the latent: the
    visibility logit starts at +4, sigmoid 0.98)."""

    def __init__(self, ch: tuple[int, ...], groups: int, context: int = 2):
        super().__init__()
        self.stem = nn.Conv2d(6, ch[0], 3, padding=1)
        self.to_latent = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 4, stride=2, padding=1), ResBlock(b, b, groups))
                                       for a, b in zip(ch, ch[1:]))
        c = ch[-1]
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, 4, stride=2, padding=1), ResBlock(c, c, groups))
                                  for _ in range(context))
        self.up = nn.ModuleList(ResBlock(2 * c, c, groups) for _ in range(context))
        self.mid = ResBlock(c, c, groups)
        self.head = nn.Sequential(_norm(c, groups), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.tensor([0.0, 0.0, 4.0]))

    def forward(self, x_ref: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(torch.cat([x_ref, x_t], 1))
        for layer in self.to_latent:
            h = layer(h)
        skips = []
        for layer in self.down:
            skips.append(h)
            h = layer(h)
        h = self.mid(h)
        for layer, s in zip(self.up, reversed(skips)):
            h = layer(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="nearest"), s], 1))
        out = self.head(h)
        return out[:, :2], out[:, 2:]


def base_grid(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """[h, w, 2] grid_sample coordinates (x, y) of the cell centres (align_corners=False)."""
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (2.0 / h) - 1.0
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (2.0 / w) - 1.0
    return torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], -1)


def warp(z: torch.Tensor, flow: torch.Tensor, image_size: int) -> torch.Tensor:
    """z [B, C, h, w] sampled at p + flow(p): flow [B, 2, h, w] in pixels of the image_size-pixel frame
    (bilinear, border values outside). With image_size = h this is cv2.remap(z, x + f_x, y + f_y)."""
    h, w = z.shape[-2:]
    grid = base_grid(h, w, z.device, z.dtype) + flow.permute(0, 2, 3, 1) * (2.0 / image_size)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode="border", align_corners=False)


class LFAE(nn.Module):
    def __init__(self, image_size: int, ch: tuple[int, ...], flow_ch: tuple[int, ...], latent_ch: int, groups: int):
        super().__init__()
        if len(ch) != len(flow_ch):
            raise ValueError(f"encoder and flow predictor need the same number of levels, got {ch} and {flow_ch}")
        self.image_size = image_size
        self.encoder = LatentEncoder(ch, latent_ch, groups)
        self.flow = FlowPredictor(flow_ch, groups)
        self.decoder = LatentDecoder(ch, latent_ch, groups)

    def generate(self, z: torch.Tensor, flow: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
        """Frame t from frame 0's latent z, the flow and the visibility in [0, 1] (all at latent resolution)."""
        return self.decoder(warp(z, flow, self.image_size) * visibility)

    def forward(self, x_ref: torch.Tensor, x_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_ref [B, 3, S, S], x_t [B k, 3, S, S] (k targets per reference, in order) ->
        (rebuilt x_t, flow, visibility logits). Each reference is encoded once."""
        k = len(x_t) // len(x_ref)
        x_ref_k = x_ref.repeat_interleave(k, 0)
        flow, logits = self.flow(x_ref_k, x_t)
        z = self.encoder(x_ref).repeat_interleave(k, 0)
        return self.generate(z, flow, torch.sigmoid(logits)), flow, logits


class FrameDecoder(nn.Module):
    """The exported decoder: (latent, flow, visibility) -> frame, the warp inside (ONNX GridSample, opset 16+)."""

    def __init__(self, lfae: LFAE):
        super().__init__()
        self.lfae = lfae

    def forward(self, latent: torch.Tensor, flow: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
        return self.lfae.generate(latent, flow, visibility)
